"""Damaged input never escapes parse_message as anything but a ParsedMessage or a QuarantineError.

Seeded mutations (flipped bytes, truncation, dropped and duplicated lines, swapped charset labels, broken
encoded words) of messages built here and of a few real ones; a ``parser_error`` quarantine would mean an
exception the per-header and per-part guards missed, so it fails the test too.
"""

from __future__ import annotations

import base64
import random

import pytest

from laifaxin_shared.mime import ParsedMessage, QuarantineError, parse_message
from tests.conftest import REAL_MAIL

SEED_MESSAGE = (
    "From: =?gb2312?B?" + base64.b64encode("张伟".encode("gbk")).decode() + "?= <zw@example.cn>\n"
    "To: sales@laifaxin.com, =?utf-8?q?B?= <b@example.com>\nSubject: =?utf-8?B?"
    + base64.b64encode("询价 LED".encode()).decode()
    + "?=\nMessage-ID: <seed@example.cn>\nReferences: <a@x> <b@y>\nDate: Sat, 21 Nov 2026 16:29:30 +0800\n"
    'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="m"\n\n'
    '--m\nContent-Type: multipart/alternative; boundary="a"\n\n--a\nContent-Type: text/plain; charset=gb2312\n'
    "Content-Transfer-Encoding: base64\n\n"
    + base64.encodebytes("朱镕基，请报价。".encode("gbk")).decode()
    + "--a\n"
    "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<p>=E8=AF=B7</p>\n--a--\n"
    "--m\nContent-Type: application/pdf; name*=utf-8''%E6%8A%A5%E4%BB%B7.pdf\nContent-Disposition: attachment\n"
    "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--m\nContent-Type: message/rfc822\n\nFrom: x@y\nSubject: z\n\nbody\n"
    "--m\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b\nStatus: 5.1.1\n"
    "--m--\n"
).encode()

INSERTS = [b"=?", b"?=", b"=?utf-8?B?", b"=?gb2312?Q?=FF", b"\x00", b"\xff\xfe", b"\r", b"\n\n", b"--m", b"--a--",
           b"; charset=x-nonsense", b"; charset*=''", b'"', b"<", b"\x1b$B", b"begin 644 x\n", b":"]  # fmt: skip


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        op = rng.randrange(5)
        at = rng.randrange(len(out))
        if op == 0:
            out[at] = rng.randrange(256)
        elif op == 1:
            out[at:at] = rng.choice(INSERTS)
        elif op == 2:
            del out[at : at + rng.randint(1, 40)]
        elif op == 3:
            end = out.find(b"\n", at)
            line = out[at : end + 1 if end >= 0 else len(out)]
            out[at:at] = line * rng.randint(1, 3)
        else:
            del out[at:]
    return bytes(out)


def seeds() -> list[bytes]:
    found = [SEED_MESSAGE, SEED_MESSAGE.replace(b"\n", b"\r\n")]
    if REAL_MAIL.is_dir():
        files = sorted(REAL_MAIL.rglob("*.eml"))
        found += [p.read_bytes() for p in files[:: max(1, len(files) // 12)]]
    return found


@pytest.mark.parametrize("seed", range(4))
def test_mutated_messages_parse_or_quarantine_with_a_known_reason(seed: int) -> None:
    rng = random.Random(seed)
    failures: list[str] = []
    for base in seeds():
        for _ in range(15):
            data = mutate(base, rng)
            try:
                result = parse_message(data)
            except QuarantineError as exc:
                if exc.reason == "parser_error":
                    failures.append(f"{exc} for {data[:80]!r}")
                continue
            assert isinstance(result, ParsedMessage)
            result.to_event(
                tenant_id="t", user_id="u", mailbox_id="m", folder="INBOX", uidvalidity=1, uid=1, raw_ref="r"
            )
    assert failures == []


def test_seed_message_parses_fully() -> None:
    parsed = parse_message(SEED_MESSAGE)
    assert parsed.subject == "询价 LED"
    assert parsed.text == "朱镕基，请报价。"
    assert parsed.from_ is not None and parsed.from_.name == "张伟"
    assert [a.filename for a in parsed.attachments] == ["报价.pdf", ""]
    assert parsed.delivery_status is not None and "Status: 5.1.1" in parsed.delivery_status


def test_leading_blank_lines_are_skipped_and_noted() -> None:
    parsed = parse_message(b"\r\n\r\nFrom: a@example.com\r\nSubject: s\r\n\r\nbody\r\n")
    assert parsed.subject == "s" and parsed.text == "body"
    assert "leading_blank_lines" in parsed.defects


def test_attachment_list_is_capped() -> None:
    parts = "".join(
        f'--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename="f{i}.bin"\n\nx\n'
        for i in range(150)
    )
    parsed = parse_message(
        f'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"\n\n{parts}--b--\n'.encode()
    )
    assert len(parsed.attachments) == 100
    assert "attachment_list_capped" in parsed.defects


def test_deep_nesting_is_cut_not_fatal() -> None:
    depth = 60
    opening = "".join(f'--b{i}\nContent-Type: multipart/mixed; boundary="b{i + 1}"\n\n' for i in range(depth))
    closing = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    body = opening + f"--b{depth}\nContent-Type: text/plain\n\ndeep\n--b{depth}--\n" + closing
    data = f'From: a@example.com\nContent-Type: multipart/mixed; boundary="b0"\n\n{body}'.encode()
    try:
        parsed = parse_message(data)
    except QuarantineError as exc:  # the stdlib parser itself may give up on depth: then a reason is given
        assert exc.reason == "parser_error" and "deep" in exc.detail
    else:
        assert "nesting_too_deep" in parsed.defects
