"""Reading IMAP replies (as aioimaplib returns them), Junk folder detection, UID sets."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from laifaxin_sync.folder_sync import imap_date
from laifaxin_sync.imap_parse import (
    NZ_NUMBER_MAX,
    ImapResponseError,
    find_junk,
    has_exists,
    imap_number,
    parse_fetch,
    parse_internaldate,
    parse_list,
    parse_search,
    parse_select,
    parse_status,
    quote_mailbox,
    uid_set,
)


def test_select_reply_counters() -> None:
    lines = [
        b"FLAGS (\\Answered \\Seen)",
        b"2 EXISTS",
        b"0 RECENT",
        b"OK [UIDVALIDITY 1795265029] UIDs valid",
        b"OK [UIDNEXT 3] Predicted next UID",
        b"OK [HIGHESTMODSEQ 7] Highest",
        b"[READ-ONLY] Examine completed (0.001 + 0.000 secs).",
    ]
    status = parse_select(lines)
    assert (status.uidvalidity, status.uidnext, status.messages, status.highestmodseq) == (
        1795265029,
        3,
        2,
        7,
    )


def test_select_without_uidnext_or_modseq() -> None:
    status = parse_select([b"5 EXISTS", b"OK [UIDVALIDITY 9] ok", b"Select completed."])
    assert status.uidnext is None and status.highestmodseq is None and status.messages == 5


def test_status_reply() -> None:
    status = parse_status(
        [b"Junk (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1795265029 HIGHESTMODSEQ 3)", b"Status completed."]
    )
    assert (status.messages, status.uidnext, status.uidvalidity, status.highestmodseq) == (
        2,
        3,
        1795265029,
        3,
    )


def test_exists_detection() -> None:
    assert has_exists([b"4 EXISTS"]) and has_exists([b"* 12 EXISTS"])
    assert not has_exists([b"3 EXPUNGE", b"2 FETCH (FLAGS (\\Seen))", bytearray(b"10 EXISTS")])


def test_list_and_special_use_junk() -> None:
    entries = parse_list(
        [
            b'(\\HasNoChildren \\Junk) "/" Junk',
            b'(\\HasNoChildren \\Sent) "/" Sent',
            b'(\\HasNoChildren) "/" INBOX',
            b"List completed.",
        ]
    )
    assert [e.name for e in entries] == ["Junk", "Sent", "INBOX"]
    junk = find_junk(entries)
    assert junk is not None and junk.name == "Junk"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'(\\HasNoChildren) "/" "&V4NXPpCuTvY-"', "垃圾邮件"),  # NetEase/QQ: 垃圾邮件 in modified UTF-7
        (b'(\\HasNoChildren) "." "INBOX.Spam"', "INBOX.Spam"),
        (b'(\\HasNoChildren) "/" "Junk E-mail"', "Junk E-mail"),  # Exchange
        (b'(\\HasNoChildren) "/" "Bulk Mail"', "Bulk Mail"),  # Yahoo
        (b'(\\HasNoChildren) "/" "[Gmail]/Spam"', "[Gmail]/Spam"),
    ],
)
def test_junk_by_localized_name_without_special_use(line: bytes, expected: str) -> None:
    entries = parse_list([b'(\\HasNoChildren) "/" INBOX', line, b'(\\HasNoChildren) "/" Sent'])
    junk = find_junk(entries)
    assert junk is not None and junk.name == expected


def test_no_junk_folder() -> None:
    assert find_junk(parse_list([b'(\\HasNoChildren) "/" INBOX', b'(\\Noselect) "/" Spam'])) is None


def test_fetch_reply_items_before_and_after_the_literal() -> None:
    lines = [
        b'1 FETCH (UID 7 INTERNALDATE "21-Nov-2026 12:43:49 +0000" RFC822.SIZE 5 BODY[] {5}',
        bytearray(b"hello"),
        b")",
        b"2 FETCH (FLAGS (\\Seen))",  # unsolicited flag update: no UID, dropped
        b"3 FETCH (BODY[] {3}",
        bytearray(b"abc"),
        b' UID 9 RFC822.SIZE 3 INTERNALDATE " 1-Jan-2020 00:00:00 +0800")',
        b"Fetch completed.",
    ]
    first, second = parse_fetch(lines)
    assert (first.uid, first.size, first.body) == (7, 5, b"hello")
    assert first.internal_date == datetime(2026, 11, 21, 12, 43, 49, tzinfo=UTC)
    assert (second.uid, second.size, second.body) == (9, 3, b"abc")
    assert second.internal_date == datetime(2019, 12, 31, 16, 0, tzinfo=UTC)


def test_bad_internaldate_is_none() -> None:
    assert parse_internaldate("yesterday") is None


def test_search_reply() -> None:
    assert parse_search([b"3 1 2", b"Search completed."]) == [1, 2, 3]
    assert parse_search([b"SEARCH 4 5", b"done"]) == [4, 5]
    assert parse_search([b"Search completed."]) == []


def test_uid_set_compaction() -> None:
    assert uid_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"
    with pytest.raises(ValueError, match="empty"):
        uid_set([])


def test_mailbox_names_for_commands() -> None:
    assert quote_mailbox("INBOX") == "INBOX"
    assert quote_mailbox("垃圾邮件") == "&V4NXPpCuTvY-"
    assert quote_mailbox("Junk E-mail") == '"Junk E-mail"'


def test_search_date_format() -> None:
    assert imap_date(datetime(2026, 2, 1, tzinfo=UTC)) == "1-Feb-2026"


def test_internaldate_forms() -> None:
    """RFC 3501 9: date-day-fixed may be space-padded; zones east and west of UTC; month names in any case."""
    assert parse_internaldate(" 1-Jan-2020 00:00:00 +0800") == datetime(2019, 12, 31, 16, 0, tzinfo=UTC)
    assert parse_internaldate("28-feb-2026 23:30:05 -0530") == datetime(2026, 3, 1, 5, 0, 5, tzinfo=UTC)
    for bad in ("31-Feb-2026 10:00:00 +0000", "1-Foo-2026 10:00:00 +0000", "1-Jan-2026 10:00 +0000",
                "1-Jan-2026 10:00:00 0800", "1-Jan-2026 25:00:00 +0000"):  # fmt: skip
        assert parse_internaldate(bad) is None, bad


HUGE = b"9" * 5000  # beyond Python's 4,300-digit int conversion limit


@pytest.mark.parametrize(
    ("reply", "item"),
    [
        (lambda n: parse_select([b"1 EXISTS", b"OK [UIDVALIDITY " + n + b"] ok", b"done"]), "UIDVALIDITY"),
        (lambda n: parse_select([b"OK [UIDVALIDITY 7] ok", b"OK [UIDNEXT " + n + b"] x", b"done"]), "UIDNEXT"),
        (lambda n: parse_select([n + b" EXISTS", b"OK [UIDVALIDITY 7] ok", b"done"]), "EXISTS"),
        (lambda n: parse_status([b"INBOX (MESSAGES 1 UIDNEXT 3 UIDVALIDITY " + n + b")", b"done"]), "UIDVALIDITY"),
        (lambda n: parse_status([b"INBOX (MESSAGES " + n + b" UIDNEXT 3 UIDVALIDITY 7)", b"done"]), "MESSAGES"),
        (lambda n: parse_status([b"INBOX (UIDVALIDITY 7 HIGHESTMODSEQ " + n + b")", b"done"]), "HIGHESTMODSEQ"),
        (lambda n: parse_fetch([b"1 FETCH (UID " + n + b" BODY[] {1}", bytearray(b"x"), b")", b"done"]), "UID"),
        (lambda n: parse_fetch([b"1 FETCH (UID 5 RFC822.SIZE " + n + b" BODY[] {1}", bytearray(b"x"), b")"]), "RFC822.SIZE"),
        (lambda n: parse_search([b"1 " + n + b" 3", b"Search completed."]), "UID"),
    ],
)  # fmt: skip
def test_numbers_beyond_their_grammar_are_refused_with_a_clear_error(reply: Any, item: str) -> None:
    with pytest.raises(ImapResponseError, match=f"server sent {re.escape(item)} 9999.*5000 digits"):
        reply(HUGE)
    with pytest.raises(ImapResponseError, match=f"server sent {re.escape(item)} 99999999999999999999"):
        reply(b"9" * 20)


@pytest.mark.parametrize(
    "reply",
    [
        lambda: parse_select([b"1 EXISTS", b"OK [UIDVALIDITY 0] ok", b"done"]),
        lambda: parse_select([b"OK [UIDVALIDITY 7] ok", b"OK [UIDNEXT 0] x", b"done"]),
        lambda: parse_status([b"INBOX (MESSAGES 1 UIDNEXT 3 UIDVALIDITY 0)", b"done"]),
        lambda: parse_fetch([b"1 FETCH (UID 0 BODY[] {1}", bytearray(b"x"), b")", b"done"]),
        lambda: parse_search([b"0 1", b"Search completed."]),
        lambda: parse_search([b"4294967296", b"Search completed."]),
    ],
)
def test_uid_zero_and_values_over_32_bits_are_refused(reply: Any) -> None:
    with pytest.raises(ImapResponseError, match=r"nz-number"):
        reply()


def test_numbers_at_the_edges_of_their_ranges_are_read() -> None:
    assert imap_number(b"4294967295", "UID") == NZ_NUMBER_MAX
    assert imap_number("0007", "UID") == 7
    assert imap_number(b"0", "MESSAGES", "number") == 0
    assert (
        parse_status([b"INBOX (MESSAGES 0 HIGHESTMODSEQ 9223372036854775807)", b"ok"]).highestmodseq
        == 2**63 - 1
    )
    assert parse_search([b"4294967295 1", b"Search completed."]) == [1, NZ_NUMBER_MAX]
    with pytest.raises(ImapResponseError):
        imap_number("١٢", "UID")  # Unicode digits are not IMAP digits
