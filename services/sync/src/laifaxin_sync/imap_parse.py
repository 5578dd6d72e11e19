"""Reading aioimaplib responses: SELECT/EXAMINE/STATUS counters, LIST entries, FETCH items, UID sets; which
listed folders are synced (the Junk folder, :func:`find_junk`; the user's own folders, :func:`find_user_folders`).

aioimaplib returns a response as ``lines``: ``bytes`` for each response line (the leading ``* `` removed) and
``bytearray`` for each literal. These functions turn those into typed values; they skip what they cannot read,
but a number outside the range its grammar gives (a UID or UIDVALIDITY of 0 or above 2^32-1: RFC 3501 / RFC 9051
``nz-number``; a count above 2^32-1; a mod-sequence above 2^63-1, RFC 7162) raises :class:`ImapResponseError`
rather than being used: such a reply cannot be trusted to place a cursor. Digits are counted before they are
converted, so a number of 5,000 digits (beyond Python's int conversion limit) is refused the same way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from imapclient import imap_utf7

JUNK_NAMES = frozenset(
    {
        "junk",
        "spam",
        "junk e-mail",
        "junk email",
        "junk mail",
        "bulk mail",
        "bulk",
        "垃圾邮件",
        "垃圾邮件箱",
        "垃圾箱",
        "广告邮件",
        "垃圾郵件",
        "courrier indésirable",
        "spam-verdacht",
        "junk-e-mail",
        "spamverdacht",
        "correo no deseado",
        "迷惑メール",
        "posta indesiderata",
    }
)
"""Usual (localized) names of the Junk folder, case-folded, for servers without SPECIAL-USE (RFC 6154)."""

NOT_SYNCED_SPECIAL_USE = frozenset(
    {"\\sent", "\\drafts", "\\trash", "\\all", "\\archive", "\\flagged", "\\important", "\\junk"}
)
"""LIST attributes (case-folded, as :class:`ListEntry` keeps them) of folders that are never synced as user
folders: mail the user sent or wrote (``\\Sent``, ``\\Drafts``), deleted (``\\Trash``), or copies of mail held
elsewhere (``\\All``, ``\\Archive``, ``\\Flagged``: RFC 6154 section 2; ``\\Important``: RFC 8457 section 3;
Gmail's ``[Gmail]/All Mail`` would repeat every message). ``\\Junk`` is synced on its own (:func:`find_junk`)."""

# Usual names of the Sent, Drafts, Trash/Deleted and Outbox folders (and Gmail's All Mail, and NetEase's virus
# quarantine) for servers that do not advertise SPECIAL-USE. Sources: the folders QQ Mail / Tencent Exmail list
# over IMAP ("Sent Messages", "Drafts", "Deleted Messages"), NetEase 163/126 ("已发送", "草稿箱", "已删除",
# "病毒邮件"), Sina ("草稿夹"), Gmail's English and Chinese labels ("[Gmail]/Sent Mail", "Drafts", "Trash" or "Bin",
# "All Mail"; "已发邮件", "草稿", "已删除邮件", "所有邮件"), Outlook.com / Exchange ("Sent Items",
# "Deleted Items", "Outbox"), Thunderbird's and Apple Mail's defaults ("Sent", "Trash", "Deleted Messages"),
# and the Traditional Chinese names of the same clients.
NOT_SYNCED_NAMES = frozenset(
    {
        "sent",
        "sent items",
        "sent mail",
        "sent messages",
        "sent-mail",
        "drafts",
        "draft",
        "trash",
        "bin",
        "deleted",
        "deleted items",
        "deleted messages",
        "outbox",
        "all mail",
        "已发送",
        "已发送邮件",
        "已发邮件",
        "发件箱",
        "草稿箱",
        "草稿夹",
        "草稿",
        "已删除",
        "已删除邮件",
        "所有邮件",
        "病毒邮件",
        "病毒文件夹",
        "寄件備份",
        "已傳送郵件",
        "寄件匣",
        "草稿匣",
        "已刪除郵件",
        "垃圾桶",
    }
)
"""Usual names (case-folded last hierarchy level) of folders that are never synced as user folders when the
server does not advertise SPECIAL-USE (RFC 6154 section 5): Sent, Drafts, Trash/Deleted, Outbox, All Mail."""


NZ_NUMBER_MAX = 2**32 - 1
"""Largest UID, UIDVALIDITY, UIDNEXT and message count: 32-bit unsigned (RFC 3501 / RFC 9051 section 9,
``nz-number`` and ``number``)."""
MOD_SEQUENCE_MAX = 2**63 - 1
"""Largest mod-sequence value (RFC 7162 section 7, ``mod-sequence-value``)."""


class ImapResponseError(ValueError):
    """A server reply holds a number outside the range its grammar allows (UID 0, a UIDVALIDITY of 5,000
    digits, ...). ``item`` names it (``UID``, ``UIDVALIDITY``, ...); the message quotes at most 40 characters
    of the value. The mailbox loop reports it (``unknown``, with this text) and backs off like any failure."""

    def __init__(self, item: str, value: bytes | str, rule: str) -> None:
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"
        super().__init__(f"server sent {item} {shown}: {rule}")
        self.item = item


_RULES = {
    "nz": (1, NZ_NUMBER_MAX, "must be 1..4294967295 (RFC 3501/RFC 9051 nz-number)"),
    "number": (0, NZ_NUMBER_MAX, "must be 0..4294967295 (RFC 3501/RFC 9051 number)"),
    "modseq": (0, MOD_SEQUENCE_MAX, "must be at most 2^63-1 (RFC 7162 mod-sequence-value)"),
}


def imap_number(value: bytes | str, item: str, kind: str = "nz") -> int:
    """One ASCII-digit number of a reply, checked against its grammar's range.

    ``kind``: ``nz`` (UID, UIDVALIDITY, UIDNEXT: 1..2^32-1), ``number`` (MESSAGES, EXISTS, RFC822.SIZE:
    0..2^32-1) or ``modseq`` (HIGHESTMODSEQ: 0..2^63-1; 0 where a server has no mod-sequences yet).

    Raises:
        ImapResponseError: not digits, or out of range; the length is checked before any conversion.
    """
    low, high, rule = _RULES[kind]
    digits = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    stripped = digits.lstrip("0") or "0"
    if not digits.isascii() or not digits.isdigit() or len(stripped) > len(str(high)):
        raise ImapResponseError(item, value, rule)
    number = int(stripped)
    if not low <= number <= high:
        raise ImapResponseError(item, value, rule)
    return number


@dataclass(frozen=True)
class FolderStatus:
    """What SELECT/EXAMINE (RFC 3501 7.3.1, 7.1) or STATUS (RFC 3501 6.3.10) report about a folder.

    ``highestmodseq`` only with CONDSTORE enabled (RFC 7162 3.1.2.1); any field may be None when the server
    omits it (some servers leave UIDNEXT out of SELECT: use STATUS then).
    """

    uidvalidity: int | None = None
    uidnext: int | None = None
    messages: int | None = None
    highestmodseq: int | None = None


@dataclass(frozen=True)
class ListEntry:
    """One LIST reply: attributes (``\\Junk`` per RFC 6154), hierarchy delimiter, wire (modified UTF-7) name."""

    flags: frozenset[str]
    delimiter: str | None
    wire_name: str

    @property
    def name(self) -> str:
        """The folder name decoded from modified UTF-7 (RFC 3501 5.1.3)."""
        try:
            return str(imap_utf7.decode(self.wire_name.encode("ascii")))
        except (UnicodeError, ValueError):
            return self.wire_name


@dataclass(frozen=True)
class FetchedMessage:
    """One message of a UID FETCH reply."""

    uid: int
    internal_date: datetime | None
    size: int | None
    body: bytes | None


def _text(lines: Iterable[bytes | bytearray]) -> str:
    return " ".join(x.decode("utf-8", "replace") for x in lines if isinstance(x, bytes))


_NUM = {
    "uidvalidity": re.compile(r"\bUIDVALIDITY (\d+)", re.IGNORECASE),
    "uidnext": re.compile(r"\bUIDNEXT (\d+)", re.IGNORECASE),
    "messages": re.compile(r"\bMESSAGES (\d+)", re.IGNORECASE),
    "highestmodseq": re.compile(r"\bHIGHESTMODSEQ (\d+)", re.IGNORECASE),
}
_KIND = {"uidvalidity": "nz", "uidnext": "nz", "messages": "number", "highestmodseq": "modseq"}


def _found(rx: re.Pattern[str], text: str, key: str) -> int | None:
    m = rx.search(text)
    return imap_number(m.group(1), key.upper(), _KIND[key]) if m else None


_EXISTS = re.compile(rb"^(\d+) EXISTS\b", re.IGNORECASE)


def parse_select(lines: Sequence[bytes | bytearray]) -> FolderStatus:
    """Counters of a SELECT/EXAMINE reply (``N EXISTS`` gives ``messages``).

    Raises:
        ImapResponseError: a counter out of its range (see :func:`imap_number`).
    """
    text = _text(lines)
    found = {k: _found(rx, text, k) for k, rx in _NUM.items() if k != "messages"}
    exists = next(
        (
            imap_number(e.group(1), "EXISTS", "number")
            for x in lines
            if isinstance(x, bytes) and (e := _EXISTS.match(x))
        ),
        None,
    )
    return FolderStatus(messages=exists, **found)


def parse_status(lines: Sequence[bytes | bytearray]) -> FolderStatus:
    """Counters of a STATUS reply: ``name (MESSAGES n UIDNEXT n UIDVALIDITY n HIGHESTMODSEQ n)``.

    Raises:
        ImapResponseError: a counter out of its range (see :func:`imap_number`).
    """
    text = _text(lines)
    found = {k: _found(rx, text, k) for k, rx in _NUM.items()}
    return FolderStatus(**found)


def has_exists(lines: Sequence[bytes | bytearray]) -> bool:
    """True when an untagged ``N EXISTS`` (new mail, RFC 3501 7.3.1) is among the lines."""
    return any(isinstance(x, bytes) and _EXISTS.match(x.lstrip(b"* ")) for x in lines)


_LIST = re.compile(
    rb'^(?:LIST )?\((?P<flags>[^)]*)\) (?P<delim>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$', re.IGNORECASE
)


def _unquote(value: bytes) -> str:
    text = value.decode("utf-8", "replace").strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_list(lines: Sequence[bytes | bytearray]) -> list[ListEntry]:
    """LIST entries (RFC 3501 7.2.2); a name sent as a literal is taken from the following literal."""
    entries: list[ListEntry] = []
    items = list(lines)
    for i, line in enumerate(items):
        if not isinstance(line, bytes):
            continue
        m = _LIST.match(line)
        if not m:
            continue
        name_raw = m.group("name")
        if re.fullmatch(rb"\{\d+\}", name_raw.strip()) and i + 1 < len(items):
            name = bytes(items[i + 1]).decode("utf-8", "replace")
        else:
            name = _unquote(name_raw)
        delim = None if m.group("delim").upper() == b"NIL" else _unquote(m.group("delim"))
        flags = frozenset(f.decode("ascii", "replace").lower() for f in m.group("flags").split())
        entries.append(ListEntry(flags=flags, delimiter=delim, wire_name=name))
    return entries


def _leaf(entry: ListEntry) -> str:
    """The last hierarchy level of the decoded name, case-folded (``INBOX.Sent`` -> ``sent``)."""
    name = entry.name
    return (name.rsplit(entry.delimiter, 1)[-1] if entry.delimiter else name).casefold()


def find_junk(entries: Sequence[ListEntry]) -> ListEntry | None:
    """The Junk folder: the one with the ``\\Junk`` attribute (RFC 6154), else the first with a usual name
    (last hierarchy level compared case-folded, e.g. ``INBOX.Spam``, ``[Gmail]/Spam``, ``垃圾邮件``)."""
    for entry in entries:
        if "\\junk" in entry.flags:
            return entry
    for entry in entries:
        if "\\noselect" in entry.flags or "\\nonexistent" in entry.flags:
            continue
        if _leaf(entry) in JUNK_NAMES:
            return entry
    return None


@dataclass(frozen=True)
class UserFolders:
    """The user's own folders to sync (``chosen``, in LIST order) and those beyond the cap (``left_out``)."""

    chosen: list[ListEntry]
    left_out: list[ListEntry]


def find_user_folders(
    entries: Sequence[ListEntry], *, junk: ListEntry | None, special_use: bool, limit: int
) -> UserFolders:
    """The user's own folders (where their filter rules file mail): every selectable folder of a LIST reply
    (RFC 3501 7.2.2; none with ``\\Noselect`` or ``\\NonExistent``, RFC 5258 3.4) but INBOX (any case, RFC 3501
    5.1), ``junk`` and a folder with an attribute of :data:`NOT_SYNCED_SPECIAL_USE` (RFC 6154 section 2); when
    the server does not advertise SPECIAL-USE (``special_use`` False), also none whose last hierarchy level is
    one of :data:`NOT_SYNCED_NAMES` or :data:`JUNK_NAMES`. The first ``limit`` (>= 0) in LIST order are
    ``chosen``; the rest are ``left_out``. A name listed twice counts once."""
    chosen: list[ListEntry] = []
    left_out: list[ListEntry] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.wire_name in seen:
            continue
        seen.add(entry.wire_name)
        if "\\noselect" in entry.flags or "\\nonexistent" in entry.flags:
            continue
        if entry.wire_name.upper() == "INBOX" or (junk is not None and entry.wire_name == junk.wire_name):
            continue
        if entry.flags & NOT_SYNCED_SPECIAL_USE:
            continue
        if not special_use and (_leaf(entry) in NOT_SYNCED_NAMES or _leaf(entry) in JUNK_NAMES):
            continue
        (chosen if len(chosen) < limit else left_out).append(entry)
    return UserFolders(chosen, left_out)


_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
_IDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"', re.IGNORECASE)
_FETCH_START = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)


