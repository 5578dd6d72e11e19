"""Send's pure parts: the warm-up plan and the catalog caps, the Sent folder choice, message building (RFC 2047
headers, threading, RFC 8058 headers, reply tokens, deterministic Message-ID), the plan CLI."""

from __future__ import annotations

import base64
import email
import email.policy
import json
from datetime import UTC, date, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from laifaxin_cli.main import main as cli_main
from laifaxin_send.message import MessageError, build_message, message_id_for, transfer_encoding
from laifaxin_send.pacing import ManualClock, bound_days, day_start, local_day, plan_for, resolve_provider
from laifaxin_send.sentcopy import find_sent_folder
from laifaxin_send.settings import DEV_REPLY_TOKEN_KEYS
from laifaxin_shared.events import SendCommand
from laifaxin_shared.providers.catalog import get_provider
from laifaxin_shared.replytoken import ReplyTokens, VerifiedToken, token_from_address

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days", "cap", "low", "high"),
    [
        (0, 50, 300, 600),
        (6, 50, 300, 600),
        (7, 100, 180, 360),
        (14, 150, 120, 240),
        (21, 200, 90, 180),
        (28, 300, 60, 120),
        (400, 300, 60, 120),
    ],
)
def test_netease_warmup_ramp(days: int, cap: int, low: int, high: int) -> None:
    plan = plan_for(get_provider("netease"), days)
    assert (plan.daily_cap, plan.min_spacing_seconds, plan.max_spacing_seconds) == (cap, low, high)
    assert "laifa.xin" in plan.source


def test_week_one_spacing_is_five_to_ten_minutes_and_stable_never_over_300() -> None:
    assert plan_for(get_provider("netease_qiye"), 0).min_spacing_seconds == 5 * 60
    assert plan_for(get_provider("netease_qiye"), 0).max_spacing_seconds == 10 * 60
    assert max(plan_for(get_provider("netease"), d).daily_cap or 0 for d in range(400)) == 300


@pytest.mark.parametrize(
    ("provider", "cap"),
    [("gmail", 500), ("google_workspace", 2000), ("outlook", 300), ("microsoft365", 10000), ("zoho", 500)],
)
def test_published_caps_come_from_the_catalog_with_their_source(provider: str, cap: int) -> None:
    plan = plan_for(get_provider(provider), 0)
    assert plan.daily_cap == cap
    assert plan.source == get_provider(provider).sending.source  # type: ignore[union-attr]
    assert plan.min_spacing_seconds > 0  # never a burst


def test_unknown_provider_gets_the_warmup_ramp() -> None:
    assert resolve_provider("someone@unknown.example") is None
    assert plan_for(None, 0).daily_cap == 50
    assert resolve_provider("sales@163.com").id == "netease"  # type: ignore[union-attr]
    assert resolve_provider("gmail").id == "gmail"  # type: ignore[union-attr]


def test_days_are_counted_in_the_sending_zone() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    late = datetime(2026, 11, 21, 17, 30, tzinfo=UTC)  # 01:30 on the 22nd in Shanghai
    assert local_day(late, zone) == date(2026, 11, 22)
    assert day_start(date(2026, 11, 22), zone) == datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
    assert bound_days(datetime(2026, 11, 14, 17, 0, tzinfo=UTC), date(2026, 11, 22), zone) == 7
    clock = ManualClock(NOW)
    assert clock.advance(3600) == datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def test_plan_cli_prints_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["send", "plan", "sales@163.com", "--bound-days", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "provider": "netease",
        "daily_cap": 100,
        "min_spacing_seconds": 180,
        "max_spacing_seconds": 360,
        "source": get_provider("netease").sending.source,  # type: ignore[union-attr]
    }


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b'(\\HasNoChildren \\Sent) "/" Sent', b'(\\HasNoChildren) "/" INBOX'], "Sent"),
        ([b'(\\HasNoChildren) "/" "Sent Messages"', b'(\\HasNoChildren) "/" INBOX'], "Sent Messages"),
        ([b'(\\HasNoChildren) "/" "&XfJT0ZAB-"'], "&XfJT0ZAB-"),  # 已发送 (NetEase)
        ([b'(\\HasNoChildren) "/" "[Gmail]/&XfJT0ZCuTvY-"'], "[Gmail]/&XfJT0ZCuTvY-"),  # 已发邮件
        ([b'(\\HasNoChildren) "." "INBOX.Sent Items"'], "INBOX.Sent Items"),
        ([b'(\\Noselect \\Sent) "/" Sent', b'(\\HasNoChildren) "/" Archive'], None),
        ([b'(\\HasNoChildren) "/" INBOX'], None),
    ],
)
def test_sent_folder_choice(lines: list[bytes], expected: str | None) -> None:
    assert find_sent_folder(lines) == expected


