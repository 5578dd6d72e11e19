"""parse_message on messages built here, one rule each (RFC 5322, 2045-2047, 2231, 3464, 6522, 2369, 3834)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from laifaxin_shared.events.mail import TEXT_CAP_CHARS, MailReceived
from laifaxin_shared.mime import CLASSIFICATION_HEADERS, ParsedMessage, QuarantineError, parse_message
from laifaxin_shared.mime import message as message_module


def raw(headers: str, body: str | bytes = "Hello.\n", *, crlf: bool = False) -> bytes:
    """A message from a header block (one field per line) and a body; LF line ends unless ``crlf``."""
    head = headers.strip("\n").encode("utf-8") + b"\n\n"
    data = head + (body if isinstance(body, bytes) else body.encode("utf-8"))
    return data.replace(b"\n", b"\r\n") if crlf else data


def b_word(text: str, label: str, codec: str | None = None) -> str:
    """An RFC 2047 B-encoded word of ``text`` encoded with ``codec`` and labelled ``label``."""
    return f"=?{label}?B?{base64.b64encode(text.encode(codec or label)).decode()}?="


BASIC = "From: Buyer <buyer@example.com>\nTo: sales@laifaxin.com\nSubject: hi\nMessage-ID: <m1@example.com>"


# --- RFC 2047 encoded words and charsets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "codec", "text"),
    [
        ("UTF-8", "utf-8", "回复: Quotation for LED panels ✓"),
        ("GBK", "gbk", "询价：LED 面板"),
        ("gb2312", "gbk", "朱镕基 和 吉喆 的询价"),  # 镕 and 喆 are GBK, not GB2312: a mislabel
        ("GB18030", "gb18030", "报价单 𠀀"),
        ("Big5", "big5", "詢價：LED 面板"),
        ("big5", "big5hkscs", "香港𨋢 詢價"),  # 𨋢 is HKSCS only, labelled plain Big5
        ("ISO-2022-JP", "iso2022_jp", "お問い合わせ：見積もり"),
    ],
)
def test_rfc2047_subject_is_decoded_in_its_charset(label: str, codec: str, text: str) -> None:
    parsed = parse_message(raw(f"From: a@example.com\nSubject: {b_word(text, label, codec)}"))
    assert parsed.subject == text


def test_rfc2047_q_encoding_and_adjacent_words_join_without_space() -> None:
    subject = "=?utf-8?Q?Caf=C3=A9_price?= =?utf-8?q?_list?= and more"
    assert (
        parse_message(raw(f"From: a@example.com\nSubject: {subject}")).subject == "Café price list and more"
    )


def test_multibyte_character_split_across_two_encoded_words_survives() -> None:
    data = "价格".encode()
    first, second = base64.b64encode(data[:4]).decode(), base64.b64encode(data[4:]).decode()
    subject = f"=?utf-8?B?{first}?=\n =?utf-8?B?{second}?="
    assert parse_message(raw(f"From: a@example.com\nSubject: {subject}")).subject == "价格"


def test_malformed_encoded_word_is_kept_readable_and_noted() -> None:
    parsed = parse_message(raw("From: a@example.com\nSubject: Re: =?utf-8?B?5Lu35!!!?= offer"))
    assert parsed.subject.startswith("Re:")
    assert parsed.subject.endswith("offer")
    assert "encoded_word_invalid" in parsed.defects


def test_unknown_charset_in_encoded_word_falls_back_to_utf8() -> None:
    word = "=?x-unknown?B?" + base64.b64encode("报价".encode()).decode() + "?="
    assert parse_message(raw(f"From: a@example.com\nSubject: {word}")).subject == "报价"


def test_raw_8bit_headers_decode_as_utf8_or_with_the_body_charset() -> None:
    utf8 = parse_message(raw("From: 张伟 <zw@example.cn>\nSubject: 询价 LED"))
    assert utf8.subject == "询价 LED"
    assert utf8.from_ is not None and utf8.from_.name == "张伟"
    gbk_head = "From: a@example.cn\nSubject: 询价单\nContent-Type: text/plain; charset=GBK\n\n".encode("gbk")
    gbk = parse_message(gbk_head + "正文".encode("gbk"))
    assert gbk.subject == "询价单"
    assert gbk.text == "正文"


def test_gb2312_labelled_body_with_gbk_characters_decodes_as_gb18030() -> None:
    body = "朱镕基先生，吉喆的报价请见附件。".encode("gbk")
    parsed = parse_message(raw(f"{BASIC}\nContent-Type: text/plain; charset=gb2312", body))
    assert parsed.text == "朱镕基先生，吉喆的报价请见附件。"


def test_big5_labelled_body_with_hkscs_characters() -> None:
    body = "𨋢 維修報價".encode("big5hkscs")
    parsed = parse_message(raw(f"{BASIC}\nContent-Type: text/plain; charset=big5", body))
    assert parsed.text == "𨋢 維修報價"


def test_iso2022jp_body_with_nec_extension_characters() -> None:
    # CP50220 writes NEC row-13 characters (①) inside an ESC $ B (JIS X 0208) run.
    body = b"\x1b$B-!\x1b(B test \x1b$B$*Ld$$9g$o$;\x1b(B\n"
    parsed = parse_message(raw(f"{BASIC}\nContent-Type: text/plain; charset=ISO-2022-JP", body))
    assert parsed.text == "① test お問い合わせ"


def test_iso2022jp_body_without_a_charset_label_is_recognised() -> None:
    body = "お問い合わせ".encode("iso2022_jp")
    assert parse_message(raw(BASIC, body)).text == "お問い合わせ"


def test_latin1_label_on_utf8_bytes_and_missing_label_on_gbk_bytes() -> None:
    mislabelled = parse_message(raw(f"{BASIC}\nContent-Type: text/plain; charset=iso-8859-1", "Grüße, Zoë"))
    assert mislabelled.text == "Grüße, Zoë"
    unlabelled = parse_message(raw(BASIC, "您好，请报价。".encode("gbk")))
    assert unlabelled.text == "您好，请报价。"
    latin = parse_message(
        raw(f"{BASIC}\nContent-Type: text/plain; charset=iso-8859-1", "Grüße".encode("latin-1"))
    )
    assert latin.text == "Grüße"


def test_nul_bytes_and_undecodable_bytes_leave_storable_text() -> None:
    parsed = parse_message(raw(f"{BASIC}\nContent-Type: text/plain; charset=utf-8", b"a\x00b \xff\xfe c"))
    assert "\x00" not in parsed.text and parsed.text.startswith("ab ")
    parsed.to_event(
        tenant_id="t", user_id="u", mailbox_id="m", folder="INBOX", uidvalidity=1, uid=1, raw_ref="r"
    )
    assert "body_charset_replacement" in parsed.defects


def test_unknown_body_charset_never_raises() -> None:
    parsed = parse_message(raw(f"{BASIC}\nContent-Type: text/plain; charset=x-nonsense", b"\xff\xfe\x80 ok"))
    assert parsed.text.endswith("ok")


# --- body text --------------------------------------------------------------------------------------------

HTML = """<html><head><title>T</title><style>p {color: red}</style>
<script>alert('x')</script></head><body><p>Dear   Sir,</p><div>Please quote
500&nbsp;pcs.<br>Best regards<br/>Li Wei</div><table><tr><td>A</td><td>B</td></tr></table>
<!-- tracking comment --></body></html>"""


def test_html_only_mail_is_reduced_to_text_with_line_breaks() -> None:
    parsed = parse_message(raw(f"{BASIC}\nContent-Type: text/html; charset=utf-8", HTML))
    assert parsed.html_only
    assert parsed.text == "Dear Sir,\nPlease quote 500 pcs.\nBest regards\nLi Wei\nA B"
    assert "alert" not in parsed.text and "color" not in parsed.text and "tracking" not in parsed.text


ALTERNATIVE = """--b1
Content-Type: text/plain; charset=utf-8