_MONTH_NUMBERS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}


@functools.lru_cache(maxsize=64)
def _zone(value: str) -> timezone:
    """``+hhmm``/``-hhmm`` -> a fixed-offset tzinfo (a mailbox uses few zones; each is made once)."""
    if len(value) != 5 or value[0] not in "+-" or not value[1:].isdigit():
        raise ValueError(f"bad zone {value!r}")
    minutes = int(value[1:3]) * 60 + int(value[3:5])
    return timezone(timedelta(minutes=-minutes if value[0] == "-" else minutes))


def parse_internaldate(value: str) -> datetime | None:
    """An INTERNALDATE (``21-Nov-2026 08:29:41 +0000``, RFC 3501 9 date-time) as an aware datetime; None when
    it does not have that form. Read field by field (one per fetched message: email.utils' general date parser
    cost as much as the rest of the FETCH reply handling)."""
    try:
        day, month, rest = value.strip().split("-", 2)
        year, clock, zone = rest.split(" ")
        hour, minute, second = clock.split(":")
        return datetime(
            int(year),
            _MONTH_NUMBERS[month.lower()],
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=_zone(zone),
        )
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def parse_fetch(lines: Sequence[bytes | bytearray]) -> list[FetchedMessage]:
    """Messages of a ``UID FETCH ... (UID INTERNALDATE RFC822.SIZE BODY.PEEK[])`` reply, in reply order.

    Items may come before or after the literal (``... BODY[] {n}``, literal, ``UID 5)``); unsolicited FETCH
    replies without a UID (flag updates) are dropped.

    Raises:
        ImapResponseError: a UID out of 1..2^32-1 or an RFC822.SIZE out of 0..2^32-1 (:func:`imap_number`).
    """
    out: list[FetchedMessage] = []
    uid: int | None = None
    idate: datetime | None = None
    size: int | None = None
    body: bytes | None = None

    def flush() -> None:
        if uid is not None:
            out.append(FetchedMessage(uid, idate, size, body))

    for line in lines:
        if isinstance(line, bytearray):
            body = bytes(line)
            continue
        if _FETCH_START.match(line):
            flush()
            uid, idate, size, body = None, None, None, None
        elif uid is None and body is None:
            continue
        if found := _UID.search(line):
            uid = imap_number(found.group(1), "UID")
        if found := _SIZE.search(line):
            size = imap_number(found.group(1), "RFC822.SIZE", "number")
        if found := _IDATE.search(line):
            idate = parse_internaldate(found.group(1).decode("ascii", "replace"))
    flush()
    return out


