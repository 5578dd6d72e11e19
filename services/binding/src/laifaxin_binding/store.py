"""Binding's own MongoDB collections: ``mailboxes`` and ``verification_attempts``.

``mailboxes`` documents (one per bound mailbox; ``_id`` is the mailbox id)::

    {_id, tenant_id, user_id, email (lower-case), nickname, provider_id, username, smtp_username,
     imap {host, port, security}, smtp {...}, imap_id_required, sync {enabled, interval_seconds,
     initial_window_days}, credential {algorithm, key_id, nonce, ciphertext}   # sealed, never plaintext
     status ("normal" | taxonomy code), state (sync state), status_at, last_synced_at, progress (of a catch-up),
     last_error {code, message, fix, message_zh, fix_zh, at} | null, credential_expires_at,
     verified_at, created_at, updated_at}

Unique index (tenant_id, email). Every query takes ``tenant_id``: a mailbox id alone never finds another
tenant's document.

``verification_attempts``: ``{tenant_id, email, at, ok, code}``, one per verification, for rate limits.
FerretDB v1 has no TTL indexes (reference/infra.md), so :meth:`AttemptLog.prune` deletes expired entries by
query on every check.

FerretDB v1 reports unique violations only on insert: new mailboxes are claimed with
:func:`~laifaxin_shared.mongo.insert_unique`; an address change checks for a clash first (a race between two
simultaneous edits of one tenant to the same address is not caught; the next sync would see two entries).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from laifaxin_shared.mongo import Document, ensure_indexes, insert_unique

MAILBOXES = "mailboxes"
ATTEMPTS = "verification_attempts"

INDEXES: dict[str, list[IndexModel]] = {
    MAILBOXES: [
        IndexModel([("tenant_id", ASCENDING), ("email", ASCENDING)], unique=True, name="tenant_email"),
        IndexModel([("tenant_id", ASCENDING), ("created_at", ASCENDING)], name="tenant_created"),
    ],
    ATTEMPTS: [
        IndexModel(
            [("tenant_id", ASCENDING), ("email", ASCENDING), ("at", ASCENDING)], name="tenant_email_at"
        ),
        IndexModel([("tenant_id", ASCENDING), ("at", ASCENDING)], name="tenant_at"),
        IndexModel([("at", ASCENDING)], name="at"),
    ],
}


class MailboxStore:
    """CRUD on ``mailboxes``, always scoped by tenant."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.collection = db[MAILBOXES]

    async def init(self) -> None:
        """Create the indexes of both collections (idempotent)."""
        await ensure_indexes(self.db, INDEXES)

    async def insert(self, document: Document) -> bool:
        """Insert a new mailbox; False when the tenant already has that address."""
        return await insert_unique(self.collection, document)

    async def get(self, tenant_id: str, mailbox_id: str) -> Document | None:
        return await self.collection.find_one({"_id": mailbox_id, "tenant_id": tenant_id})

    async def find_by_email(self, tenant_id: str, email: str) -> Document | None:
        return await self.collection.find_one({"tenant_id": tenant_id, "email": email})

    async def list(self, tenant_id: str) -> list[Document]:
        cursor = self.collection.find({"tenant_id": tenant_id}).sort("created_at", ASCENDING)
        return [doc async for doc in cursor]

    async def count(self, tenant_id: str) -> int:
        return await self.collection.count_documents({"tenant_id": tenant_id})

    async def update(self, tenant_id: str, mailbox_id: str, fields: dict[str, Any]) -> Document | None:
        """``$set`` ``fields``; returns the updated document, None when the tenant has no such mailbox."""
        result = await self.collection.update_one(
            {"_id": mailbox_id, "tenant_id": tenant_id}, {"$set": fields}
        )
        if result.matched_count == 0:
            return None
        return await self.get(tenant_id, mailbox_id)

    async def delete(self, tenant_id: str, mailbox_id: str) -> bool:
        result = await self.collection.delete_one({"_id": mailbox_id, "tenant_id": tenant_id})
        return result.deleted_count == 1

    async def set_status_if_newer(
        self, tenant_id: str, mailbox_id: str, at: datetime, fields: dict[str, Any]
    ) -> bool:
        """Apply a status change unless a newer one was applied already (events may be redelivered or
        arrive late); True when the document changed."""
        result = await self.collection.update_one(
            {"_id": mailbox_id, "tenant_id": tenant_id, "status_at": {"$lte": at}},
            {"$set": {**fields, "status_at": at}},
        )
        return result.modified_count == 1

    async def set_sending_if_newer(
        self, tenant_id: str, mailbox_id: str, at: datetime, sending: dict[str, Any]
    ) -> bool:
        """Record the send service's status of a mailbox unless a newer one was recorded; True when changed."""
        result = await self.collection.update_one(
            {
                "_id": mailbox_id,
                "tenant_id": tenant_id,
                "$or": [{"sending.at": {"$lte": at}}, {"sending": None}],
            },
            {"$set": {"sending": sending}},
        )
        return result.modified_count == 1


class AttemptLog:
    """Verification attempts, for the per-address and per-tenant rate limits."""

    def __init__(self, db: AsyncDatabase[Document], window: timedelta) -> None:
        self.collection = db[ATTEMPTS]
        self.window = window

    async def prune(self, now: datetime) -> int:
        """Delete attempts older than the window (no TTL index on FerretDB); returns how many."""
        result = await self.collection.delete_many({"at": {"$lt": now - self.window}})
        return result.deleted_count

    async def record(self, tenant_id: str, email: str, *, ok: bool, code: str | None, now: datetime) -> None:
        await self.collection.insert_one(
            {"tenant_id": tenant_id, "email": email, "at": now, "ok": ok, "code": code}
        )

    async def failures(self, tenant_id: str, email: str, now: datetime) -> list[datetime]:
        """Times of failed attempts on ``email`` inside the window, oldest first."""
        cursor = self.collection.find(
            {"tenant_id": tenant_id, "email": email, "ok": False, "at": {"$gte": now - self.window}}
        ).sort("at", ASCENDING)
        return [doc["at"] async for doc in cursor]

    async def attempts(self, tenant_id: str, now: datetime) -> list[datetime]:
        """Times of all attempts by the tenant inside the window, oldest first."""
        cursor = self.collection.find({"tenant_id": tenant_id, "at": {"$gte": now - self.window}}).sort(
            "at", ASCENDING
        )
        return [doc["at"] async for doc in cursor]