Plain version.
--b1
Content-Type: text/html; charset=utf-8

<p>HTML version.</p>
--b1--
"""


def test_alternative_uses_the_plain_part_without_running_the_html_reducer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(html: str, cap: int) -> tuple[str, bool]:
        raise AssertionError("BeautifulSoup must not run when text/plain exists")

    monkeypatch.setattr(message_module, "html_to_text", fail)
    parsed = parse_message(
        raw(f'{BASIC}\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b1"', ALTERNATIVE)
    )
    assert parsed.text == "Plain version."
    assert not parsed.html_only
    assert parsed.attachments == []


def test_blank_plain_alternative_falls_back_to_the_html_branch() -> None:
    body = ALTERNATIVE.replace("Plain version.", "  ")
    parsed = parse_message(raw(f'{BASIC}\nContent-Type: multipart/alternative; boundary="b1"', body))
    assert parsed.text == "HTML version."
    assert not parsed.html_only


def test_text_cap_truncates_and_flags() -> None:
    long = raw(BASIC, "x" * 5000)
    parsed = parse_message(long, text_cap=1000)
    assert len(parsed.text) == 1000 and parsed.text_truncated
    short = parse_message(raw(BASIC, "short"), text_cap=1000)
    assert short.text == "short" and not short.text_truncated
    huge_html = parse_message(
        raw(f"{BASIC}\nContent-Type: text/html", "<p>" + "word " * 200_000 + "</p>"), text_cap=500
    )
    assert 450 < len(huge_html.text) <= 500 and huge_html.text_truncated  # cut, then trailing space stripped


def test_default_cap_is_the_event_cap_and_event_fields_recap_a_larger_one() -> None:
    parsed = parse_message(raw(BASIC, "y" * (TEXT_CAP_CHARS + 10)), text_cap=TEXT_CAP_CHARS + 100)
    assert len(parsed.text) == TEXT_CAP_CHARS + 10 and not parsed.text_truncated
    fields = parsed.event_fields()
    assert len(fields["text"]) == TEXT_CAP_CHARS and fields["text_truncated"]
    assert len(parse_message(raw(BASIC, "y" * (TEXT_CAP_CHARS + 10))).text) == TEXT_CAP_CHARS


def test_over_max_size_is_quarantined() -> None:
    with pytest.raises(QuarantineError) as caught:
        parse_message(raw(BASIC, "z" * 2000), max_size=1000)
    assert caught.value.reason == "too_large"
    assert "1000" in caught.value.detail


def test_dos_line_endings() -> None:
    parsed = parse_message(raw(BASIC + "\nSubject2: x", "line one\nline two\n", crlf=True))
    assert parsed.subject == "hi"
    assert parsed.text == "line one\nline two"
    assert parsed.from_ is not None and parsed.from_.email == "buyer@example.com"


# --- attachments ------------------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300


def nested_message() -> bytes:
    gbk_name = "报价单镕.xlsx"
    b64 = lambda data: base64.encodebytes(data).decode()  # noqa: E731 - a one-line helper for this fixture
    rfc2231 = "".join(f"%{b:02X}" for b in gbk_name.encode("gbk"))
    inner = "From: old@example.com\nSubject: original\n\nOriginal body text.\n"
    body = f"""--mix
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Please see the attached quotation.
--alt
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html; charset=utf-8

