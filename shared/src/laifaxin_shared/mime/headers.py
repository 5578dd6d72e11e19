"""Header field values -> text: RFC 2047 encoded words, 8-bit bytes, addresses, msg-ids and dates.

Values are taken from the raw field as the parser stored it (``Message.raw_items()``; 8-bit bytes kept as
surrogate escapes) and decoded with :func:`.encoded_words.decode_words` (the results of the stdlib's
:func:`email.header.decode_header`, in linear time) and :func:`email.utils.getaddresses`, each encoded word or
8-bit run through :func:`.charsets.decode_bytes`. The
``policy.default`` header objects decode each encoded word with its labelled charset (GB2312 text with GBK
characters becomes U+FFFD; a multibyte character split over two words breaks), so they serve only as the
lenient fallback when ``decode_header`` rejects a malformed word.
"""

from __future__ import annotations

import functools
import logging
import re
from datetime import UTC, datetime
from email import policy
from email.errors import MessageError
from email.utils import getaddresses, parsedate_to_datetime

from laifaxin_shared.events.base import EmailAddress

from .charsets import decode_bytes
from .encoded_words import decode_words

__all__ = [
    "STDLIB_PARSE_ERRORS",
    "DefectLog",
    "decode_field",
    "decode_header_bytes",
    "first_msg_id",
    "msg_ids",
    "one_line",
    "parse_addresses",
    "parse_date",
    "raw_to_bytes",
    "sanitize",
    "unfold",
]

log = logging.getLogger(__name__)

STDLIB_PARSE_ERRORS: tuple[type[Exception], ...] = (
    MessageError,
    LookupError,
    ValueError,
    IndexError,
    TypeError,
    AttributeError,
)
"""What the stdlib ``email`` header and payload code has been seen to raise on malformed input (HeaderParseError,
IndexError and AttributeError from ``_header_value_parser``, LookupError for unknown charsets, binascii.Error
(a ValueError) for bad base64). One bad header or part is recorded as a defect, never fatal."""

MAX_DEFECTS = 32
LENIENT_MAX_CHARS = 16_384
"""Longest field body given to the lenient ``policy.default`` decoder after a bad base64 word."""
MSG_ID_CAP = 998  # RFC 5322 section 2.1.1 line limit; also MessageRef.message_id max_length
NAME_CAP = 512  # EmailAddress.name / .email max_length
MAX_REFERENCES = 100

_SURROGATES = re.compile("[\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n|\r")
_LINE_WS = re.compile(r"[\r\n\t\x00]+")
_MSG_ID = re.compile(r"<([^<>]*)>")
_NOT_ADDR_SPEC = re.compile(r"[\s<>\"]")
_ADDR_SPEC = re.compile(r"[^\s<>\"(),;:]+@[^\s<>\"(),;:]+")
_DEFECT_NAME = re.compile(r"(?<!^)(?=[A-Z])")
_FALLBACK_POLICY = policy.default


class DefectLog:
    """Short, unique defect names in the order found, capped at :data:`MAX_DEFECTS`."""

    def __init__(self) -> None:
        self._names: dict[str, None] = {}

    def add(self, name: str) -> None:
        if len(self._names) < MAX_DEFECTS:
            self._names.setdefault(name, None)

    def add_stdlib(self, defect: object) -> None:
        """Record a stdlib ``email.errors`` defect, e.g. StartBoundaryNotFoundDefect -> start_boundary_not_found."""
        name = type(defect).__name__.removesuffix("Defect")
        self.add(_DEFECT_NAME.sub("_", name).lower())

    @property
    def names(self) -> list[str]:
        return list(self._names)


def sanitize(text: str) -> str:
    """Replace lone surrogates (undecodable bytes that escaped decoding) with U+FFFD and drop NULs.

    Lone surrogates cannot be encoded as UTF-8 (JSON, Kafka); NUL is refused by PostgreSQL-backed stores
    (FerretDB) and carries no text.
    """
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def one_line(text: str) -> str:
    """Collapse line breaks, tabs and NULs to single spaces and strip (for Subject, names, ids)."""
    return _LINE_WS.sub(" ", text).strip()


def raw_to_bytes(value: str) -> bytes:
    """The original bytes of a raw header value as ``BytesParser`` stored it (ASCII + surrogate escapes)."""
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        # Only for messages built from str rather than bytes: non-ASCII text is then already Unicode.
        return value.encode("utf-8", "surrogateescape")


def decode_header_bytes(data: bytes, hint: str | None, defects: DefectLog) -> str:
    """Decode one unfolded field body: RFC 2047 encoded words plus raw 8-bit text (RFC 6532 UTF-8 or legacy).

    Encoded words are found by :func:`.encoded_words.decode_words` (adjacent words in one charset are joined
    before decoding, so a character split across words survives; linear time, where the stdlib's
    ``decode_header`` is quadratic); each run is decoded with the charset rules of
    :func:`.charsets.decode_bytes`. ``hint`` is a charset seen elsewhere in the message, used for unlabelled
    8-bit bytes. A field with a word that is not base64 is noted as ``encoded_word_invalid`` and decoded by the
    lenient ``policy.default`` decoder when it has at most :data:`LENIENT_MAX_CHARS` characters (that decoder
    is not linear), else left undecoded. Never raises.
    """
    latin = data.decode("latin-1")  # bijective: every byte maps to one code point below 256
    if "=?" not in latin:
        decoded = decode_bytes(data, None, hint)
        if decoded.defect is not None and not data.isascii():
            defects.add("header_8bit_" + decoded.defect)
        return decoded.text
    try:
        chunks = decode_words(latin)
    except STDLIB_PARSE_ERRORS:  # HeaderParseError for bad base64 in a word
        defects.add("encoded_word_invalid")
        text = decode_bytes(data, None, hint).text
        if len(text) > LENIENT_MAX_CHARS:
            return text
        try:
            return str(_FALLBACK_POLICY.header_factory("subject", text))
        except STDLIB_PARSE_ERRORS:
            return text
    parts: list[str] = []
    for chunk, charset in chunks:
        # Runs are bytes made with raw-unicode-escape, i.e. the original latin-1 bytes here.
        raw = chunk
        decoded = decode_bytes(raw, charset, hint)
        if decoded.defect is not None and (charset is not None or not raw.isascii()):
            defects.add("header_" + decoded.defect)
        parts.append(decoded.text)
    return "".join(parts)


