"""Binding's own MongoDB collections: ``mailboxes`` and ``verification_attempts``.

``mailboxes`` documents (one per bound mailbox; ``_id`` is the mailbox id)::

    {_id, tenant_id, user_id, email (lower-case), nickname, provider_id, username, smtp_username,
     imap {host, port, security}, smtp {...}, imap_id_required, sync {enabled, interval_seconds,
     initial_window_days}, credential {algorithm, key_id, nonce, ciphertext}   # sealed, never plaintext
     status ("normal" | taxonomy code), state (sync state), status_at, last_synced_at, progress (of a catch-up),
     last_error {code, message, fix, message_zh, fix_zh, at} | null, credential_expires_at,
     verified_at, created_at, updated_at}

Unique index (tenant_id, email). Every query takes ``tenant_id``: a mailbox id alone never finds another
tenant's document; the API's queries also take the owner (``user_id``) unless the caller is the tenant's admin.

``verification_attempts``: ``{_id, tenant_id, email, at, ok, code}``, one per verification, for rate limits;
``ok`` is null while the verification runs (a reservation, see :class:`AttemptLog`).
FerretDB v1 has no TTL indexes (reference/infra.md), so :meth:`AttemptLog.prune` deletes expired entries by
query on every check.

FerretDB v1 reports unique violations only on insert: new mailboxes are claimed with
:func:`~laifaxin_shared.mongo.insert_unique`, and the tenant's mailbox limit is checked again after the insert
(insert first, then count, and undo when over: simultaneous binds cannot pass the limit together); an address change checks for a clash first (a race between two
simultaneous edits of one tenant to the same address is not caught; the next sync would see two entries).
"""

from __future__ import annotations

import uuid
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
        IndexModel([("email", ASCENDING), ("at", ASCENDING)], name="email_at"),
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

    @staticmethod
    def _scope(tenant_id: str, mailbox_id: str | None = None, owner: str | None = None) -> dict[str, Any]:
        """The filter of a tenant's mailboxes: one (``mailbox_id``), and only ``owner``'s when given."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if mailbox_id is not None:
            query["_id"] = mailbox_id
        if owner is not None:
            query["user_id"] = owner
        return query

    async def get(self, tenant_id: str, mailbox_id: str, *, owner: str | None = None) -> Document | None:
        """The mailbox, None when the tenant (or ``owner``, when given) has no such mailbox."""
        return await self.collection.find_one(self._scope(tenant_id, mailbox_id, owner))

    async def find_by_email(self, tenant_id: str, email: str) -> Document | None:
        return await self.collection.find_one({"tenant_id": tenant_id, "email": email})

    async def list(self, tenant_id: str, *, owner: str | None = None) -> list[Document]:
        """The tenant's mailboxes (``owner``'s only, when given), oldest first."""
        cursor = self.collection.find(self._scope(tenant_id, owner=owner)).sort("created_at", ASCENDING)
        return [doc async for doc in cursor]

    async def count(self, tenant_id: str) -> int:
        return await self.collection.count_documents({"tenant_id": tenant_id})

    async def update(
        self,
        tenant_id: str,
        mailbox_id: str,
        fields: dict[str, Any],
        *,
        owner: str | None = None,
        match: dict[str, Any] | None = None,
    ) -> Document | None:
        """``$set`` ``fields``; returns the updated document, None when the tenant (or ``owner``) has no such
        mailbox or it no longer matches ``match`` (a compare-and-set: e.g. the credential envelope read before)."""
        query = {**self._scope(tenant_id, mailbox_id, owner), **(match or {})}
        result = await self.collection.update_one(query, {"$set": fields})
        if result.matched_count == 0:
            return None
        return await self.get(tenant_id, mailbox_id)

    async def delete(self, tenant_id: str, mailbox_id: str, *, owner: str | None = None) -> bool:
        result = await self.collection.delete_one(self._scope(tenant_id, mailbox_id, owner))
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


class AttemptLog:
    """Verification attempts, for the per-address and per-tenant rate limits.

    Limits hold under concurrency without transactions (FerretDB v1 has none): an attempt is *reserved* (its
    document inserted, ``ok`` null) before anything is counted, the counts include every reservation, and the
    attempt is *settled* (``ok`` true or false) after the verification, or *released* (deleted) when a limit
    refused it. A pending reservation counts as a failure. Each request counts after its own insert, so of N
    simultaneous requests every one sees at least the reservations inserted before its own: at most the limit
    go on (some may be refused more than strictly needed, never fewer).
    """

    def __init__(self, db: AsyncDatabase[Document], window: timedelta) -> None:
        self.collection = db[ATTEMPTS]
        self.window = window

    async def prune(self, now: datetime) -> int:
        """Delete attempts older than the window (no TTL index on FerretDB); returns how many."""
        result = await self.collection.delete_many({"at": {"$lt": now - self.window}})
        return result.deleted_count

    async def reserve(self, tenant_id: str, email: str, now: datetime) -> str:
        """Insert a pending attempt (before the limits are counted); returns its id."""
        reservation = uuid.uuid4().hex
        await self.collection.insert_one(
            {"_id": reservation, "tenant_id": tenant_id, "email": email, "at": now, "ok": None, "code": None}
        )
        return reservation

    async def settle(self, reservation: str, *, ok: bool, code: str | None) -> None:
        """Record the outcome of a reserved attempt."""
        await self.collection.update_one({"_id": reservation}, {"$set": {"ok": ok, "code": code}})

    async def release(self, reservation: str) -> None:
        """Drop a reservation a limit refused (no connection was made)."""
        await self.collection.delete_one({"_id": reservation})

    async def failures(self, tenant_id: str | None, email: str, now: datetime) -> list[datetime]:
        """Times of failed or pending attempts on ``email`` inside the window, oldest first: by ``tenant_id``,
        or by every tenant when it is None."""
        query: dict[str, Any] = {"email": email, "ok": {"$ne": True}, "at": {"$gte": now - self.window}}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        cursor = self.collection.find(query).sort("at", ASCENDING)
        return [doc["at"] async for doc in cursor]

    async def attempts(self, tenant_id: str, now: datetime) -> list[datetime]:
        """Times of all attempts (pending included) by the tenant inside the window, oldest first."""
        cursor = self.collection.find({"tenant_id": tenant_id, "at": {"$gte": now - self.window}}).sort(
            "at", ASCENDING
        )
        return [doc["at"] async for doc in cursor]