def parse_search(lines: Sequence[bytes | bytearray]) -> list[int]:
    """UIDs of a (UID) SEARCH reply (aioimaplib strips the ``SEARCH`` word; tolerated if present).

    Raises:
        ImapResponseError: a UID out of 1..2^32-1 (RFC 3501 / RFC 9051 ``nz-number``).
    """
    uids: list[int] = []
    for line in lines[:-1] if lines else ():
        if not isinstance(line, bytes):
            continue
        words = line.split()
        if words and words[0].upper() == b"SEARCH":
            words = words[1:]
        if words and all(w.isdigit() for w in words):
            uids.extend(imap_number(w, "UID") for w in words)
    return sorted(set(uids))


def uid_set(uids: Iterable[int]) -> str:
    """A compact sequence-set (RFC 3501 9 ``sequence-set``) of UIDs: ``1:3,7,9:10``."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for u in ordered[1:]:
        if u == prev + 1:
            prev = u
            continue
        parts.append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = u
    parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)


def quote_mailbox(name: str) -> str:
    """A folder name for a command: modified UTF-7 (RFC 3501 5.1.3), quoted when needed."""
    wire = imap_utf7.encode(name).decode("ascii")
    if re.fullmatch(r"[A-Za-z0-9&._/+-]+", wire):
        return wire
    return '"' + wire.replace("\\", "\\\\").replace('"', '\\"') + '"'