<p>Please see the attached quotation.<img src="cid:logo@x"></p>
--rel
Content-Type: image/png
Content-ID: <logo@x>
Content-Transfer-Encoding: base64

{b64(PNG)}--rel--
--alt--
--mix
Content-Type: application/pdf; name="PI-2026-118.pdf"
Content-Disposition: attachment; filename="PI-2026-118.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}--mix
Content-Type: application/vnd.ms-excel
Content-Disposition: attachment; filename*=gb2312''{rfc2231}
Content-Transfer-Encoding: base64

{b64(b"sheet")}--mix
Content-Type: application/octet-stream; name="{b_word("规格书.doc", "gb2312", "gbk")}"
Content-Transfer-Encoding: base64

{b64(b"doc")}--mix
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment

attached text, not body
--mix
Content-Type: message/rfc822

{inner}
--mix--
"""
    return raw(f'{BASIC}\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="mix"', body)


def test_nested_multiparts_give_body_text_and_attachment_metadata() -> None:
    parsed = parse_message(nested_message())
    assert parsed.content_type == "multipart/mixed"
    assert parsed.text == "Please see the attached quotation."
    assert not parsed.html_only
    by_type = {(a.content_type, a.filename): a for a in parsed.attachments}
    assert by_type[("image/png", "")].inline
    assert by_type[("image/png", "")].size_bytes == len(PNG)
    pdf = by_type[("application/pdf", "PI-2026-118.pdf")]
    assert pdf.size_bytes == len(PDF) and not pdf.inline
    assert by_type[("application/vnd.ms-excel", "报价单镕.xlsx")].size_bytes == 5  # RFC 2231, GB2312 label
    assert ("application/octet-stream", "规格书.doc") in by_type  # RFC 2047 word in a quoted name
    assert ("text/plain", "notes.txt") in by_type
    attached = by_type[("message/rfc822", "")]
    assert attached.size_bytes > 40
    assert "Original body text" not in parsed.text
    assert "attached text" not in parsed.text
    assert len(parsed.attachments) == 6


def test_single_part_non_text_message_is_one_attachment() -> None:
    msg = EmailMessage()
    msg["From"] = "scanner@example.com"
    msg.set_content(PDF, maintype="application", subtype="pdf", filename="scan.pdf")
    parsed = parse_message(msg.as_bytes())
    assert parsed.text == ""
    assert [(a.filename, a.size_bytes) for a in parsed.attachments] == [("scan.pdf", len(PDF))]


def test_missing_final_boundary_still_parses_and_is_noted() -> None:
    body = "--b\nContent-Type: text/plain\n\nfirst part\n--b\nContent-Type: text/plain\n\nsecond part\n"
    parsed = parse_message(raw(f'{BASIC}\nContent-Type: multipart/mixed; boundary="b"', body))
    assert "first part" in parsed.text and "second part" in parsed.text
    assert "close_boundary_not_found" in parsed.defects


# --- headers, addresses, threading -------------------------------------------------------------------------


def test_threading_headers_without_brackets_oldest_first() -> None:
    headers = (
        "From: a@example.com\nMessage-ID: <CAFk2u7x+abc@mail.gmail.com>\n"
        "In-Reply-To: <20261120.ab12@laifaxin.com>\n"
        "References: <root@laifaxin.com>\n <mid@example.com>\n\t<20261120.ab12@laifaxin.com>"
    )
    parsed = parse_message(raw(headers))
    assert parsed.message_id == "CAFk2u7x+abc@mail.gmail.com"
    assert parsed.in_reply_to == "20261120.ab12@laifaxin.com"
    assert parsed.references == ["root@laifaxin.com", "mid@example.com", "20261120.ab12@laifaxin.com"]


def test_no_message_id_still_has_content_hash() -> None:
    data = raw("From: a@example.com\nSubject: no id")
    parsed = parse_message(data)
    assert parsed.message_id == ""
    assert parsed.content_hash == hashlib.sha256(data).hexdigest()
    assert parsed.size_bytes == len(data)


def test_classification_headers_are_selected_lowercased_decoded_and_joined() -> None:
    headers = (
        "From: a@example.com\nReturn-Path: <>\nAuto-Submitted: auto-replied\nX-Autoreply: yes\n"
        "Precedence: bulk\nList-Id: Buyers <buyers.example.com>\n"
        "List-Unsubscribe: <mailto:u@example.com>,\n <https://example.com/u>\n"
        "X-Failed-Recipients: x@example.com\nX-Auto-Response-Suppress: All\n"
        f"X-Mailer: {b_word('Foxmail 7.2', 'utf-8')}\nX-Loop: one\nX-Loop: two\n"
        "Received: from mx by mx\nDKIM-Signature: v=1\nContent-Type: text/plain; charset=utf-8"
    )
    parsed = parse_message(raw(headers))
    assert parsed.headers == {
        "return-path": "<>",
        "auto-submitted": "auto-replied",
        "x-autoreply": "yes",
        "precedence": "bulk",
        "list-id": "Buyers <buyers.example.com>",
        "list-unsubscribe": "<mailto:u@example.com>, <https://example.com/u>",
        "x-failed-recipients": "x@example.com",
        "x-auto-response-suppress": "All",
        "x-mailer": "Foxmail 7.2",
        "x-loop": "one\ntwo",
        "content-type": "text/plain; charset=utf-8",
    }
    assert set(parsed.headers) <= CLASSIFICATION_HEADERS


def test_addresses_with_encoded_names_commas_and_groups() -> None:
    name = b_word("Zhang, Wei 张伟", "utf-8")
    headers = (
        f"From: {name} <zw@example.cn>\n"
        f'To: "{b_word("销售", "gb2312", "gbk")}" <sales@laifaxin.com>, undisclosed-recipients:;\n'
        "Cc: a@example.com, B <b@example.com>\nReply-To: reply@example.cn"
    )
    parsed = parse_message(raw(headers))
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.email) == ("Zhang, Wei 张伟", "zw@example.cn")
    assert [(a.name, a.email) for a in parsed.to] == [("销售", "sales@laifaxin.com")]
    assert [(a.name, a.email) for a in parsed.cc] == [("", "a@example.com"), ("B", "b@example.com")]
    assert [a.email for a in parsed.reply_to] == ["reply@example.cn"]


def test_malformed_addresses_keep_the_addr_spec() -> None:
    parsed = parse_message(
        raw('From: "A Person" email@example.com>\nTo: <bar@example.org\nCc: baz@example.org>')
    )
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.email) == ("A Person", "email@example.com")
    assert [a.email for a in parsed.to] == ["bar@example.org"]
    assert [a.email for a in parsed.cc] == ["baz@example.org"]


def test_headers_that_make_policy_default_raise_fall_back_to_the_raw_value() -> None:
    # In CPython 3.11 reading these through policy.default raises IndexError.
    parsed = parse_message(raw('From: a@example.com\nTo: "\nCc: <\nMessage-ID: <@>\nSubject: ok'))
    assert parsed.subject == "ok"
    assert parsed.message_id == "@"
    assert parsed.from_ is not None and parsed.from_.email == "a@example.com"


def test_missing_headers_give_defaults() -> None:
    parsed = parse_message(raw("Subject: only a subject", "text"))
    assert parsed.from_ is None and parsed.to == [] and parsed.date is None
    assert parsed.content_type == "text/plain"
    assert parsed.text == "text"


def test_date_is_aware_utc_and_bad_dates_are_none() -> None:
    parsed = parse_message(raw("From: a@example.com\nDate: Sat, 21 Nov 2026 16:29:30 +0800"))
    assert parsed.date == datetime(2026, 11, 21, 8, 29, 30, tzinfo=UTC)
    assert parse_message(raw("From: a@example.com\nDate: Sat, 21 Nov 2026 08:29:30 -0000")).date == datetime(
        2026, 11, 21, 8, 29, 30, tzinfo=UTC
    )
    bad = parse_message(raw("From: a@example.com\nDate: tomorrow-ish"))
    assert bad.date is None and "date_invalid" in bad.defects


# --- DSN (RFC 3464 / RFC 6522) -----------------------------------------------------------------------------

DSN = """--dsn
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com.
I'm sorry to have to inform you that your message could not be delivered.

