"""The send service's own MongoDB database.

Collections:

- ``mailboxes``: send's copy of each bound mailbox from ``mailbox.verified`` / ``updated`` / ``removed`` (servers,
  login, the sealed credential, provider, when it was first bound, and the campaign pause of the bounce guard).
  A record older than the stored one is ignored (``config_at``), as sync's registry does.
- ``commands``: one document per command, ``_id`` = ``<tenant_id>/<command_id>`` (the idempotency key; claimed
  with an insert, :func:`laifaxin_shared.mongo.insert_unique`), with its state, due time, attempts, the claim
  (``claimed_by``, ``lease_until``, ``phase``) and the outcome.
- ``days``: per mailbox and sending day, the sends reserved and the earliest time of the next campaign send
  (``_id`` = ``<mailbox_id>/<YYYY-MM-DD>``).
- ``bounces``: bounces matched to a mailbox's sent mail (``_id`` = the mail.classified event id).

FerretDB v1 portable: no transactions, no TTL; a conditional ``update_one`` (filter on the expected state) is
how a command is claimed, so two workers never both submit it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, TypeVar

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, OperationFailure

from laifaxin_shared.mongo import Document, ensure_indexes, insert_unique

MAILBOXES = "mailboxes"
COMMANDS = "commands"
DAYS = "days"
BOUNCES = "bounces"

INDEXES = {
    COMMANDS: [
        IndexModel([("state", ASCENDING), ("due_at", ASCENDING)], name="due"),
        IndexModel([("mailbox_id", ASCENDING), ("state", ASCENDING), ("sent_at", ASCENDING)], name="sent"),
        IndexModel([("state", ASCENDING), ("lease_until", ASCENDING)], name="lease"),
    ],
    BOUNCES: [IndexModel([("mailbox_id", ASCENDING), ("at", ASCENDING)], name="mailbox_at")],
}

OPEN_STATES = ("queued", "deferred")
WRITE_ATTEMPTS = 6
WRITERS = 8
"""Writes at most in flight per worker: FerretDB's SQLite backend takes one writer at a time and answers
``database is locked (SQLITE_BUSY)`` to the others after its busy timeout; a few at once keep it busy
without piling up."""

T = TypeVar("T")


def _transient(exc: Exception) -> bool:
    """A write worth retrying: a lost connection, or a busy/locked backend (FerretDB on SQLite)."""
    if isinstance(exc, AutoReconnect):
        return True
    text = str(exc)
    return isinstance(exc, OperationFailure) and ("SQLITE_BUSY" in text or "database is locked" in text)


def command_key(tenant_id: str, command_id: str) -> str:
    """The ``_id`` of a command: unique per tenant."""
    return f"{tenant_id}/{command_id}"


class SendStore:
    """Typed access to send's collections."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self._writers = asyncio.Semaphore(WRITERS)
        self.mailboxes = db[MAILBOXES]
        self.commands = db[COMMANDS]
        self.days = db[DAYS]
        self.bounces = db[BOUNCES]

    async def _write(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run a write, at most :data:`WRITERS` at once, retried on transient failures (50 ms doubling, six
        attempts).

        Raises:
            pymongo.errors.PyMongoError: the last failure, or a failure that is not transient.
        """
        for attempt in range(WRITE_ATTEMPTS):
            try:
                async with self._writers:
                    return await op()
            except (AutoReconnect, OperationFailure) as exc:
                if attempt == WRITE_ATTEMPTS - 1 or not _transient(exc):
                    raise
                await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    async def init(self) -> None:
        """Create the indexes (idempotent)."""
        await ensure_indexes(self.db, INDEXES)

    # ------------------------------------------------------------------ mailboxes

    async def upsert_mailbox(self, mailbox_id: str, at: datetime, fields: dict[str, Any]) -> bool:
        """Store a mailbox's configuration unless a newer one is stored; keeps ``bound_at`` (the first time)."""
        existing = await self.mailboxes.find_one({"_id": mailbox_id}, {"config_at": 1, "bound_at": 1})
        if existing is None:
            return await insert_unique(
                self.mailboxes,
                {"_id": mailbox_id, **fields, "bound_at": at, "config_at": at, "removed": False},
            ) or await self.upsert_mailbox(mailbox_id, at, fields)
        if existing.get("config_at") and existing["config_at"] > at:
            return False
        result = await self._write(
            lambda: self.mailboxes.update_one(
                {"_id": mailbox_id}, {"$set": {**fields, "config_at": at, "removed": False}}
            )
        )
        return result.modified_count == 1

    async def update_mailbox(self, mailbox_id: str, at: datetime, fields: dict[str, Any]) -> bool:
        """Apply ``fields`` to a known mailbox unless a newer record was applied."""
        result = await self.mailboxes.update_one(
            {"_id": mailbox_id, "config_at": {"$lte": at}}, {"$set": {**fields, "config_at": at}}
        )
        return result.modified_count == 1

    async def mailbox(self, mailbox_id: str) -> Document | None:
        """A mailbox that is bound (not removed)."""
        return await self.mailboxes.find_one({"_id": mailbox_id, "removed": False})

    async def set_paused(self, mailbox_id: str, paused: bool, at: datetime, **extra: Any) -> bool:
        """Set the campaign pause; True when it changed."""
        result = await self.mailboxes.update_one(
            {"_id": mailbox_id, "sending_paused": {"$ne": paused}},
            {"$set": {"sending_paused": paused, "paused_changed_at": at, **extra}},
        )
        return result.modified_count == 1

    async def paused_mailboxes(self) -> list[Document]:
        return [d async for d in self.mailboxes.find({"sending_paused": True, "removed": False})]

    # ------------------------------------------------------------------ commands

    async def insert_command(self, doc: Document) -> bool:
        """Store a new command; False when one with this key exists (a redelivery: nothing written)."""
        return await self._write(lambda: insert_unique(self.commands, doc))

    async def command(self, key: str) -> Document | None:
        return await self.commands.find_one({"_id": key})

    async def due(self, now: datetime, limit: int) -> list[Document]:
        """Queued or deferred commands due by ``now``, oldest due first."""
        cursor = (
            self.commands.find({"state": {"$in": list(OPEN_STATES)}, "due_at": {"$lte": now}})
            .sort("due_at", ASCENDING)
            .limit(limit)
        )
        return [d async for d in cursor]

    async def orphans(self, now: datetime, limit: int = 100) -> list[Document]:
        """Commands in ``sending`` whose claim expired (the worker died or hung)."""
        cursor = self.commands.find({"state": "sending", "lease_until": {"$lt": now}}).limit(limit)
        return [d async for d in cursor]

    async def claim(self, key: str, expected: str, fields: dict[str, Any]) -> Document | None:
        """Move a command from state ``expected`` (and its current claim, when ``sending``) to ``fields``;
        the updated document, or None when another worker got there first."""
        return await self._write(
            lambda: self.commands.find_one_and_update(
                {"_id": key, "state": expected},
                {"$set": fields, "$inc": {"attempts": 1 if fields.get("state") == "sending" else 0}},
                return_document=ReturnDocument.AFTER,
            )
        )

    async def reclaim(self, key: str, lease_until: datetime, fields: dict[str, Any]) -> Document | None:
        """Take over an orphaned ``sending`` command (its lease, as read, must still be the stored one)."""
        return await self._write(
            lambda: self.commands.find_one_and_update(
                {"_id": key, "state": "sending", "lease_until": lease_until},
                {"$set": fields},
                return_document=ReturnDocument.AFTER,
            )
        )

    async def update_command(self, key: str, fields: dict[str, Any], *, owner: str | None = None) -> bool:
        """Set ``fields`` on a command (only while ``owner`` holds its claim, when given)."""
        query: dict[str, Any] = {"_id": key}
        if owner is not None:
            query["claimed_by"] = owner
        result = await self._write(lambda: self.commands.update_one(query, {"$set": fields}))
        return result.matched_count == 1

    async def sent_count(self, mailbox_id: str, since: datetime) -> int:
        """Messages of the mailbox sent since ``since``."""
        return await self.commands.count_documents(
            {"mailbox_id": mailbox_id, "state": "sent", "sent_at": {"$gte": since}}
        )

    async def count_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        async for doc in self.commands.find({}, {"state": 1}):
            out[doc["state"]] = out.get(doc["state"], 0) + 1
        return out

    async def paused_campaigns(self, mailbox_id: str) -> list[Document]:
        return [
            d
            async for d in self.commands.find(
                {"mailbox_id": mailbox_id, "state": "deferred", "reason": "sending_paused"}
            )
        ]

    # ------------------------------------------------------------------ days

    async def day(self, mailbox_id: str, day: date) -> Document:
        doc = await self.days.find_one({"_id": f"{mailbox_id}/{day.isoformat()}"})
        return doc or {"reserved": 0, "next_slot_at": None, "full": False}

    async def reserve(self, mailbox_id: str, day: date, next_slot_at: datetime | None) -> None:
        """Count one more send on ``day`` (and move its next campaign slot, when given)."""
        update: dict[str, Any] = {
            "$inc": {"reserved": 1},
            "$set": {"mailbox_id": mailbox_id, "day": day.isoformat()},
        }
        if next_slot_at is not None:
            update["$set"]["next_slot_at"] = next_slot_at
        await self._write(
            lambda: self.days.update_one({"_id": f"{mailbox_id}/{day.isoformat()}"}, update, upsert=True)
        )

    async def mark_full(self, mailbox_id: str, day: date) -> None:
        """The provider said the day's quota is reached: nothing more that day."""
        await self.days.update_one(
            {"_id": f"{mailbox_id}/{day.isoformat()}"},
            {"$set": {"full": True, "mailbox_id": mailbox_id, "day": day.isoformat()}},
            upsert=True,
        )

    # ------------------------------------------------------------------ bounces

    async def add_bounce(self, event_id: str, mailbox_id: str, at: datetime, detail: dict[str, Any]) -> bool:
        """Record a bounce once (redelivery harmless)."""
        return await insert_unique(
            self.bounces, {"_id": event_id, "mailbox_id": mailbox_id, "at": at, **detail}
        )

    async def bounce_count(self, mailbox_id: str, since: datetime) -> int:
        return await self.bounces.count_documents({"mailbox_id": mailbox_id, "at": {"$gte": since}})
