"""The read model in the inbox's own database, written only from Kafka events, insert-only and batched.

Collections (``_id`` layouts in :mod:`laifaxin_inbox.keys`):

- ``messages``: ``_id`` = the message key (``mailbox/folder/UIDVALIDITY/UID``); the ``mail.received`` fields.
- ``classes``: ``_id`` = the message key; the ``mail.classified`` fields (category, match, owner).
- ``index``: time-ordered entries ``time|value`` in day buckets, ``_id`` = ``prefix#dDAY``, and per prefix a
  head document (``_id`` = prefix) listing its days. Prefixes: ``L|tenant|user|`` (the owner's messages, value
  the message key), ``C|tenant|user|category|`` (by category). FerretDB v1 (SQLite) pushes only ``_id``
  equality down to its primary key, not ranges or ``$in``: every read here is one equality lookup, a page
  reads the head and a few buckets. Entries are added with ``$addToSet`` (idempotent).
- ``threads``: ``T|tenant|user|root|time|r|key`` (received) and ``...|s|Message-ID`` (sent): a conversation,
  one inserted document per message (a thread is read with an ``_id`` range: a collection scan on FerretDB v1,
  acceptable for the one-conversation view, not for the hot list).
- ``owners``: ``tenant|user|key``: who may read a message (one ``_id`` lookup per message request).
- ``sent``: ``tenant|Message-ID``: a message the tenant sent (for conversations).
- ``replied``: ``tenant|Message-ID``: messages a ``mail.sent`` of the tenant answered (In-Reply-To/References).
- ``state``: ``tenant|user|key``: what the user set (read, handled); the only documents ever updated.
- ``mailboxes``: ``_id`` = mailbox id: owner, address, system flag, removed.

Every write of an event is an unordered ``insert_many`` whose duplicate-key errors (code 11000) are ignored, or
an ``$addToSet`` of index entries, so a redelivered batch changes nothing (FerretDB v1 has no transactions; each insert is atomic on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from laifaxin_shared.mongo import Document

from . import keys

LOOKUP_CONCURRENCY = 8
"""Concurrent ``_id`` lookups or updates one call issues."""
DAY_MS = 86_400_000
BUCKET = "#d"
SCAN_AHEAD = 4
"""Day buckets fetched together while scanning."""

COLLECTIONS = (
    "messages",
    "classes",
    "index",
    "owners",
    "threads",
    "sent",
    "replied",
    "state",
    "mailboxes",
)


class Store:
    """The collections of the read model and the few operations on them."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.messages = db["messages"]
        self.classes = db["classes"]
        self.index = db["index"]
        self.owners = db["owners"]
        self.threads = db["threads"]
        self.sent = db["sent"]
        self.replied = db["replied"]
        self.state = db["state"]
        self.mailboxes = db["mailboxes"]

    async def init(self) -> None:
        """Create the collections (no secondary index: every query is by ``_id``)."""
        existing = set(await self.db.list_collection_names())
        for name in COLLECTIONS:
            if name not in existing:
                with contextlib.suppress(CollectionInvalid, OperationFailure):  # created meanwhile elsewhere
                    await self.db.create_collection(name)

    async def insert(self, collection: str, docs: Sequence[Document]) -> int:
        """Insert ``docs`` unordered; documents whose ``_id`` exists are left as they are. Returns how many
        were new.

        Raises:
            pymongo.errors.PyMongoError: any error but a duplicate key (the batch is then redelivered).
        """
        if not docs:
            return 0
        try:
            result = await self.db[collection].insert_many(list(docs), ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return len(docs) - len(errors)

    async def by_ids(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        """The documents of ``collection`` with these ``_id`` s, by ``_id``: one ``_id`` equality lookup each,
        :data:`LOOKUP_CONCURRENCY` at a time (FerretDB v1 answers ``$in`` and ranges with a full scan)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)
        coll = self.db[collection]

        async def one(doc_id: str) -> Document | None:
            async with gate:
                return await coll.find_one({"_id": doc_id})

        found = await asyncio.gather(*(one(i) for i in wanted))
        return {d["_id"]: d for d in found if d is not None}

    async def append(self, entries: Sequence[tuple[str, int, str]]) -> None:
        """Add index entries ``(prefix, time ms, value)``: each goes into the day bucket ``prefix + dDAY`` as the
        string ``time|value`` (``$addToSet``: a redelivered entry is not added twice), and the bucket's day into
        the prefix's head document. One update per (prefix, day) and one per prefix."""
        buckets: dict[str, list[str]] = defaultdict(list)
        heads: dict[str, set[int]] = defaultdict(set)
        for prefix, at_ms, value in entries:
            day = max(at_ms, 0) // DAY_MS
            buckets[f"{prefix}{BUCKET}{day:06d}"].append(f"{keys.ts(at_ms)}{keys.SEP}{value}")
            heads[prefix].add(day)
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def add(doc_id: str, field: str, values: list[Any]) -> None:
            async with gate:
                await self.index.update_one(
                    {"_id": doc_id}, {"$addToSet": {field: {"$each": values}}}, upsert=True
                )

        await asyncio.gather(*(add(b, "e", v) for b, v in buckets.items()))
        await asyncio.gather(*(add(h, "days", sorted(d)) for h, d in heads.items()))

    async def scan(self, prefix: str, *, low: str = "", high: str = keys.END, limit: int = 100) -> list[str]:
        """Entries ``time|value`` of ``prefix`` with ``low <= entry < high``, newest first, at most ``limit``:
        the head document, then the day buckets from the newest, each by ``_id`` equality."""
        head = await self.index.find_one({"_id": prefix})
        if head is None:
            return []
        low_day = int(low[:13]) // DAY_MS if low[:13].isdigit() else 0
        high_day = int(high[:13]) // DAY_MS if high[:13].isdigit() else None
        days = sorted(
            (d for d in head.get("days", []) if d >= low_day and (high_day is None or d <= high_day)),
            reverse=True,
        )
        out: list[str] = []
        for start in range(0, len(days), SCAN_AHEAD):
            ids = [f"{prefix}{BUCKET}{d:06d}" for d in days[start : start + SCAN_AHEAD]]
            docs = await self.by_ids("index", ids)
            for doc_id in ids:
                entries = sorted(
                    (e for e in docs.get(doc_id, {}).get("e", []) if low <= e < high), reverse=True
                )
                out.extend(entries[: limit - len(out)])
                if len(out) >= limit:
                    return out
        return out

    async def range_ids(self, collection: str, prefix: str, limit: int = 500) -> list[str]:
        """``_id`` s of ``collection`` that start with ``prefix``, ascending, at most ``limit``."""
        cursor = self.db[collection].find({"_id": {"$gte": prefix, "$lt": prefix + keys.END}}, {"_id": 1})
        ids = sorted([d["_id"] async for d in cursor])
        return ids[:limit]

    async def count(self, prefix: str) -> int:
        """How many entries ``prefix`` holds (every bucket read)."""
        head = await self.index.find_one({"_id": prefix})
        if head is None:
            return 0
        ids = [f"{prefix}{BUCKET}{d:06d}" for d in head.get("days", [])]
        docs = await self.by_ids("index", ids)
        return sum(len(d.get("e", [])) for d in docs.values())

    async def set_state(self, tenant_id: str, user_id: str, key: str, changes: dict[str, Any]) -> Document:
        """Merge ``changes`` (``read``, ``handled``) into the user's state of a message; returns the state."""
        sid = keys.owner_id(tenant_id, user_id, key)
        await self.state.update_one({"_id": sid}, {"$set": changes}, upsert=True)
        return await self.state.find_one({"_id": sid}) or {"_id": sid}

    async def put_mailbox(self, doc: Document) -> None:
        await self.mailboxes.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def remove_mailbox(self, mailbox_id: str) -> None:
        await self.mailboxes.update_one({"_id": mailbox_id}, {"$set": {"removed": True}}, upsert=True)