def command(**fields: Any) -> SendCommand:
    base: dict[str, Any] = {
        "tenant_id": "tenant-acme",
        "user_id": "u_42",
        "command_id": "cmd-0042",
        "mailbox_id": "mbx_1",
        "to": [{"name": "玛丽亚", "email": "maria@buyer.example"}],
        "subject": "LED 面板报价",
        "text": "您好",
        "kind": "campaign",
    }
    base.update(fields)
    return SendCommand.model_validate(base)


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_message_headers_are_rfc2047_and_seven_bit() -> None:
    built = build_message(command(from_name="张伟"), mailbox_email="sales@163.com", now=NOW)
    assert built.data.isascii() and b"\r\n" in built.data
    msg = parse(built.data)
    assert msg["Subject"] == "LED 面板报价"
    assert msg["From"].addresses[0].display_name == "张伟"
    assert msg["Message-ID"] == f"<{built.message_id}>"
    assert built.message_id == message_id_for("tenant-acme", "cmd-0042", "sales@163.com")
    assert built.message_id.startswith("lfx.") and built.message_id.endswith("@163.com")
    assert msg["Date"] == "Sat, 21 Nov 2026 08:00:00 +0000"
    assert msg.get_content().strip() == "您好"


def test_message_id_is_deterministic_per_tenant_and_command() -> None:
    a = message_id_for("t1", "c1", "a@x.example")
    assert a == message_id_for("t1", "c1", "a@x.example")
    assert a != message_id_for("t2", "c1", "a@x.example")
    assert a != message_id_for("t1", "c2", "a@x.example")


def test_reply_threading_headers() -> None:
    msg = parse(
        build_message(
            command(kind="reply", in_reply_to="parent@mail.gmail.com", references=["<root@a.example>"]),
            mailbox_email="sales@163.com",
            now=NOW,
        ).data
    )
    assert msg["In-Reply-To"] == "<parent@mail.gmail.com>"
    assert msg["References"] == "<root@a.example> <parent@mail.gmail.com>"


def test_campaign_one_click_unsubscribe_rfc8058() -> None:
    msg = parse(
        build_message(
            command(unsubscribe_url="https://l.example/u/1"), mailbox_email="s@163.com", now=NOW
        ).data
    )
    assert msg["List-Unsubscribe"] == "<https://l.example/u/1>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    reply = parse(
        build_message(
            command(kind="reply", unsubscribe_url="https://l.example/u/1"), mailbox_email="s@163.com", now=NOW
        ).data
    )
    assert "List-Unsubscribe" not in reply


def test_system_mailbox_reply_to_is_a_verifiable_token() -> None:
    tokens = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev")
    built = build_message(
        command(),
        mailbox_email="campaigns@mail.laifaxin.com",
        now=NOW,
        system_mailbox=True,
        reply_tokens=tokens,
    )
    msg = parse(built.data)
    address = msg["Reply-To"].addresses[0].addr_spec
    assert address.startswith("campaigns+") and address.endswith("@mail.laifaxin.com")
    token = token_from_address(address)
    assert token == built.reply_token
    verified = tokens.verify(token or "", today=NOW.date())
    assert isinstance(verified, VerifiedToken)
    with pytest.raises(MessageError):
        build_message(command(), mailbox_email="c@mail.laifaxin.com", now=NOW, system_mailbox=True)


def test_non_ascii_address_needs_smtputf8() -> None:
    cmd = command(to=[{"name": "", "email": "玛丽亚@例子.中国"}])
    with pytest.raises(MessageError):
        build_message(cmd, mailbox_email="s@163.com", now=NOW)
    built = build_message(cmd, mailbox_email="s@163.com", now=NOW, smtputf8=True)
    assert "玛丽亚@例子.中国".encode() in built.data


def test_attachments_inline() -> None:
    data = base64.b64encode(b"%PDF-1.4 tiny").decode()
    msg = parse(
        build_message(
            command(
                attachments=[
                    {"filename": "报价单.pdf", "content_type": "application/pdf", "content_base64": data}
                ]
            ),
            mailbox_email="s@163.com",
            now=NOW,
        ).data
    )
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == "报价单.pdf" and att.get_content() == b"%PDF-1.4 tiny"


@pytest.mark.parametrize(
    ("text", "cte"),
    [
        ("plain ascii", "7bit"),
        ("您好，报价如下", "base64"),
        ("café au lait, s'il vous plaît", "quoted-printable"),
    ],
)
def test_transfer_encoding(text: str, cte: str) -> None:
    assert transfer_encoding(text) == cte


@pytest.mark.parametrize(
    "fields",
    [
        {"to": []},
        {"subject": "x\r\nBcc: victim@example.com"},
        {"text": None},
        {"unsubscribe_url": "http://insecure.example/u"},
        {"to": [{"email": "not an address"}]},
        {"command_id": "bad id with spaces"},
        {"attachments": [{"filename": "a", "content_base64": "!!!"}]},
        {
            "attachments": [
                {"filename": "a", "content_base64": base64.b64encode(b"x" * (600 * 1024)).decode()}
            ]
        },
        {"attachments": [{"filename": "a"}]},
    ],
)
def test_invalid_commands_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        command(**fields)
