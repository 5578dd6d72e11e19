"""Hostile MIME structure is refused before parsing, with a reason naming the limit; the encoded-word decoder is
linear and gives the stdlib's results.

Each attack here cost the parser seconds to a minute before the limits (100,000 parts: 68 s; 200,000 encoded
words in a Subject: 55 s inside email.header.decode_header; 20,000 Content-Type parameters: 3 s). Timing is
measured in bench/bench_parsing.py; these tests check the outcome only.
"""

from __future__ import annotations

import base64
import random
from email.header import decode_header

import pytest

from laifaxin_shared.mime import MimeLimits, QuarantineError, check_limits, parse_message
from laifaxin_shared.mime.encoded_words import decode_words

HEAD = b"From: a@example.com\nTo: b@example.com\nSubject: s\nMessage-ID: <x@example.com>\n"


def multipart(parts: int) -> bytes:
    return (
        HEAD
        + b'Content-Type: multipart/mixed; boundary="b"\n\n'
        + b"--b\nContent-Type: text/plain\n\nx\n" * parts
        + b"--b--\n"
    )


def nested(depth: int) -> bytes:
    body = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(depth))
    body += b"Content-Type: text/plain\n\nx\n" + b"".join(b"--b%d--\n" % i for i in reversed(range(depth)))
    return HEAD + body


def reason(raw: bytes, limits: MimeLimits | None = None) -> str:
    with pytest.raises(QuarantineError) as caught:
        parse_message(raw, limits=limits)
    return caught.value.reason


def test_a_hundred_thousand_parts_are_refused_before_parsing() -> None:
    assert reason(multipart(100_000)) == "too_many_parts"
    assert reason(multipart(11), MimeLimits(max_parts=10)) == "too_many_parts"
    assert len(parse_message(multipart(10), limits=MimeLimits(max_parts=10)).text.split()) == 10


def test_parts_are_counted_by_their_boundary_not_by_any_line_starting_with_dashes() -> None:
    text = HEAD + b"Content-Type: text/plain\n\n" + b"-- \nsignature\n" * 5000
    assert parse_message(text).text.startswith("--")
    # Many dash lines and a boundary declared: counted per boundary at C speed.
    mixed = multipart(3).replace(b"--b--\n", b"--c\n" * 5000 + b"--b--\n")
    assert parse_message(mixed, limits=MimeLimits(max_parts=10)).text
    assert reason(mixed.replace(b"--c\n", b"--b\n\n"), MimeLimits(max_parts=10)) == "too_many_parts"
    # Lines that begin with the boundary but are not delimiter lines are looked at up to 4 * max_parts.
    assert reason(mixed.replace(b"--c\n", b"--bx\n"), MimeLimits(max_parts=10)) == "too_many_parts"


def test_many_boundary_declarations_are_refused() -> None:
    raw = HEAD + b"Content-Type: text/plain\n\n" + b"".join(b"boundary=x%d\n" % i for i in range(1001))
    assert reason(raw) == "too_many_parts"


def test_deep_nesting_is_refused() -> None:
    assert reason(nested(1000)) == "too_deep"
    assert parse_message(nested(20)).text == "x"


def test_two_hundred_thousand_encoded_words_are_refused_and_decoded_in_linear_time_when_allowed() -> None:
    subject = b"=?utf-8?q?a?= " * 200_000
    raw = HEAD.replace(b"Subject: s\n", b"Subject: " + subject + b"\n") + b"\nbody\n"
    assert reason(raw) == "header_too_large"  # 2.8 MB field: over max_header_field_bytes first
    few = HEAD.replace(b"Subject: s\n", b"Subject: " + b"=?utf-8?q?a?= " * 1001 + b"\n") + b"\nbody\n"
    assert reason(few) == "too_many_encoded_words"
    unlimited = MimeLimits(
        max_header_bytes=1 << 30,
        max_header_field_bytes=1 << 30,
        max_header_line_bytes=1 << 30,
        max_encoded_words=1 << 30,
    )
    # The adjacent words join (RFC 2047 6.2) and the Subject is capped: decoded at all means linear (the stdlib
    # took 55 s here); bench_parsing measures it.
    assert parse_message(raw, limits=unlimited).subject == "a" * 4096


def test_header_blocks_fields_and_lines_have_limits() -> None:
    many_fields = HEAD + b"X-A: b\n" * 50_000 + b"\nbody\n"
    assert reason(many_fields) == "header_too_large"
    long_line = HEAD + b"X-Long: " + b"x" * 40_000 + b"\n\nbody\n"
    assert reason(long_line) == "header_too_large"
    folded = HEAD + b"X-Folded: x\n" + (b" " + b"y" * 1000 + b"\n") * 70 + b"\nb\n"
    assert reason(folded) == "header_too_large"
    part_head = multipart(1).replace(b"--b\n", b"--b\n" + b"X-A: b\n" * 40_000, 1)
    assert reason(part_head) == "header_too_large"


def test_a_long_structured_field_is_kept_unstructured_not_parsed_quadratically() -> None:
    params = b"; ".join(b"a%d=b" % i for i in range(3000))
    raw = HEAD + b"Content-Type: text/plain; charset=utf-8; " + params + b"\n\nhello\n"
    parsed = parse_message(raw)
    assert parsed.text == "hello" and "header_too_long" in parsed.defects
    assert parsed.content_type == "text/plain"


def test_ordinary_messages_pass_the_limits() -> None:
    check_limits(multipart(50), MimeLimits())
    check_limits(nested(10), MimeLimits())
    check_limits(b"", MimeLimits())
    subject = "=?utf-8?B?" + base64.b64encode("询价".encode()).decode() + "?="
    raw = HEAD.replace(b"Subject: s", f"Subject: {subject}".encode()) + b"\nx\n"
    assert parse_message(raw).subject == "询价"


ATOMS = ["=?utf-8?q?a_b?=", "=?UTF-8?B?5byg?=", "=?gb2312?b?1cU=?=", " ", "  ", "x", "\n ", "=?", "?=",
         "=?x?q??=", "=?a?b?YQ?=", "=?a?b?Y?=", "\t", "=?utf-8?q?=E5=BC=A0?=", "=?a?Q?b?= c"]  # fmt: skip


def stdlib(value: str) -> list[tuple[bytes, str | None]] | str:
    try:
        runs = decode_header(value)
    except Exception as exc:  # noqa: BLE001  # the error type is what is compared
        return type(exc).__name__
    return [(r.encode("raw-unicode-escape") if isinstance(r, str) else r, c) for r, c in runs]


def ours(value: str) -> list[tuple[bytes, str | None]] | str:
    try:
        return decode_words(value)
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__


def test_the_linear_decoder_gives_the_stdlib_results() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        value = "".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 8)))
        assert ours(value) == stdlib(value), value
