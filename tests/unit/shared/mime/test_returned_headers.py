"""The Message-ID and recipients of the message a delivery status notification returns (RFC 3464 section 2,
RFC 6522 section 3), as the parser puts them in ``original_message_id`` / ``original_recipients``."""

from __future__ import annotations

from laifaxin_shared.mime import parse_message

HEADERS_DSN = b"""From: MAILER-DAEMON@mx.example.net
To: sales@acme.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn.1@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; nobody@example.net
Action: failed
Status: 5.1.1

--b1
Content-Type: text/rfc822-headers

From: sales@acme.example
To: Nobody <Nobody@Example.NET>, other@example.net
Subject: Quotation
Message-ID: <lfx.42.cmd-1@mail.laifaxin.test>

--b1--
"""

RFC822_BOUNCE = b"""From: Mail Delivery System <Mailer-Daemon@mx.example.de>
To: sales@acme.example
Subject: Mail delivery failed
Message-ID: <bounce.2@mx.example.de>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b2"

--b2
Content-Type: text/plain

A message that you sent could not be delivered.

--b2
Content-Type: message/rfc822

From: sales@acme.example
To: jonas@firma.example
Cc: anna@firma.example
Subject: Offer
Message-ID: <orig.7@acme.example>

Hello
--b2--
"""


def test_a_dsn_with_text_rfc822_headers_names_the_original() -> None:
    parsed = parse_message(HEADERS_DSN)
    assert parsed.report_type == "delivery-status"
    assert parsed.original_message_id == "lfx.42.cmd-1@mail.laifaxin.test"
    assert parsed.original_recipients == ["nobody@example.net", "other@example.net"]
    event = parsed.to_event(
        tenant_id="t", user_id="u", mailbox_id="m", folder="INBOX", uidvalidity=1, uid=1, raw_ref="r"
    )
    assert event.original_message_id == "lfx.42.cmd-1@mail.laifaxin.test"


def test_a_bounce_attaching_the_message_names_it() -> None:
    parsed = parse_message(RFC822_BOUNCE)
    assert parsed.original_message_id == "orig.7@acme.example"
    assert parsed.original_recipients == ["jonas@firma.example", "anna@firma.example"]


def test_an_ordinary_message_names_no_original() -> None:
    parsed = parse_message(
        b"From: a@b.example\nTo: c@d.example\nSubject: hi\nMessage-ID: <x@b.example>\n\nhello\n"
    )
    assert parsed.original_message_id is None and parsed.original_recipients == []
