"""Fuzzing the IMAP reply readers (laifaxin_sync.imap_parse) with hypothesis.

Contract: on any reply lines (response lines as ``bytes``, literals as ``bytearray``, as aioimaplib gives them)
each reader returns typed values or raises :class:`ImapResponseError` (a number outside its grammar); nothing
else escapes, every example within the hypothesis ``deadline``. Well-formed replies built from generated values
read back exactly. Size and time budget: tests/support/fuzz.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from laifaxin_sync.imap_parse import (
    MOD_SEQUENCE_MAX,
    NZ_NUMBER_MAX,
    ImapResponseError,
    has_exists,
    imap_number,
    parse_fetch,
    parse_list,
    parse_search,
    parse_select,
    parse_status,
)
from tests.support.fuzz import FUZZ

TOKENS = st.sampled_from(
    [b"UID", b"FETCH", b"EXISTS", b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES", b"HIGHESTMODSEQ", b"RFC822.SIZE",
     b"INTERNALDATE", b"BODY[]", b"SEARCH", b"LIST", b"(", b")", b"[", b"]", b'"', b"{5}", b"NIL", b"0", b"1",
     b"4294967295", b"4294967296", b"9" * 30, b"9" * 5000, b"-1", b"\\Junk", b"\\Noselect", b'"/"', b"INBOX",
     b"OK", b"* ", b"\x00", b"\xff", b"\r\n", b" "]
)  # fmt: skip
LINE = st.one_of(st.lists(TOKENS, max_size=12).map(b" ".join), st.binary(max_size=60))
LINES = st.lists(st.one_of(LINE, st.binary(max_size=40).map(bytearray)), max_size=12)
READERS = (parse_fetch, parse_list, parse_search, parse_select, parse_status, has_exists)


@FUZZ
@given(LINES)
def test_any_reply_is_read_or_refused_with_a_clear_error(lines: list[bytes | bytearray]) -> None:
    for reader in READERS:
        try:
            reader(lines)
        except ImapResponseError as exc:
            assert "server sent" in str(exc) and len(str(exc)) < 300


UIDS = st.integers(1, NZ_NUMBER_MAX)


@FUZZ
@given(
    st.lists(
        st.tuples(UIDS, st.binary(max_size=50), st.integers(0, NZ_NUMBER_MAX), st.booleans()), max_size=6
    )
)
def test_fetch_replies_read_back_what_they_carry(messages: list[tuple[int, bytes, int, bool]]) -> None:
    lines: list[bytes | bytearray] = []
    for seq, (uid, body, size, after) in enumerate(messages, start=1):
        items = f'UID {uid} INTERNALDATE "21-Nov-2026 08:29:41 +0800" RFC822.SIZE {size}'.encode()
        if after:  # the items after the literal, as some servers send them
            lines += [b"%d FETCH (BODY[] {%d}" % (seq, len(body)), bytearray(body), b" " + items + b")"]
        else:
            lines += [b"%d FETCH (" % seq + items + b" BODY[] {%d}" % len(body), bytearray(body), b")"]
    lines.append(b"Fetch completed.")
    got = parse_fetch(lines)
    assert [(m.uid, m.body, m.size) for m in got] == [(u, b, s) for u, b, s, _ in messages]
    assert all(m.internal_date == datetime(2026, 11, 21, 0, 29, 41, tzinfo=UTC) for m in got)


@FUZZ
@given(st.lists(UIDS, max_size=30), st.booleans())
def test_search_replies_read_back_their_uids(uids: list[int], word: bool) -> None:
    line = (b"SEARCH " if word else b"") + b" ".join(b"%d" % u for u in uids)
    assert parse_search([line, b"Search completed."]) == sorted(set(uids))


@FUZZ
@given(UIDS, UIDS, st.integers(0, NZ_NUMBER_MAX), st.integers(0, MOD_SEQUENCE_MAX))
def test_status_and_select_replies_read_back_their_counters(
    uidvalidity: int, uidnext: int, messages: int, modseq: int
) -> None:
    status = parse_status(
        [
            b"INBOX (MESSAGES %d UIDNEXT %d UIDVALIDITY %d HIGHESTMODSEQ %d)"
            % (messages, uidnext, uidvalidity, modseq)
        ]
    )
    assert (status.messages, status.uidnext, status.uidvalidity, status.highestmodseq) == (
        messages,
        uidnext,
        uidvalidity,
        modseq,
    )
    selected = parse_select(
        [
            b"%d EXISTS" % messages,
            b"OK [UIDVALIDITY %d] x" % uidvalidity,
            b"OK [UIDNEXT %d] y" % uidnext,
            b"done",
        ]
    )
    assert (selected.messages, selected.uidvalidity, selected.uidnext) == (messages, uidvalidity, uidnext)


@FUZZ
@given(st.one_of(st.integers(-(10**30), 10**30), st.text(alphabet="0123456789", max_size=6000)))
def test_numbers_are_read_only_within_their_range(value: int | str) -> None:
    text = str(value)
    for kind, low, high in (
        ("nz", 1, NZ_NUMBER_MAX),
        ("number", 0, NZ_NUMBER_MAX),
        ("modseq", 0, MOD_SEQUENCE_MAX),
    ):
        inside = text.isdigit() and len(text.lstrip("0")) <= 25 and low <= int(text) <= high
        try:
            assert imap_number(text, "X", kind) == int(text) and inside
        except ImapResponseError:
            assert not inside