def unfold(value: str) -> str:
    """RFC 5322 section 2.2.3 unfolding: drop the CRLF of each folded line, keep the whitespace after it."""
    return _FOLD.sub("", value)


def decode_field(raw_value: str, hint: str | None, defects: DefectLog) -> str:
    """A raw stored field value -> decoded, unfolded, surrogate-free text (not yet stripped)."""
    return sanitize(decode_header_bytes(raw_to_bytes(unfold(raw_value)), hint, defects))


_ADDRESS_CACHE_MAX_CHARS = 2048  # longer address fields are parsed every time (the cache stays small)


def parse_addresses(
    raw_values: list[str], hint: str | None, defects: DefectLog, limit: int
) -> list[EmailAddress]:
    """Address fields (RFC 5322 section 3.4) -> at most ``limit`` :class:`EmailAddress`, in order.

    Addresses are split on the undecoded text (a comma inside an encoded display name must not split),
    then each display name is decoded (RFC 2047 section 5 (3); encoded words inside quotes are decoded too,
    as mail clients do). Group names and entries without an addr-spec are skipped; values are capped at 512
    characters. Never raises.

    Results of short fields are kept (bounded LRU; :class:`EmailAddress` is frozen): a mailbox's To and From
    values repeat from message to message, and the stdlib address parser is a large part of a parse.
    """
    if sum(len(v) for v in raw_values) > _ADDRESS_CACHE_MAX_CHARS:
        return _parse_addresses(raw_values, hint, defects, limit)
    found, names = _cached_addresses(tuple(raw_values), hint, limit)
    for name in names:
        defects.add(name)
    return list(found)


@functools.lru_cache(maxsize=2048)
def _cached_addresses(
    raw_values: tuple[str, ...], hint: str | None, limit: int
) -> tuple[tuple[EmailAddress, ...], tuple[str, ...]]:
    """:func:`_parse_addresses` with the defects it found: (addresses, defect names)."""
    found = DefectLog()
    return tuple(_parse_addresses(list(raw_values), hint, found, limit)), tuple(found.names)


def _parse_addresses(
    raw_values: list[str], hint: str | None, defects: DefectLog, limit: int
) -> list[EmailAddress]:
    latin = [unfold(raw_to_bytes(v).decode("latin-1")) for v in raw_values]
    try:
        pairs = getaddresses(latin)
    except STDLIB_PARSE_ERRORS:
        defects.add("address_unparseable")
        return []
    out: list[EmailAddress] = []
    for name, addr in pairs:
        if not addr:
            continue
        email = one_line(sanitize(decode_bytes(addr.encode("latin-1"), None, hint).text))
        display = one_line(sanitize(decode_header_bytes(name.encode("latin-1"), hint, defects)))
        if _NOT_ADDR_SPEC.search(email):
            # Malformed field such as `"A Person" a@example.com>`: keep the addr-spec, the rest is the name.
            found = _ADDR_SPEC.search(email)
            if found is not None:
                defects.add("address_malformed")
                rest = (email[: found.start()] + email[found.end() :]).strip(" \t<>\"'")
                email, display = found.group(0), display or rest
        if not email:
            continue
        if len(out) >= limit:
            defects.add("address_list_capped")
            break
        out.append(EmailAddress(name=display[:NAME_CAP], email=email[:NAME_CAP]))
    return out


def first_msg_id(value: str) -> str:
    """The first msg-id of a field (RFC 5322 section 3.6.4) without angle brackets; "" when none.

    A value with no ``<...>`` (seen from broken clients) yields its first whitespace-separated token.
    """
    match = _MSG_ID.search(value)
    token = match.group(1) if match else (value.split() or [""])[0].strip("<>")
    return one_line(token).replace(" ", "")[:MSG_ID_CAP]


def msg_ids(value: str) -> list[str]:
    """All msg-ids of References/In-Reply-To in order (oldest first for References, RFC 5322 3.6.4).

    Longer chains keep the first (thread root) and the latest ids, :data:`MAX_REFERENCES` in all.
    """
    found = _MSG_ID.findall(value)
    if not found:
        found = [t.strip("<>") for t in value.split()]
    ids = [one_line(i).replace(" ", "")[:MSG_ID_CAP] for i in found]
    ids = [i for i in ids if i]
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return ids


def parse_date(value: str, defects: DefectLog) -> datetime | None:
    """RFC 5322 section 3.3 date-time (obsolete forms too) -> aware UTC datetime; None when unparseable.

    A ``-0000`` zone (time in UTC, local zone unknown) is taken as UTC.
    """
    value = one_line(value)
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        result = parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.add("date_invalid")
        return None
    if not 1970 <= result.year <= 9999:
        defects.add("date_out_of_range")
        return None
    return result
