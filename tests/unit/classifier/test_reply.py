"""Reply extraction: quoted history and signatures are cut, in the clients' languages."""

from __future__ import annotations

import pytest

from laifaxin_classifier.reply import extract_reply, strip_subject_prefixes

PITCH = "Dear buyer, our MOQ is 100 pcs, best price, free samples. Reply unsubscribe to stop."


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("On Mon, Nov 16, 2026 at 9:12 AM Lily Zhang <lily@ningbo.cn> wrote:", "en"),
        ("On Mon, Nov 16, 2026 at 9:12 AM Lily Zhang <lily@ningbo.cn>\nwrote:", "en-wrapped"),
        ("Am 16.11.2026 um 09:12 schrieb Lily Zhang <lily@ningbo.cn>:", "de"),
        ("Le 16 nov. 2026 à 09:12, Lily Zhang <lily@ningbo.cn> a écrit :", "fr"),
        ("El lun, 16 nov 2026 a las 9:12, Lily Zhang (<lily@ningbo.cn>) escribió:", "es"),
        ("Em seg., 16 de nov. de 2026 às 09:12, Lily <lily@ningbo.cn> escreveu:", "pt"),
        ("пн, 16 нояб. 2026 г. в 09:12, Lily Zhang <lily@ningbo.cn>:", "ru"),
        ('在 2026年11月16日 09:12，"Lily Zhang" <lily@ningbo.cn> 写道：', "zh"),
        ("-----Original Message-----\nFrom: Lily Zhang\nSent: Monday", "outlook-original"),
        (
            "From: Lily Zhang <lily@ningbo.cn>\nSent: Monday, November 16, 2026 9:12 AM\nTo: buyer",
            "outlook-en",
        ),
        ("发件人: Lily Zhang <lily@ningbo.cn>\n发送时间: 2026年11月16日 9:12\n收件人: buyer", "outlook-zh"),
        ("寄件者: Lily Zhang <lily@ningbo.cn>\n寄件日期: 2026年11月16日\n主旨: LED", "outlook-zh-hant"),
        ("差出人: Lily Zhang <lily@ningbo.cn>\n送信日時: 2026年11月16日\n件名: LED", "outlook-ja"),
        ("Kimden: Lily Zhang <lily@ningbo.cn>\nGönderildi: 16 Kasım 2026\nKonu: LED", "outlook-tr"),
        ('------------------ 原始邮件 ------------------\n发件人: "Lily"<lily@ningbo.cn>;', "qq-mail"),
    ],
)
def test_quote_headers_cut_our_pitch(header: str, lang: str) -> None:
    text = f"Please send the catalogue.\n\n{header}\n\n{PITCH}"
    out = extract_reply(text)
    assert out == "Please send the catalogue.", lang
    assert "MOQ" not in out


def test_angle_quoted_lines_removed() -> None:
    text = "We are not interested.\n> Dear buyer, best price\n> MOQ 100"
    assert extract_reply(text) == "We are not interested."


@pytest.mark.parametrize(
    "signoff", ["Best regards,", "Mit freundlichen Grüßen", "此致", "С уважением,", "Saygılarımla", "-- "]
)
def test_signature_cut(signoff: str) -> None:
    text = f"Hi,\n\nPlease quote 500 pcs.\n\n{signoff}\nAnna Schmidt\nPurchasing, Example GmbH\nTel +49 30 1"
    assert extract_reply(text) == "Hi,\n\nPlease quote 500 pcs."


def test_sent_from_my_iphone_cut() -> None:
    assert extract_reply("Send price please\n\nSent from my iPhone") == "Send price please"


def test_all_quote_gives_empty() -> None:
    assert extract_reply("> only quoted\n> text") == ""


def test_signoff_line_that_carries_content_is_kept() -> None:
    text = "Thanks, we are not interested in LED panels at the moment."
    assert extract_reply(text) == text


@pytest.mark.parametrize(
    ("subject", "expected", "is_reply"),
    [
        ("Re: LED panels", "LED panels", True),
        ("AW: WG: Re[2]: LED panels", "LED panels", True),
        ("回复：LED面板灯", "LED面板灯", True),
        ("答复: 报价", "报价", True),
        ("Antw: offerte", "offerte", True),
        ("SV: Tilbud", "Tilbud", True),
        ("RFQ for 500 pcs", "RFQ for 500 pcs", False),
    ],
)
def test_subject_prefixes(subject: str, expected: str, is_reply: bool) -> None:
    assert strip_subject_prefixes(subject) == (expected, is_reply)