<nobody@example.com>: host mx.example.com said: 550 5.1.1 User unknown
--dsn
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com
Arrival-Date: Sat, 21 Nov 2026 08:29:30 +0000

Final-Recipient: rfc822; nobody@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--dsn
Content-Type: text/rfc822-headers

From: sales@laifaxin.com
Subject: Quotation
--dsn--
"""


def test_dsn_report_type_and_delivery_status_text() -> None:
    headers = (
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\nReturn-Path: <>\n"
        "Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"'
    )
    parsed = parse_message(raw(headers, DSN))
    assert parsed.content_type == "multipart/report"
    assert parsed.report_type == "delivery-status"
    assert parsed.delivery_status is not None
    assert "Final-Recipient: rfc822; nobody@example.com" in parsed.delivery_status
    assert "Status: 5.1.1" in parsed.delivery_status
    assert "Reporting-MTA: dns; mx.example.com" in parsed.delivery_status
    assert parsed.text.startswith("This is the mail system")
    assert "Quotation" not in parsed.text
    assert [a.content_type for a in parsed.attachments] == ["text/rfc822-headers"]
    assert parsed.from_ is not None and parsed.from_.email == "MAILER-DAEMON@mx.example.com"


# --- quarantine --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \r\n\r\n ", "empty"),
        (bytes(range(256)) * 8, "no_headers"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, "no_headers"),
        (b"just some words\nthat are not mail\n", "no_headers"),
        (b"Flavour: vanilla\nTopping: none\n\nnot a message either\n", "not_a_message"),
    ],
)
def test_bytes_that_are_not_a_message_are_quarantined_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(QuarantineError) as caught:
        parse_message(data)
    assert caught.value.reason == reason
    assert str(caught.value)


def test_negative_text_cap_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="text_cap"):
        parse_message(raw(BASIC), text_cap=-1)


# --- the event --------------------------------------------------------------------------------------------


def test_parsed_message_builds_a_valid_mail_received_event() -> None:
    parsed = parse_message(nested_message())
    event = parsed.to_event(
        tenant_id="tenant-acme",
        user_id="u_42",
        mailbox_id="mbx_01JD5X6Q8ZK3",
        folder="INBOX",
        uidvalidity=1732170000,
        uid=4711,
        raw_ref="sync:raw_messages/mbx_01JD5X6Q8ZK3:INBOX:1732170000:4711",
    )
    assert isinstance(event, MailReceived)
    assert event.ref.message_id == "m1@example.com"
    assert event.text == parsed.text and event.attachments == parsed.attachments
    assert event.from_ == parsed.from_
    again = MailReceived.model_validate_json(event.model_dump_json(by_alias=True))
    assert again == event
    assert json.loads(event.model_dump_json(by_alias=True))["from"]["email"] == "buyer@example.com"


def test_event_fields_are_exactly_mail_received_fields() -> None:
    fields = parse_message(raw(BASIC)).event_fields()
    assert set(fields) <= set(MailReceived.model_fields)
    assert set(fields) == set(ParsedMessage.model_fields) - {"message_id", "defects"}


def test_content_type_that_makes_the_stdlib_parser_raise_keeps_the_message() -> None:
    # "charset*" with no value: policy.default's Content-Type parser raises IndexError (CPython 3.11),
    # and the feed parser reads Content-Type while parsing, so this used to lose the whole message.
    body = "--m\nContent-Type: text/plain; charset*\n\nstill here\n--m--\n"
    parsed = parse_message(raw(f'{BASIC}\nContent-Type: multipart/mixed; boundary="m"; x*0*', body))
    assert parsed.content_type == "multipart/mixed"
    assert parsed.text == "still here"
    assert "header_unparseable" in parsed.defects


def test_html_reduction_edge_cases() -> None:
    from laifaxin_shared.mime.html_text import html_to_text

    assert html_to_text("<div>a<br></div><div>b</div><br><br>c", 100) == ("a\nb\n\nc", False)
    assert html_to_text("<noscript><style>x</style><p>hidden</p></noscript><p>shown</p>", 100)[0] == "shown"
    assert (
        html_to_text("<!DOCTYPE html><p>&lt;ok&gt; &amp; 你好&#33;</p><![CDATA[x]]>", 100)[0]
        == "<ok> & 你好!"
    )
    flat = "<div>row</div>" * 20_000  # many siblings: rendering must stay linear (bs4 inserts are not)
    text, cut = html_to_text(flat, 100)
    assert text.startswith("row\nrow") and cut


FLOWED = (
    "Dear Sir, we can offer 500 pcs at \n"
    "USD 1.25 each, delivery in 30 \n"
    "days.\n"
    "\n"
    "> On Monday you wrote: please \n"
    "> quote.\n"
    ">> older \n"
    ">> text\n"
    " >From the stuffed line\n"
    "-- \n"
    "Li Wei\n"
)


def test_format_flowed_soft_breaks_are_joined() -> None:
    ctype = "Content-Type: text/plain; charset=utf-8; format=flowed"
    parsed = parse_message(raw(f"{BASIC}\n{ctype}", FLOWED))
    assert parsed.text == (
        "Dear Sir, we can offer 500 pcs at USD 1.25 each, delivery in 30 days.\n\n"
        "> On Monday you wrote: please quote.\n>> older text\n>From the stuffed line\n-- \nLi Wei"
    )
    delsp = parse_message(raw(f"{BASIC}\n{ctype}; delsp=yes", "価格は \n500円です。\n"))
    assert delsp.text == "価格は500円です。"
    fixed = parse_message(raw(f"{BASIC}\nContent-Type: text/plain; charset=utf-8", FLOWED))
    assert fixed.text.startswith("Dear Sir, we can offer 500 pcs at \nUSD")
