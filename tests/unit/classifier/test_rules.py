"""Header rules (RFC 3834, vendor headers, lists), phrase rules and OOO return dates."""

from __future__ import annotations

from datetime import date

import pytest

from laifaxin_classifier.dates import extract_return_date
from laifaxin_classifier.message import ClassifierInput
from laifaxin_classifier.rules import header_facts, notice_phrase, ooo_phrase, optout_phrase


@pytest.mark.parametrize(
    ("headers", "auto"),
    [
        ({"auto-submitted": "auto-replied"}, True),
        ({"auto-submitted": "auto-generated"}, True),
        ({"auto-submitted": "auto-notified"}, True),
        ({"auto-submitted": "no"}, False),
        ({"x-autoreply": "yes"}, True),
        ({"x-autorespond": "anything"}, True),
        ({"precedence": "auto_reply"}, True),
        ({"x-apple-action": "VACATION"}, True),
        ({"x-post-messageclass": "9; Autoresponder"}, True),
        ({"x-ms-exchange-generated-message-source": "Mailbox Rules Agent"}, True),
        ({"x-auto-response-suppress": "All"}, False),  # MS-OXCMAIL: a request, not an auto-reply sign
    ],
)
def test_auto_reply_headers(headers: dict[str, str], auto: bool) -> None:
    assert header_facts(ClassifierInput(headers=headers)).auto_submitted is auto


@pytest.mark.parametrize(
    "headers",
    [{"list-id": "<news.example.com>"}, {"list-unsubscribe": "<mailto:u@x>"}, {"precedence": "bulk"}],
)
def test_list_headers(headers: dict[str, str]) -> None:
    assert header_facts(ClassifierInput(headers=headers)).mailing_list


@pytest.mark.parametrize(
    "addr", ["noreply@example.com", "no-reply@x.org", "do_not_reply@x.org", "newsletter@x.org"]
)
def test_noreply_senders(addr: str) -> None:
    assert header_facts(ClassifierInput(from_addr=addr)).noreply_sender


def test_person_is_not_noreply() -> None:
    assert not header_facts(ClassifierInput(from_addr="nora.reilly@example.com")).noreply_sender


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: LED panels",
        "Out of Office: Re: price",
        "Abwesenheitsnotiz: Angebot",
        "自动回复: 报价",
        "Réponse automatique : devis",
        "Respuesta automática: cotización",
        "Otomatik yanıt: teklif",
    ],
)
def test_ooo_subjects(subject: str) -> None:
    assert ooo_phrase(subject, "") == "rule:ooo-subject"


@pytest.mark.parametrize(
    "text",
    [
        "I am out of the office until December 2 with limited access to email.",
        "I have left the company. Please contact Anna.",
        "Thank you for your email. We have received your inquiry and will reply within 24 hours.",
        "Ich bin bis zum 02.12. nicht im Büro.",
        "Je suis absent du bureau jusqu'au 2 décembre.",
        "Estoy fuera de la oficina hasta el 2 de diciembre.",
        "Я в отпуске до 2 декабря.",
        "我正在休假，12月2日返回。",
        "本人已离职，请联系王先生。",
        "這是一封自動回覆郵件。",
        "12月2日まで不在にしております。",
        "Tôi đang nghỉ phép đến ngày 2 tháng 12.",
        "أنا خارج المكتب حتى 2 ديسمبر.",
    ],
)
def test_ooo_phrases(text: str) -> None:
    assert ooo_phrase("Re: LED panels", text) == "rule:ooo-phrase"


@pytest.mark.parametrize(
    "text",
    [
        "Please send the price, I will be on holiday next month so we need it soon.",
        "We received the samples, thank you. Please quote 500 pcs.",
        "收到，谢谢，我看一下再回复你。",
    ],
)
def test_people_are_not_ooo(text: str) -> None:
    assert ooo_phrase("Re: LED panels", text) is None


@pytest.mark.parametrize(
    "text",
    [
        "Please remove me from your mailing list.",
        "Unsubscribe",
        "Bitte austragen.",
        "退订",
        "请不要再给我发邮件了。",
        "Отпишите меня.",
        "Wypisz mnie, proszę.",
        "配信停止をお願いします。",
    ],
)
def test_optout_phrases(text: str) -> None:
    assert optout_phrase(text) == "rule:opt-out-phrase"


def test_optout_needs_more_than_a_price_question() -> None:
    assert optout_phrase("What is your best price for 500 pcs?") is None


def test_notice_phrase() -> None:
    assert notice_phrase("This is an automated message, please do not reply.") == "rule:notification-phrase"
    assert notice_phrase("Please send the catalogue.") is None


REF = date(2026, 11, 21)


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("I will be back on December 2.", "en", date(2026, 12, 2)),
        ("I am out of the office until 2 December 2026.", "en", date(2026, 12, 2)),
        ("Back in the office on 12/03/2026.", "en", date(2026, 12, 3)),
        ("Ich bin bis zum 05.12.2026 nicht im Büro.", "de", date(2026, 12, 5)),
        ("Ab dem 15.01. bin ich wieder erreichbar.", "de", date(2027, 1, 15)),
        ("Je serai de retour le 6 janvier.", "fr", date(2027, 1, 6)),
        ("Regresaré el 2 de diciembre de 2026.", "es", date(2026, 12, 2)),
        ("我正在休假，12月2日返回。", "zh-Hans", date(2026, 12, 2)),
        ("2026年12月7日まで不在にしております。", "ja", date(2026, 12, 7)),
        ("Вернусь 2 декабря.", "ru", date(2026, 12, 2)),
        ("Tôi sẽ trở lại vào ngày 2 tháng 12.", "vi", date(2026, 12, 2)),
        ("Returning 2026-12-07, from 2026-11-30 away.", "en", date(2026, 12, 7)),
    ],
)
def test_return_dates(text: str, lang: str, expected: date) -> None:
    assert extract_return_date(text, REF, lang) == expected


def test_no_return_date_without_a_date() -> None:
    assert extract_return_date("I am out of the office with limited access to email.", REF, "en") is None


def test_ambiguous_numeric_date_takes_the_nearest_reading_ahead() -> None:
    # 03/01/2012 written on 30 Dec 2011: 3 January (UK reading) is near, 1 March is not.
    assert extract_return_date("out of the office (returning 03/01/2012)", date(2011, 12, 30), "en") == date(
        2012, 1, 3
    )
    assert extract_return_date("back on 12/03/2026", REF, "en") == date(2026, 12, 3)


def test_day_of_month_wording() -> None:
    assert extract_return_date("I am out of the office till the 12th of February.", REF, "en") == date(
        2027, 2, 12
    )
