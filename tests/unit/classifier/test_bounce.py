"""Bounce detection and what the report says (RFC 3464 / 3463, MTA texts)."""

from __future__ import annotations

from laifaxin_classifier.bounce import detect_bounce
from laifaxin_classifier.message import ClassifierInput

from .conftest import make_eml
from .test_message import DSN


def test_rfc3464_hard_bounce_details() -> None:
    verdict = detect_bounce(ClassifierInput.from_bytes(DSN))
    assert verdict is not None
    assert "bounce:rfc3464-delivery-status" in verdict.reasons
    info = verdict.info
    assert (info.kind, info.recipient, info.status) == ("hard", "gone@example.org", "5.1.1")
    assert info.diagnostic is not None and "User unknown" in info.diagnostic


def test_soft_bounce_from_4xx_status() -> None:
    raw = DSN.replace(b"Status: 5.1.1", b"Status: 4.2.2").replace(b"Action: failed", b"Action: delayed")
    verdict = detect_bounce(ClassifierInput.from_bytes(raw))
    assert verdict is not None and verdict.info.kind == "soft" and verdict.info.status == "4.2.2"


def test_exim_x_failed_recipients() -> None:
    raw = make_eml(
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its recipients. "
        "This is a permanent error. The following address(es) failed:\n\n  gone@example.org\n",
        subject="Mail delivery failed: returning message to sender",
        sender="Mail Delivery System <Mailer-Daemon@mx.example.net>",
        headers={"X-Failed-Recipients": "gone@example.org"},
    )
    verdict = detect_bounce(ClassifierInput.from_bytes(raw))
    assert verdict is not None
    assert verdict.info.recipient == "gone@example.org"
    assert verdict.info.kind == "hard"


def test_qmail_text_without_headers() -> None:
    msg = ClassifierInput(
        subject="failure notice",
        from_addr="mailer-daemon@mx.example.net",
        text="Hi. This is the qmail-send program at mx.example.net.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "<gone@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)",
    )
    verdict = detect_bounce(msg)
    assert verdict is not None and verdict.info.status == "5.1.1" and verdict.info.kind == "hard"


def test_chinese_bounce_text() -> None:
    msg = ClassifierInput(
        subject="系统退信",
        from_addr="postmaster@example.cn",
        text="抱歉，您的邮件被退回来了。收件人邮箱不存在（550 5.1.1 user not found）",
    )
    verdict = detect_bounce(msg)
    assert verdict is not None and verdict.info.kind == "hard"


def test_person_mentioning_delivery_is_not_a_bounce() -> None:
    msg = ClassifierInput(
        subject="Re: delivery",
        from_addr="buyer@example.com",
        text="The delivery failed last time, the goods were undeliverable to our warehouse. Please check.",
    )
    assert detect_bounce(msg) is None


def test_out_of_office_with_null_return_path_is_not_a_bounce() -> None:
    msg = ClassifierInput(
        subject="Automatic reply: LED panels",
        from_addr="anna@example.com",
        headers={"return-path": "<>", "auto-submitted": "auto-replied"},
        text="I am out of the office until 2 December.",
    )
    assert detect_bounce(msg) is None
