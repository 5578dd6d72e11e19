"""ClassifierInput.from_bytes / from_event: MIME decoding and bad input that must not raise."""

from __future__ import annotations

from laifaxin_classifier.classify import Classifier
from laifaxin_classifier.message import RAW_CAP_BYTES, ClassifierInput
from laifaxin_shared.events.mail import TEXT_CAP_CHARS, MailReceived

from .conftest import make_eml

DSN = b"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: sales@laifaxin.example
Subject: Undelivered Mail Returned to Sender
Date: Sat, 21 Nov 2026 08:29:30 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BB"

--BB
Content-Type: text/plain

This is the mail system at host mx.example.net.

--BB
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected:
    User unknown in virtual mailbox table

--BB--
"""


def test_rfc2047_subject_and_from_decoded() -> None:
    raw = make_eml("你好，请报价。", subject="回复: LED面板灯报价", sender="张伟 <zhang@example.cn>")
    msg = ClassifierInput.from_bytes(raw)
    assert msg.subject == "回复: LED面板灯报价"
    assert (msg.from_name, msg.from_addr) == ("张伟", "zhang@example.cn")
    assert msg.text == "你好，请报价。"
    assert msg.date is not None and msg.date.year == 2026


def test_relevant_headers_lowercased() -> None:
    raw = make_eml("x", headers={"Auto-Submitted": "auto-replied", "X-Unrelated": "1"})
    msg = ClassifierInput.from_bytes(raw)
    assert msg.headers["auto-submitted"] == "auto-replied"
    assert "x-unrelated" not in msg.headers


def test_html_only_reduced_to_text_with_the_quote_marked(classifier: Classifier) -> None:
    html = "<html><body><p>Please send <b>price</b>.</p><blockquote>Our MOQ is 100</blockquote></body></html>"
    msg = ClassifierInput.from_bytes(make_eml("", html=html))
    assert msg.html_only
    assert "Please send" in msg.text and "price" in msg.text
    assert "> Our MOQ is 100" in msg.text
    assert "MOQ" not in classifier.classify(msg).reply_text


def test_html_reply_keeps_only_the_new_text(classifier: Classifier) -> None:
    html = (
        '<div dir="ltr">Yes, please send the catalogue.</div><script>x=1</script><br>'
        '<div class="gmail_quote"><div class="gmail_attr">On Thu, Nov 20, 2026 at 9:00 AM Laifaxin Sales '
        "&lt;sales@laifaxin.test&gt; wrote:<br></div><blockquote>Would you like our price list for LED "
        "panels?</blockquote></div>"
    )
    raw = (
        "From: buyer@example.com\nTo: sales@laifaxin.test\nSubject: Re: LED panels\n"
        f"Content-Type: text/html; charset=utf-8\n\n{html}"
    ).encode()
    msg = ClassifierInput.from_bytes(raw)
    assert msg.html_only and "x=1" not in msg.text
    reply = classifier.classify(msg).reply_text
    assert "catalogue" in reply and "price list" not in reply


def test_unknown_charset_falls_back() -> None:
    raw = (
        b"From: a@example.com\nSubject: hi\nContent-Type: text/plain; charset=x-unknown-charset\n\n"
        + "Bitte senden Sie ein Angebot für 500 Stück.".encode("latin-1")
    )
    msg = ClassifierInput.from_bytes(raw)
    assert any(d.startswith("body-charset-") for d in msg.defects)  # the shared parser names the fallback
    assert "Angebot" in msg.text


def test_wrong_charset_label_does_not_raise() -> None:
    raw = (
        b"From: a@example.com\nSubject: hi\nContent-Type: text/plain; charset=us-ascii\n\n"
        + "请报价".encode()
    )
    msg = ClassifierInput.from_bytes(raw)
    assert msg.text  # decoded one way or another


def test_binary_garbage_gives_empty_text_and_defect() -> None:
    raw = (
        b"From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\n"
        + bytes(range(0, 32)) * 50
    )
    msg = ClassifierInput.from_bytes(raw)
    assert msg.text == ""
    assert "binary-garbage" in msg.defects


def test_not_a_message_at_all() -> None:
    msg = ClassifierInput.from_bytes(b"\x00\xff\xfe garbage \x00 no headers")
    assert isinstance(msg, ClassifierInput)


def test_huge_body_capped() -> None:
    raw = make_eml("price please " * 400_000)
    assert len(raw) > RAW_CAP_BYTES
    msg = ClassifierInput.from_bytes(raw)
    assert len(msg.text) == TEXT_CAP_CHARS
    assert msg.text_truncated
    assert "raw-truncated" in msg.defects


def test_delivery_status_part_extracted() -> None:
    msg = ClassifierInput.from_bytes(DSN)
    assert msg.content_type == "multipart/report"
    assert msg.report_type == "delivery-status"
    assert msg.delivery_status is not None
    assert "Status: 5.1.1" in msg.delivery_status
    assert "Final-Recipient: rfc822; gone@example.org" in msg.delivery_status


def _event(**overrides: object) -> MailReceived:
    fields: dict[str, object] = {
        "tenant_id": "t1",
        "user_id": "u_42",
        "ref": {"mailbox_id": "mbx_1", "folder": "INBOX", "uidvalidity": 1, "uid": 7, "message_id": "m@x"},
        "content_hash": "0" * 64,
        "subject": "AW: LED panels",
        "from": {"name": "Hans", "email": "Hans@Example.DE"},
        "headers": {"Auto-Submitted": "auto-replied", "x-failed-recipients": "a@x.org, b@y.org"},
        "text": "Ich bin bis zum 02.12.2026 nicht im Büro.",
        "size_bytes": 1000,
        "raw_ref": "sync:raw/1",
        "date": "2026-11-21T08:29:30Z",
    }
    fields.update(overrides)
    return MailReceived.model_validate(fields)


def test_from_event_maps_fields() -> None:
    msg = ClassifierInput.from_event(_event())
    assert msg.subject == "AW: LED panels"
    assert msg.from_addr == "hans@example.de"
    assert msg.headers["auto-submitted"] == "auto-replied"
    assert msg.failed_recipients == ("a@x.org", "b@y.org")
    assert msg.date is not None
