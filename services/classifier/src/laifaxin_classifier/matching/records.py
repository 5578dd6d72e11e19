"""What the registry keeps of one sent message (:class:`SentRecord`), its stored form, and the tenant scope.

Scope: a tenant's sent mail is matched only against replies in that tenant's mailboxes (``t:<tenant_id>``);
mail sent from the platform's system mailbox forms one scope of its own (``sys``), searched only for mail that
arrives in the system mailbox, where the match decides which tenant the reply belongs to.

Stored document (collection ``sent``, compact field names because there is one per sent message; insert-only)::

    _id  "<scope>|<digest>"   digest = laifaxin_shared.replytoken.message_digest(Message-ID), 20 hex characters
    m    Message-ID           pm  provider's rewritten Message-ID (absent when none)
    mb   sending mailbox_id   t, u  sender's tenant_id and user_id (the campaign owner for system mail)
    s    true for system-mailbox mail (absent otherwise)
    e    event_id of the mail.sent event (16 bytes)      c  campaign_id (absent when none)
    r    recipients, lowercased                         k  64-bit key of the canonical subject
    at   sent_at (UTC)

A second document ``<scope>|<digest of provider Message-ID>`` with ``a: "<primary _id>"`` lets a FerretDB
``_id`` lookup find mail whose Message-ID the submission server rewrote (Outlook / Microsoft 365).
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import Binary

from laifaxin_shared.events import MailSent
from laifaxin_shared.replytoken import message_digest

from .subjects import subject_key

SYSTEM_SCOPE = "sys"


def tenant_scope(tenant_id: str, *, system: bool) -> str:
    """The scope of a tenant's mail, or the system mailbox's."""
    return SYSTEM_SCOPE if system else f"t:{tenant_id}"


def digest_hex(message_id: str) -> str:
    """20 hex characters: the reply token's digest of a Message-ID (brackets and the domain's case ignored)."""
    return message_digest(message_id).hex()


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One sent message as matching needs it."""

    scope: str
    message_id: str
    provider_message_id: str | None
    mailbox_id: str
    tenant_id: str
    user_id: str
    system: bool
    event_id: str
    campaign_id: str | None
    recipients: tuple[str, ...]
    subject_key: int
    sent_at: datetime

    @classmethod
    def from_event(cls, ev: MailSent) -> SentRecord:
        """The record of a ``mail.sent`` event (repeated names interned, as :meth:`from_document`)."""
        return cls(
            scope=tenant_scope(ev.tenant_id, system=ev.system_mailbox),
            message_id=ev.message_id.strip().strip("<>"),
            provider_message_id=ev.provider_message_id.strip().strip("<>")
            if ev.provider_message_id
            else None,
            mailbox_id=ev.mailbox_id,
            tenant_id=ev.tenant_id,
            user_id=ev.user_id,
            system=ev.system_mailbox,
            event_id=str(ev.event_id),
            campaign_id=ev.campaign_id,
            recipients=tuple(ev.recipients()),
            subject_key=subject_key(ev.subject),
            sent_at=ev.sent_at,
        )

    def digests(self) -> list[str]:
        """The digests this record is found by: its Message-ID's, and the provider's rewritten one's."""
        out = [digest_hex(self.message_id)]
        if self.provider_message_id:
            out.append(digest_hex(self.provider_message_id))
        return out

    def key(self) -> str:
        """The primary ``_id``: ``<scope>|<digest of Message-ID>``."""
        return f"{self.scope}|{self.digests()[0]}"

    def to_documents(self) -> list[dict[str, Any]]:
        """The stored documents: the record, and an alias for the provider's Message-ID when there is one."""
        doc: dict[str, Any] = {
            "_id": self.key(),
            "m": self.message_id,
            "mb": self.mailbox_id,
            "t": self.tenant_id,
            "u": self.user_id,
            "e": Binary(uuid.UUID(self.event_id).bytes),
            "r": list(self.recipients),
            "k": self.subject_key,
            "at": self.sent_at,
        }
        if self.provider_message_id:
            doc["pm"] = self.provider_message_id
        if self.system:
            doc["s"] = True
        if self.campaign_id:
            doc["c"] = self.campaign_id
        docs = [doc]
        digests = self.digests()
        if len(digests) > 1 and digests[1] != digests[0]:
            docs.append({"_id": f"{self.scope}|{digests[1]}", "a": self.key()})
        return docs

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> SentRecord:
        """The record of a stored primary document (not an alias). Repeated names (tenant, user, mailbox, campaign) are
        interned: the index holds each once."""
        at = doc["at"]
        if at.tzinfo is None:  # PyMongo returns naive UTC unless tz_aware
            at = at.replace(tzinfo=UTC)
        raw_event = doc.get("e")
        event_id = str(uuid.UUID(bytes=bytes(raw_event))) if raw_event is not None else ""
        campaign = doc.get("c")
        return cls(
            scope=sys.intern(str(doc["_id"]).rpartition("|")[0]),
            message_id=doc["m"],
            provider_message_id=doc.get("pm"),
            mailbox_id=sys.intern(doc["mb"]),
            tenant_id=sys.intern(doc["t"]),
            user_id=sys.intern(doc["u"]),
            system=bool(doc.get("s", False)),
            event_id=event_id,
            campaign_id=sys.intern(campaign) if campaign else None,
            recipients=tuple(doc.get("r", ())),
            subject_key=int(doc["k"]),
            sent_at=at,
        )
