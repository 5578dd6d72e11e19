"""``_id`` layouts and index prefixes of the read model: every read is an ``_id`` equality lookup (FerretDB v1 on
SQLite pushes only ``_id`` equality down to its primary key; ranges and ``$in`` scan the collection).

``|`` separates the parts; tenant and user ids never contain it (the token claims are checked), and mailbox
keys put it last. Times are epoch milliseconds, zero-padded to 13 digits so text order is time order.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

SEP = "|"
END = "\U0010ffff"
"""Sorts after every character: ``prefix + END`` bounds a prefix range."""


def ms(at: datetime | None) -> int:
    """Epoch milliseconds of ``at`` (naive datetimes are UTC); 0 for None."""
    if at is None:
        return 0
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def ts(at_ms: int) -> str:
    return f"{max(at_ms, 0):013d}"


def owner(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}{SEP}{user_id}{SEP}"


def listing_prefix(tenant_id: str, user_id: str) -> str:
    """Index prefix of an owner's messages (values: message keys)."""
    return f"L{SEP}{tenant_id}{SEP}{user_id}{SEP}"


def category_prefix(tenant_id: str, user_id: str, category: str) -> str:
    """Index prefix of an owner's messages of one category (values: message keys)."""
    return f"C{SEP}{tenant_id}{SEP}{user_id}{SEP}{category}{SEP}"


def thread_prefix(tenant_id: str, user_id: str, root: str) -> str:
    """Index prefix of a conversation (values: ``r|key`` received, ``s|Message-ID`` sent)."""
    return f"T{SEP}{tenant_id}{SEP}{user_id}{SEP}{root}{SEP}"


def entry_time(entry: str) -> int:
    """Epoch ms of an index entry ``time|value``."""
    return int(entry[:13])


def entry_value(entry: str) -> str:
    """The value of an index entry ``time|value``."""
    return entry[14:]


def owner_id(tenant_id: str, user_id: str, key: str) -> str:
    """``tenant|user|message key``: who may read a message."""
    return f"{owner(tenant_id, user_id)}{key}"


def replied_id(tenant_id: str, message_id: str) -> str:
    """``tenant|Message-ID``: a message of the tenant's was answered by one of its sent messages."""
    return f"{tenant_id}{SEP}{message_id}"


def public_id(key: str) -> str:
    """A message key as an URL-safe id (base64url without padding)."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def key_of(public: str) -> str | None:
    """The message key of a public id; None when it is not one."""
    try:
        return base64.urlsafe_b64decode(public + "=" * (-len(public) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def thread_root(message_id: str, in_reply_to: str | None, references: list[str]) -> str:
    """The conversation a message belongs to: the first References msg-id, else In-Reply-To, else its own
    Message-ID (RFC 5322 section 3.6.4: References lists the thread's ancestors, oldest first)."""
    if references:
        return references[0]
    if in_reply_to:
        return in_reply_to
    return message_id
