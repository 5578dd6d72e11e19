"""The registry of sent messages, and of received messages waiting for their mail.sent (late matching).

:class:`SentRegistry` is the interface the matcher uses; :class:`MemoryRegistry` keeps everything in dicts (the
CLI, unit tests, benchmarks) and :class:`MongoRegistry` stores it in the classifier's own database and answers
from the same in-memory index, filled at :meth:`MongoRegistry.load` and by every :meth:`add`.

Why an index in memory: FerretDB v1 on SQLite pushes down only ``_id`` equality; any other filter reads the
whole collection (measured on the project's FerretDB: a lookup by an indexed secondary field took 1.2 s with
20,000 documents, by ``_id`` a few ms). So every stored document is written to be found by ``_id`` alone, the
per-message lookups run against the index, and a miss on an id-based key (In-Reply-To, References, a reply
token, a DSN's embedded Message-ID) asks the collection by ``_id`` once, which finds what another classifier
replica stored. Writes are insert-only and batched (``insert_many(ordered=False)``; a duplicate key means
"already there", which makes redelivered mail.sent harmless); no transactions, TTL indexes or ``$lookup``
(FerretDB v1 has none of them); expired waiting messages are deleted by :meth:`MongoRegistry.prune`.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import InsertOne
from pymongo.errors import BulkWriteError

from laifaxin_shared.logging import get_logger

from .records import SentRecord

log = get_logger(__name__)

DUPLICATE_KEY = 11000
STORE_LOOKUPS = 3
"""Most ids of one message asked of the collection on an index miss (In-Reply-To and the newest References)."""
PENDING_SLOTS = 4
"""Received messages that may wait on one key (two replies to one unknown message, ...); more are dropped."""


@dataclass(frozen=True, slots=True)
class PendingReply:
    """A received message that matched nothing yet, kept under the keys a late mail.sent could match.

    ``received`` and ``classified`` are the JSON of its mail.received (text dropped) and mail.classified events.
    """

    natural_key: str
    keys: tuple[str, ...]
    received: str
    classified: str
    expires_at: datetime


class SentRegistry(Protocol):
    """Sent messages by scope and Message-ID digest, and by (mailbox, recipient) in time order."""

    async def add(self, records: Sequence[SentRecord]) -> list[SentRecord]:
        """Store records; returns those that were new (a record already stored is skipped, not an error)."""
        ...

    async def find(self, scope: str, digests: Sequence[str]) -> SentRecord | None:
        """The record of the first digest (in the given order) sent in ``scope``, or None."""
        ...

    async def sent_to(
        self, scope: str, mailbox_id: str, recipient: str, *, since: datetime, until: datetime
    ) -> list[SentRecord]:
        """Records sent from ``mailbox_id`` in ``scope`` to ``recipient`` (lowercased) within [since, until],
        newest first."""
        ...

    async def add_pending(self, items: Sequence[PendingReply]) -> None:
        """Keep unmatched received messages under their keys until they expire."""
        ...

    async def pending(self, keys: Iterable[str]) -> list[PendingReply]:
        """Unexpired waiting messages under any of ``keys``, each once."""
        ...

    async def claim(self, natural_keys: Sequence[str]) -> set[str]:
        """Mark received messages as matched; returns those this call marked first (insert-first, so a
        redelivery or another replica finds them taken)."""
        ...


def _slot(scope: str, digest: str) -> int:
    """The index key of (scope, digest): 64 bits of SHA-256 (an int keeps the index small; a hit is checked)."""
    return int.from_bytes(hashlib.sha256(f"{scope}|{digest}".encode()).digest()[:8], "big")


def _sent_at(record: SentRecord) -> datetime:
    return record.sent_at


@dataclass
class MemoryRegistry:
    """The registry in dicts: the matcher's index, and the whole store for the CLI and unit tests.

    ``by_digest`` maps a 64-bit key of (scope, digest) to the record (checked on a hit, so a key collision
    cannot match the wrong message); ``by_recipient`` keeps each (mailbox, recipient)'s records in send order.
    """

    by_digest: dict[int, SentRecord] = field(default_factory=dict)
    by_recipient: dict[tuple[str, str], list[SentRecord]] = field(default_factory=dict)
    waiting: dict[str, list[PendingReply]] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)

    def index(self, record: SentRecord) -> bool:
        """Add one record to the index; False when its Message-ID was already there."""
        digests = record.digests()
        if self._get(record.scope, digests[0]) is not None:
            return False
        for digest in digests:
            self.by_digest.setdefault(_slot(record.scope, digest), record)
        for rcpt in record.recipients:
            entries = self.by_recipient.setdefault((record.mailbox_id, rcpt), [])
            if not entries or entries[-1].sent_at <= record.sent_at:
                entries.append(record)
            else:
                bisect.insort(entries, record, key=_sent_at)
        return True

    def _get(self, scope: str, digest: str) -> SentRecord | None:
        record = self.by_digest.get(_slot(scope, digest))
        if record is None or record.scope != scope or digest not in record.digests():
            return None
        return record

    async def add(self, records: Sequence[SentRecord]) -> list[SentRecord]:
        return [r for r in records if self.index(r)]

    async def find(self, scope: str, digests: Sequence[str]) -> SentRecord | None:
        for digest in digests:
            record = self._get(scope, digest)
            if record is not None:
                return record
        return None

    async def sent_to(
        self, scope: str, mailbox_id: str, recipient: str, *, since: datetime, until: datetime
    ) -> list[SentRecord]:
        entries = self.by_recipient.get((mailbox_id, recipient))
        if not entries:
            return []
        out: list[SentRecord] = []
        for record in reversed(entries):
            if record.sent_at > until:
                continue
            if record.sent_at < since or len(out) >= 20:
                break
            if record.scope == scope:
                out.append(record)
        return out

    def keep_pending(self, item: PendingReply) -> None:
        """Index one waiting message under each of its keys (at most :data:`PENDING_SLOTS` per key)."""
        for key in item.keys:
            slot = self.waiting.setdefault(key, [])
            if all(p.natural_key != item.natural_key for p in slot) and len(slot) < PENDING_SLOTS:
                slot.append(item)

    async def add_pending(self, items: Sequence[PendingReply]) -> None:
        for item in items:
            self.keep_pending(item)

    async def pending(self, keys: Iterable[str]) -> list[PendingReply]:
        now = datetime.now(UTC)
        seen: dict[str, PendingReply] = {}
        for key in keys:
            for item in self.waiting.get(key, ()):
                if item.expires_at > now:
                    seen.setdefault(item.natural_key, item)
        return list(seen.values())

    async def claim(self, natural_keys: Sequence[str]) -> set[str]:
        fresh = {k for k in natural_keys if k not in self.claimed}
        self.claimed |= fresh
        return fresh

    def prune(self, now: datetime) -> int:
        """Drop expired waiting messages; returns how many index entries went."""
        dropped = 0
        for key in list(self.waiting):
            kept = [p for p in self.waiting[key] if p.expires_at > now]
            dropped += len(self.waiting[key]) - len(kept)
            if kept:
                self.waiting[key] = kept
            else:
                del self.waiting[key]
        return dropped


def _inserted(result_or_error: Any, total: int) -> set[int]:
    """Indexes of the operations of a bulk insert that went in (all but the duplicate-key errors)."""
    if isinstance(result_or_error, BulkWriteError):
        errors = result_or_error.details.get("writeErrors", [])
        others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if others:
            raise result_or_error
        return set(range(total)) - {int(e["index"]) for e in errors}
    return set(range(total))


class MongoRegistry:
    """The registry in the classifier's database (collections ``sent``, ``pending``, ``matched``), answered
    from an in-memory :class:`MemoryRegistry` index.

    Args:
        db: the classifier's database (PyMongo async).
        store_lookups: on an index miss for id-based keys, look the ``_id`` up in the collection (finds what
            another replica stored; one round trip per miss).
    """

    def __init__(self, db: Any, *, store_lookups: bool = True) -> None:
        self.db = db
        self.store_lookups = store_lookups
        self.index = MemoryRegistry()

    async def load(self, *, batch_size: int = 5000) -> int:
        """Fill the index from the collections (one scan each at start); returns the sent records loaded."""
        count = 0
        async for doc in self.db.sent.find({}, batch_size=batch_size):
            if "a" in doc:
                continue
            self.index.index(SentRecord.from_document(doc))
            count += 1
        now = datetime.now(UTC)
        async for doc in self.db.pending.find({}, batch_size=batch_size):
            if "r" not in doc:
                continue  # a key document; its message's document lists every key
            item = _pending_from(doc)
            if item.expires_at > now:
                self.index.keep_pending(item)
        async for doc in self.db.matched.find({}, {"_id": 1}, batch_size=batch_size):
            self.index.claimed.add(str(doc["_id"]))
        return count

    async def add(self, records: Sequence[SentRecord]) -> list[SentRecord]:
        if not records:
            return []
        ops: list[InsertOne[Any]] = []
        owner: list[int] = []  # the record of each operation, -1 for alias documents
        for i, record in enumerate(records):
            for doc in record.to_documents():
                ops.append(InsertOne(doc))
                owner.append(-1 if "a" in doc else i)
        try:
            result: Any = await self.db.sent.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            result = exc
        went_in = {owner[i] for i in _inserted(result, len(ops))}
        fresh = [r for i, r in enumerate(records) if i in went_in]
        for record in records:
            self.index.index(record)  # already stored (a redelivery) or new: the index holds it either way
        return fresh

    async def find(self, scope: str, digests: Sequence[str]) -> SentRecord | None:
        found = await self.index.find(scope, digests)
        if found is not None or not self.store_lookups:
            return found
        for digest in digests[:STORE_LOOKUPS]:
            doc = await self.db.sent.find_one({"_id": f"{scope}|{digest}"})
            if doc is not None and "a" in doc:
                doc = await self.db.sent.find_one({"_id": doc["a"]})
            if doc is not None:
                record = SentRecord.from_document(doc)
                self.index.index(record)
                return record
        return None

    async def sent_to(
        self, scope: str, mailbox_id: str, recipient: str, *, since: datetime, until: datetime
    ) -> list[SentRecord]:
        return await self.index.sent_to(scope, mailbox_id, recipient, since=since, until=until)

    async def add_pending(self, items: Sequence[PendingReply]) -> None:
        """One document per message (``_id`` ``m|<natural key>``: the events, the keys, the expiry) and one
        small document per key (``_id`` ``<key>#<slot>``: the natural key), all insert-only."""
        if not items:
            return
        todo: list[tuple[str, PendingReply]] = []
        bodies = []
        for item in items:
            keys = [
                k
                for k in item.keys
                if all(p.natural_key != item.natural_key for p in self.index.waiting.get(k, ()))
            ]
            if not keys:
                continue  # a redelivered message already waits
            todo += [(key, item) for key in keys]
            bodies.append(
                {
                    "_id": f"m|{item.natural_key}",
                    "ks": list(item.keys),
                    "r": item.received,
                    "c": item.classified,
                    "x": item.expires_at,
                }
            )
            self.index.keep_pending(item)
        if bodies:
            try:
                await self.db.pending.insert_many(bodies, ordered=False)
            except BulkWriteError as exc:
                _inserted(exc, len(bodies))  # a duplicate: the message's document is already there
        for slot in range(PENDING_SLOTS):  # a taken slot is another message waiting on the key: next slot
            if not todo:
                break
            docs = [
                {"_id": f"{key}#{slot}", "n": item.natural_key, "x": item.expires_at} for key, item in todo
            ]
            try:
                result: Any = await self.db.pending.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                result = exc
            went_in = _inserted(result, len(docs))
            todo = [pair for i, pair in enumerate(todo) if i not in went_in]

    async def pending(self, keys: Iterable[str]) -> list[PendingReply]:
        wanted = list(dict.fromkeys(keys))
        found = {p.natural_key: p for p in await self.index.pending(wanted)}
        if self.store_lookups:
            now = datetime.now(UTC)
            for key in wanted:
                if key in self.index.waiting:
                    continue
                for slot in range(PENDING_SLOTS):
                    pointer = await self.db.pending.find_one({"_id": f"{key}#{slot}"})
                    if pointer is None:
                        break
                    doc = await self.db.pending.find_one({"_id": f"m|{pointer['n']}"})
                    if doc is None:
                        continue
                    item = _pending_from(doc)
                    if item.expires_at > now:
                        self.index.keep_pending(item)
                        found.setdefault(item.natural_key, item)
        return list(found.values())

    async def claim(self, natural_keys: Sequence[str]) -> set[str]:
        keys = [k for k in dict.fromkeys(natural_keys) if k not in self.index.claimed]
        if not keys:
            return set()
        try:
            result: Any = await self.db.matched.insert_many(
                [{"_id": k, "at": datetime.now(UTC)} for k in keys], ordered=False
            )
        except BulkWriteError as exc:
            result = exc
        fresh = {keys[i] for i in _inserted(result, len(keys))}
        self.index.claimed |= set(keys)
        return fresh

    async def prune(self, now: datetime | None = None) -> int:
        """Delete expired waiting messages (FerretDB v1 has no TTL index); returns how many documents went."""
        now = now or datetime.now(UTC)
        self.index.prune(now)
        result = await self.db.pending.delete_many({"x": {"$lt": now}})
        return int(result.deleted_count)


def _pending_from(doc: dict[str, Any]) -> PendingReply:
    """The waiting message of a ``m|<natural key>`` document."""
    expires = doc["x"]
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return PendingReply(
        natural_key=str(doc["_id"])[2:],
        keys=tuple(doc.get("ks", ())),
        received=doc["r"],
        classified=doc["c"],
        expires_at=expires,
    )
