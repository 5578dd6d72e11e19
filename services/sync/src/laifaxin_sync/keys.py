"""Identities of one message in the sync store (no database client: the parsing pool imports these)."""

from __future__ import annotations

__all__ = ["dedupe_key", "message_key"]


def message_key(mailbox_id: str, folder: str, uidvalidity: int, uid: int) -> str:
    """The index ``_id`` and raw_ref suffix of one message: ``mailbox:folder:UIDVALIDITY:UID`` (RFC 3501 2.3.1.1)."""
    return f"{mailbox_id}:{folder}:{uidvalidity}:{uid}"


def dedupe_key(mailbox_id: str, message_id: str, content_hash: str) -> str:
    """Identity of a message within a mailbox: its Message-ID (RFC 5322 3.6.4), else its SHA-256."""
    return f"{mailbox_id}:mid:{message_id}" if message_id else f"{mailbox_id}:sha:{content_hash}"
