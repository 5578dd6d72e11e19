"""The inbox's pure parts: raw-read grants, HTML sanitising, on-demand MIME parsing, read-model keys."""

from __future__ import annotations

import base64
import os
import time

import pytest

from laifaxin_inbox import keys
from laifaxin_inbox.content import parse, stream_attachment
from laifaxin_inbox.sanitize import sanitize_html
from laifaxin_shared import content_token

SECRET = "s" * 8 + "0123456789abcdef0123456789abcdef"


def test_grant_round_trip_and_refusals() -> None:
    h = content_token.sign(SECRET, "sync:raw_messages/m:INBOX:1:2", ttl_s=30)
    args = (h[content_token.HEADER_REF], h[content_token.HEADER_EXPIRES], h[content_token.HEADER_SIGNATURE])
    assert content_token.verify(SECRET, *args) == "sync:raw_messages/m:INBOX:1:2"
    with pytest.raises(content_token.GrantError, match="bad signature"):
        content_token.verify(SECRET, "sync:raw_messages/other", args[1], args[2])
    with pytest.raises(content_token.GrantError, match="bad signature"):
        content_token.verify("another-secret-0123456789abcdef0123", *args)
    old = content_token.sign(SECRET, "r", ttl_s=1, now=time.time() - 100)
    with pytest.raises(content_token.GrantError, match="expired"):
        content_token.verify(
            SECRET, "r", old[content_token.HEADER_EXPIRES], old[content_token.HEADER_SIGNATURE]
        )
    with pytest.raises(content_token.GrantError, match="missing"):
        content_token.verify(SECRET, "r", None, None)
    with pytest.raises(content_token.GrantError, match="disabled"):
        content_token.verify("", *args)
    with pytest.raises(ValueError, match="ttl_s"):
        content_token.sign(SECRET, "r", ttl_s=10_000)


def test_sanitiser_removes_scripts_handlers_remote_images() -> None:
    safe = sanitize_html(
        '<div onmouseover="x()" style="background:url(http://t.example/a)">Hi'
        "<script>steal()</script><style>body{}</style>"
        '<img src="https://t.example/p.gif" width="1"><img src="cid:part1"><iframe src="https://e.x"></iframe>'
        '<a href="javascript:alert(1)">a</a><a href="mailto:x@y.z">m</a></div>'
    )
    for bad in ("script", "steal", "onmouseover", "t.example", "iframe", "javascript:", "style"):
        assert bad not in safe.html
    assert 'src="cid:part1"' in safe.html and 'href="mailto:x@y.z"' in safe.html
    assert 'rel="noopener noreferrer"' in safe.html
    assert safe.remote_images_blocked == 1


def test_parse_finds_html_and_streams_attachments_exactly() -> None:
    blob = os.urandom(200_003)
    raw = (
        b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/html; charset=gb2312\r\n\r\n" + "<p>你好</p>".encode("gb2312") + b"\r\n"
        b"--B\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(blob)
        + b"--B\r\nContent-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment; filename=a.txt\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--B--\r\n"
    )
    parsed = parse(raw)
    assert parsed.html is not None and "你好" in parsed.html
    png, txt = parsed.attachments
    assert (png.content_type, png.inline, png.content_id) == ("image/png", True, "logo@x")
    assert b"".join(stream_attachment(png)) == blob
    assert txt.filename == "a.txt" and b"".join(stream_attachment(txt)).rstrip() == "café".encode()


def test_index_prefixes_keep_owners_apart_and_ids_round_trip() -> None:
    assert not keys.listing_prefix("t", "u2").startswith(keys.listing_prefix("t", "u"))
    assert keys.listing_prefix("t", "u") != keys.category_prefix("t", "u", "to_reply")
    entry = f"{keys.ts(42)}{keys.SEP}m/INBOX/1/9"
    assert (keys.entry_time(entry), keys.entry_value(entry)) == (42, "m/INBOX/1/9")
    assert f"{keys.ts(5)}|z" < f"{keys.ts(40)}|a"
    assert keys.key_of(keys.public_id("mbx/收件箱/1/2")) == "mbx/收件箱/1/2"
    assert keys.thread_root("me", "parent", ["root", "parent"]) == "root"
    assert keys.thread_root("me", "", []) == "me"
