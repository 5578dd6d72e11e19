"""The sync service's own MongoDB database: mailbox registry, leases, folder cursors, message index, raw bytes.

Collections (ARCHITECTURE.md "Storage"):

- ``mailboxes``: ``_id`` = mailbox id; the latest ``mailbox.verified`` config (credential still sealed),
  ``partition`` (Kafka's murmur2 partition of the id), ``sync`` settings, the last reported ``status`` (state,
  error code and ``at``, when it was sent) and ``account_reset`` while the sync state of a previous account
  is still to be dropped (:meth:`SyncStore.upsert_mailboxes`, :meth:`SyncStore.reset_account`).
- ``leases``: ``_id`` = mailbox id, ``owner`` (worker id, None once released) and ``epoch``: the fence that
  keeps two workers off one mailbox while a rebalance is under way. A lease is valid while its owner's
  ``workers`` document is unexpired. ``epoch`` grows by one at every change of hands and is never reset (a
  released lease keeps its document), so it is a fencing token: cursor writes carry it and are refused once a
  newer one was issued.
- ``workers``: ``_id`` = worker id, ``expires_at``: one heartbeat per worker (one write per beat, whatever
  the number of mailboxes it holds).
- ``cursors``: ``_id`` = ``mailbox:folder`` (one per synced folder: INBOX, Junk, the user's folders); UIDVALIDITY,
  UIDNEXT, HIGHESTMODSEQ, MESSAGES, ``last_uid`` (highest UID handled: published, quarantined, deduplicated or
  outside the window), ``baseline_uidnext``, the UIDVALIDITY reset count and time, and ``lease_epoch``: the epoch of
  the lease its last writer held. A write is conditional on ``lease_epoch`` not exceeding the writer's
  (:meth:`SyncStore.save_cursor`), and taking a lease over raises the epoch of the mailbox's cursors first, so a
  worker that lost its lease cannot move them. ``void``: the cursor belonged to the mailbox's previous account; it is
  read as no cursor, and the document stays only to keep the fence (the folder's next cursor replaces it under the
  same condition).
- ``messages``: the index; ``_id`` = ``mailbox:folder:uidvalidity:uid`` (unique by construction) and a unique
  ``dedupe_key`` (mailbox + Message-ID, or + SHA-256 of the raw bytes when there is none), so a message is
  indexed once across folders and retries; ``event_id`` (the id its ``mail.received`` carries, kept on
  retries) or ``reason`` for a quarantined message. An entry is published once the folder cursor's
  ``last_uid`` has passed its UID (the cursor is the commit point; FerretDB's multi-document updates are too
  slow to mark entries one by one).
- ``raw_messages``: ``_id`` = raw_ref; the raw RFC 5322 bytes: the first ``raw_max_bytes`` with ``size_bytes``
  and ``chunks``, the rest in continuation documents ``raw_ref#n`` (``part_of`` = raw_ref), up to 64 MiB.
- ``removed``: ``_id`` = mailbox id, ``removed_at_ms``: when its last ``mailbox.removed`` was published (event
  ``occurred_at``, epoch ms). With ``verified_at_ms`` on ``mailboxes`` it makes the registry last-writer-wins by
  event time, whatever order the two topics are read in: a removal older than the stored binding is ignored,
  and so is a verification older than the removal. Tombstones are a few bytes each and are kept.

FerretDB v1 (local, CI) has no transactions, TTL or partial indexes and reports unique violations only on insert:
every claim inserts first and handles ``DuplicateKeyError``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from laifaxin_shared.events import MailboxVerified
from laifaxin_shared.events.base import utc_now
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mongo import Document, ensure_indexes, insert_unique

log = get_logger(__name__)

_CHUNK = 500  # ids per ``$in`` query or bulk write of the bulk methods
_BUSY = ("SQLITE_BUSY", "database is locked")
_WRITES = frozenset(
    {
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "replace_one",
        "delete_one",
        "delete_many",
        "bulk_write",
    }
)


def storage_busy(exc: BaseException) -> bool:
    """True for a write refused because the server's storage was momentarily locked by another write
    (FerretDB on SQLite reports ``database is locked (SQLITE_BUSY)`` instead of waiting): nothing was written,
    and trying again shortly succeeds."""
    return isinstance(exc, OperationFailure) and any(m in str(exc) for m in _BUSY)


class _BusyRetrying:
    """A collection whose writes are tried again (up to ``attempts`` times, jittered delays from 10 ms doubling
    to 500 ms, about 2 s in all) while :func:`storage_busy`; everything else is the collection's own. MongoDB
    never reports it; FerretDB's SQLite backend does whenever two writes to one database meet, which a worker
    starting hundreds of mailboxes makes common. A retried unordered insert may meet its own documents
    inserted before the refusal: duplicate-key errors, which every caller handles already."""

    def __init__(self, collection: AsyncCollection[Document], attempts: int = 10) -> None:
        self._collection = collection
        self._attempts = attempts

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if name not in _WRITES:
            return attr
        return self._retrying(attr)

    def _retrying(self, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            delay = 0.01
            for attempt in range(1, self._attempts + 1):
                try:
                    return await method(*args, **kwargs)
                except OperationFailure as exc:
                    if attempt == self._attempts or not storage_busy(exc):
                        raise
                await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311  # jitter, not secrets
                delay = min(delay * 2, 0.5)
            raise AssertionError("unreachable")

        return call


def _collection(db: AsyncDatabase[Document], name: str) -> AsyncCollection[Document]:
    return cast("AsyncCollection[Document]", _BusyRetrying(db[name]))


INDEXES: dict[str, list[IndexModel]] = {
    "mailboxes": [IndexModel([("partition", ASCENDING)], name="partition")],
    "leases": [IndexModel([("owner", ASCENDING)], name="owner")],
    "workers": [],
    "cursors": [IndexModel([("mailbox_id", ASCENDING)], name="mailbox")],
    "messages": [
        IndexModel([("dedupe_key", ASCENDING)], name="dedupe_key_unique", unique=True),
        IndexModel([("mailbox_id", ASCENDING), ("folder", ASCENDING)], name="mailbox_folder"),
    ],
    "raw_messages": [IndexModel([("mailbox_id", ASCENDING)], name="mailbox")],
}


_IDENTITY_PROJECTION = {"email": 1, "username": 1, "imap": 1, "account_reset": 1}


def account_identity(config: Mapping[str, Any]) -> tuple[str, str, str, int]:
    """The account a mailbox config syncs: (email, IMAP username, IMAP host, IMAP port), case-folded (domain
    names and, at every provider we know, logins are case-insensitive). A different identity is another
    account, whose folders the stored cursors and index do not describe; the password, TLS mode, SMTP server,
    nickname and sync settings are not part of it."""
    imap = config.get("imap") or {}
    return (
        str(config.get("email", "")).strip().casefold(),
        str(config.get("username", "")).strip().casefold(),
        str(imap.get("host", "")).strip().rstrip(".").casefold(),
        int(imap.get("port") or 0),
    )


def epoch_ms(at: datetime) -> int:
    """An event time as integer epoch milliseconds (stored so: no naive/aware datetime mix-ups in comparisons)."""
    return int(at.timestamp() * 1000)


class LeaseLost(Exception):
    """A fenced write was refused: another worker took the mailbox's lease (a newer epoch was issued), or the
    mailbox was removed. The holder of the older lease must stop that mailbox."""

    def __init__(self, mailbox_id: str, epoch: int) -> None:
        super().__init__(f"lease of {mailbox_id} lost (epoch {epoch} superseded)")
        self.mailbox_id = mailbox_id
        self.epoch = epoch


@dataclass(frozen=True)
class Lease:
    """A held mailbox lease: ``owner`` (worker id) and ``epoch`` (fencing token, see :class:`SyncStore`)."""

    mailbox_id: str
    owner: str
    epoch: int


@dataclass
class Cursor:
    """Per-folder sync position (RFC 3501 UIDVALIDITY/UIDNEXT, RFC 7162 HIGHESTMODSEQ).

    ``last_uid``: every UID up to it has been handled (published and acknowledged, quarantined, indexed
    already, or outside the initial window). ``high_water``: the highest ``last_uid`` ever committed under this
    UIDVALIDITY; it stays when a resync pulls ``last_uid`` back, so what was published is not published again. ``baseline_uidnext``: UIDNEXT when the folder was first seen (or
    re-baselined); messages below it are history, published only inside the window with ``initial_sync``.
    ``resets``: UIDVALIDITY changes in a row without a pass that found it unchanged; ``reset_at``: the last one.
    """

    mailbox_id: str
    folder: str
    uidvalidity: int
    uidnext: int
    last_uid: int
    baseline_uidnext: int
    window_start: datetime | None
    highestmodseq: int | None = None
    messages: int | None = None
    resets: int = 0
    high_water: int = 0
    reset_at: datetime | None = None

    def __post_init__(self) -> None:
        self.high_water = max(self.high_water, self.last_uid)

    @property
    def id(self) -> str:
        return f"{self.mailbox_id}:{self.folder}"

    def to_doc(self) -> Document:
        return {
            "_id": self.id,
            "mailbox_id": self.mailbox_id,
            "folder": self.folder,
            "uidvalidity": self.uidvalidity,
            "uidnext": self.uidnext,
            "last_uid": self.last_uid,
            "baseline_uidnext": self.baseline_uidnext,
            "window_start": self.window_start,
            "highestmodseq": self.highestmodseq,
            "messages": self.messages,
            "resets": self.resets,
            "reset_at": self.reset_at,
            "high_water": self.high_water,
            "updated_at": utc_now(),
        }

    @classmethod
    def from_doc(cls, doc: Document) -> Cursor:
        return cls(
            mailbox_id=doc["mailbox_id"],
            folder=doc["folder"],
            uidvalidity=int(doc["uidvalidity"]),
            uidnext=int(doc["uidnext"]),
            last_uid=int(doc["last_uid"]),
            baseline_uidnext=int(doc["baseline_uidnext"]),
            window_start=doc.get("window_start"),
            highestmodseq=doc.get("highestmodseq"),
            messages=doc.get("messages"),
            resets=int(doc.get("resets", 0)),
            high_water=int(doc.get("high_water", 0)),
            reset_at=doc.get("reset_at"),
        )


@dataclass
class IndexEntry:
    """One message about to be indexed (``messages`` collection)."""

    key: str
    mailbox_id: str
    folder: str
    uidvalidity: int
    uid: int
    dedupe_key: str
    event_id: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> Document:
        return {
            "_id": self.key,
            "mailbox_id": self.mailbox_id,
            "folder": self.folder,
            "uidvalidity": self.uidvalidity,
            "uid": self.uid,
            "dedupe_key": self.dedupe_key,
            "event_id": self.event_id,
            "reason": self.reason,
            "indexed_at": utc_now(),
            **self.extra,
        }


class SyncStore:
    """Typed access to the sync database. Methods raise ``pymongo.errors.PyMongoError`` when Mongo fails (a
    write the server refused as momentarily busy is tried again first, see :func:`storage_busy`)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.mailboxes = _collection(db, "mailboxes")
        self.leases = _collection(db, "leases")
        self.workers = _collection(db, "workers")
        self.cursors = _collection(db, "cursors")
        self.messages = _collection(db, "messages")
        self.raw = _collection(db, "raw_messages")
        self.removed = _collection(db, "removed")

    async def ensure_indexes(self) -> None:
        """Create the collections' indexes that do not exist yet (a second worker may start on the same
        database; :func:`laifaxin_shared.mongo.ensure_indexes` sends only the missing ones)."""
        await ensure_indexes(self.db, INDEXES)

    # ------------------------------------------------------------------------------------------ registry

    async def upsert_mailboxes(self, events: Sequence[tuple[MailboxVerified, int]]) -> list[Document]:
        """Store the full config of each ``mailbox.verified`` (credential sealed), keeping the reported state,
        for many ``(event, partition)`` pairs (a later event of the same mailbox wins); returns the written
        documents (the fields written plus ``_id``, and ``account_reset`` when pending: what a mailbox loop
        needs, without reading it back), one per mailbox, in order of their last event. A verification older
        than the mailbox's removal is ignored.

        Switching accounts: binding keeps the mailbox id when the user edits the address, login or servers
        (product docs, "Edit Mailbox Settings": "want to switch accounts"; "Server config change -> System
        reconnects / syncs with new config"). When an event changes the account identity of a stored mailbox
        (:func:`account_identity`; a new password, security mode or settings do not), ``account_reset`` is set
        to the event id in the same write, so a crash before the reset cannot lose it; the mailbox's loop then
        drops the previous account's state under its lease (:meth:`reset_account`) before connecting.

        Per 500 mailboxes: one read of which exist (with their account identity), one unordered insert of the
        new ones (FerretDB applies an insert of hundreds of documents at the cost of two or three upserts),
        and an update per existing one.
        """
        latest: dict[str, Document] = {}
        for event, partition in events:
            doc = event.model_dump(
                mode="json", by_alias=True, exclude={"event_id", "occurred_at", "schema_version"}
            )
            doc.update(
                {
                    "partition": partition,
                    "verified_event_id": str(event.event_id),
                    "verified_at_ms": epoch_ms(event.occurred_at),
                    "updated_at": utc_now(),
                }
            )
            doc.pop("mailbox_id")
            latest.pop(event.mailbox_id, None)
            latest[event.mailbox_id] = doc
        for start in range(
            0, len(latest), _CHUNK
        ):  # a verification older than the mailbox's removal: ignored
            ids = list(latest)[start : start + _CHUNK]
            async for tomb in self.removed.find({"_id": {"$in": ids}}):
                if latest[tomb["_id"]]["verified_at_ms"] <= tomb["removed_at_ms"]:
                    log.info("mailbox.verified older than its removal ignored", mailbox_id=tomb["_id"])
                    del latest[tomb["_id"]]
        items = list(latest.items())
        pending: dict[str, str] = {}
        for start in range(0, len(items), _CHUNK):
            chunk = dict(items[start : start + _CHUNK])
            stored = {
                d["_id"]: d
                async for d in self.mailboxes.find({"_id": {"$in": list(chunk)}}, _IDENTITY_PROJECTION)
            }
            existing = set(stored)
            for mid, old in stored.items():
                if account_identity(old) != account_identity(chunk[mid]):
                    chunk[mid]["account_reset"] = chunk[mid]["verified_event_id"]
                    log.info("mailbox.verified switched the account: sync state to reset", mailbox_id=mid)
                elif old.get("account_reset"):
                    pending[mid] = old["account_reset"]  # an earlier switch not reset yet: still to do
            new = [mid for mid in chunk if mid not in existing]
            if new:
                try:
                    await self.mailboxes.insert_many(
                        [{"_id": mid, **chunk[mid]} for mid in new], ordered=False
                    )
                except BulkWriteError as exc:
                    errors = exc.details.get("writeErrors", [])
                    if any(e.get("code") != 11000 for e in errors):
                        raise
                    existing.update(new[int(e["index"])] for e in errors)  # inserted meanwhile: update
            for mid in existing:
                await self.mailboxes.update_one({"_id": mid}, {"$set": chunk[mid]}, upsert=True)
        return [
            {"_id": mid, **doc, **({"account_reset": pending[mid]} if mid in pending else {})}
            for mid, doc in items
        ]

    async def update_sync_settings(self, mailbox_id: str, sync: dict[str, Any], nickname: str) -> bool:
        """Apply ``mailbox.updated``; False when the mailbox is unknown (not verified yet, or removed)."""
        result = await self.mailboxes.update_one(
            {"_id": mailbox_id}, {"$set": {"sync": sync, "nickname": nickname, "updated_at": utc_now()}}
        )
        return result.matched_count == 1

    async def binding_newer_than(self, mailbox_id: str, occurred_at: datetime) -> bool:
        """True when the stored config comes from a ``mailbox.verified`` published after ``occurred_at`` (a
        removal that old is ignored: the mailbox was bound again)."""
        doc = await self.mailboxes.find_one({"_id": mailbox_id}, {"verified_at_ms": 1})
        return doc is not None and int(doc.get("verified_at_ms") or 0) > epoch_ms(occurred_at)

    async def remove_mailbox(self, mailbox_id: str, occurred_at: datetime | None = None) -> None:
        """Drop every trace of a mailbox (``mailbox.removed``): config, lease, cursors, index, raw bytes; with
        ``occurred_at`` (the removal's event time), keep a tombstone so an older ``mailbox.verified`` read later
        does not bring it back."""
        if occurred_at is not None:
            at = epoch_ms(occurred_at)
            tomb = await self.removed.find_one({"_id": mailbox_id})
            if tomb is None and not await insert_unique(
                self.removed, {"_id": mailbox_id, "removed_at_ms": at}
            ):
                tomb = await self.removed.find_one(
                    {"_id": mailbox_id}
                )  # inserted meanwhile by another worker
            if tomb is not None and int(tomb["removed_at_ms"]) < at:
                await self.removed.update_one({"_id": mailbox_id}, {"$set": {"removed_at_ms": at}})
        await self.mailboxes.delete_one({"_id": mailbox_id})
        await self.cursors.delete_many({"mailbox_id": mailbox_id})
        await self.messages.delete_many({"mailbox_id": mailbox_id})
        await self.raw.delete_many({"mailbox_id": mailbox_id})
        await self.leases.delete_one({"_id": mailbox_id})

    async def reset_account(self, lease: Lease) -> dict[str, int] | None:
        """Drop the sync state of the mailbox's previous account, if a reset is pending (``account_reset``, set
        by :meth:`upsert_mailboxes`); returns how many cursors were voided and index entries and raw messages
        deleted, or None when none was pending (done already, or the mailbox is gone).

        Cursors: the old account's UIDVALIDITY, UIDs and baseline mean nothing on the new one (another
        UIDVALIDITY would look like a ``uidvalidity_reset`` and skip the initial window; the same one would
        skip the new account's mail below the old ``last_uid``). They are marked ``void`` rather than deleted,
        under the same condition as a cursor write (``lease_epoch`` not newer than ``lease``'s) and raised to
        ``lease``'s epoch: a worker holding an older lease still meets the fence, even with the insert of a
        folder's first cursor (:meth:`save_cursor`).

        Index and raw messages: deleted, as :meth:`remove_mailbox` does. Index locations and ``dedupe_key``
        are per mailbox id, not per account: kept, the old account's entries would suppress the new account's
        copy of a message with the same Message-ID (mail sent to both addresses), and one at the same
        folder/UIDVALIDITY/UID would be taken for a retry or a reused UID. The old account's mail was published
        already, and no other service reads these collections (ARCHITECTURE.md "Storage"); its raw bytes,
        reachable only through events of an account the user unbound, go with it.

        The mark is cleared last, only if it is still the one read (a later switch keeps its own), so a failure
        part-way leaves it for the next attempt; every step can be repeated before the new account is synced.

        Raises:
            LeaseLost: ``lease`` is no longer the mailbox's lease, or a newer one fenced its cursors.
        """
        mailbox_id = lease.mailbox_id
        doc = await self.mailboxes.find_one({"_id": mailbox_id}, {"account_reset": 1})
        token = doc.get("account_reset") if doc is not None else None
        if not token:
            return None
        if not await self.holds_lease(lease):
            raise LeaseLost(mailbox_id, lease.epoch)
        voided = await self.cursors.update_many(
            {"mailbox_id": mailbox_id, "lease_epoch": {"$not": {"$gt": lease.epoch}}},
            {"$set": {"void": True, "lease_epoch": lease.epoch, "updated_at": utc_now()}},
        )
        if await self.cursors.find_one(
            {"mailbox_id": mailbox_id, "lease_epoch": {"$gt": lease.epoch}}, {"_id": 1}
        ):
            raise LeaseLost(mailbox_id, lease.epoch)
        messages = await self.messages.delete_many({"mailbox_id": mailbox_id})
        raw = await self.raw.delete_many({"mailbox_id": mailbox_id})
        await self.mailboxes.update_one(
            {"_id": mailbox_id, "account_reset": token}, {"$unset": {"account_reset": ""}}
        )
        return {
            "cursors": voided.modified_count,
            "messages": messages.deleted_count,
            "raw_messages": raw.deleted_count,
        }

    async def mailboxes_in(self, partitions: Iterable[int]) -> list[Document]:
        """Configs of the mailboxes whose partition is in ``partitions``."""
        return [d async for d in self.mailboxes.find({"partition": {"$in": sorted(partitions)}})]

    async def get_mailbox(self, mailbox_id: str) -> Document | None:
        """One mailbox config, or None."""
        return await self.mailboxes.find_one({"_id": mailbox_id})

    async def set_state(self, mailbox_id: str, state: Document) -> None:
        """Remember the last state reported on ``mailbox.sync_status`` (so restarts report transitions only)."""
        await self.mailboxes.update_one({"_id": mailbox_id}, {"$set": {"status": state}})

    # ------------------------------------------------------------------------------------------ leases

    async def heartbeat(self, owner: str, ttl: float) -> None:
        """Keep ``owner``'s leases valid for ``ttl`` more seconds (one write)."""
        await self.workers.update_one(
            {"_id": owner}, {"$set": {"expires_at": utc_now() + timedelta(seconds=ttl)}}, upsert=True
        )

    async def retire(self, owner: str) -> None:
        """Drop ``owner``'s heartbeat (graceful stop): whatever lease it still holds is free at once."""
        await self.workers.delete_one({"_id": owner})

    async def claim_lease(self, mailbox_id: str, owner: str) -> Lease | None:
        """Take the mailbox's lease if it is free (never held, or released), ours, or held by a worker whose
        heartbeat expired. Returns the lease with its epoch, or None while another live worker holds it.

        A change of hands is a compare-and-set on (owner, epoch) that raises the epoch by one; the mailbox's
        cursors are then fenced at the new epoch (:meth:`fence_cursors`) before the lease is returned, so the
        previous holder's cursor writes fail from then on. The first lease is inserted (FerretDB reports
        duplicates only on insert).
        """
        lease = await self.leases.find_one({"_id": mailbox_id})
        if lease is None:
            if await insert_unique(self.leases, {"_id": mailbox_id, "owner": owner, "epoch": 1}):
                await self.fence_cursors(mailbox_id, 1)
                return Lease(mailbox_id, owner, 1)
            lease = await self.leases.find_one({"_id": mailbox_id})
            if lease is None:  # inserted and released meanwhile: try again at the next claim
                return None
        epoch = lease.get("epoch")
        if lease["owner"] == owner and epoch is not None:
            return Lease(mailbox_id, owner, int(epoch))
        if lease["owner"] is not None and lease["owner"] != owner:
            holder = await self.workers.find_one({"_id": lease["owner"]})
            if holder is not None and holder["expires_at"] > utc_now():
                return None
        new_epoch = int(epoch or 0) + 1
        result = await self.leases.update_one(
            {"_id": mailbox_id, "owner": lease["owner"], "epoch": epoch},
            {"$set": {"owner": owner, "epoch": new_epoch}},
        )
        if result.matched_count != 1:
            return None
        await self.fence_cursors(mailbox_id, new_epoch)
        return Lease(mailbox_id, owner, new_epoch)

    async def claim_leases(self, mailbox_ids: Iterable[str], owner: str) -> dict[str, Lease]:
        """:meth:`claim_lease` for many mailboxes with a handful of queries instead of several per mailbox (a
        worker taking over partitions starts hundreds of mailboxes). Returns the leases obtained by mailbox id;
        a mailbox missing from the result is held by another live worker (or was claimed by one meanwhile):
        its loop waits for it with :meth:`claim_lease`.

        Per 500 ids: one read of the leases, one unordered insert of the missing ones (epoch 1), one read of
        the holders' heartbeats; then, per (previous owner, epoch) group, one compare-and-set ``update_many``
        raising the epoch by one, one read of what it won and one cursor fence: the same guarantees as
        :meth:`claim_lease` (the previous holder's cursor writes fail from the moment the lease is returned).
        """
        ids = list(dict.fromkeys(mailbox_ids))
        leases: dict[str, Lease] = {}
        for start in range(0, len(ids), _CHUNK):
            leases.update(await self._claim_chunk(ids[start : start + _CHUNK], owner))
        return leases

    async def _claim_chunk(self, ids: list[str], owner: str) -> dict[str, Lease]:
        leases: dict[str, Lease] = {}
        found = {d["_id"]: d async for d in self.leases.find({"_id": {"$in": ids}})}
        missing = [mid for mid in ids if mid not in found]
        if missing:
            refused: set[int] = set()
            try:
                await self.leases.insert_many(
                    [{"_id": mid, "owner": owner, "epoch": 1} for mid in missing], ordered=False
                )
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                refused = {int(e["index"]) for e in errors}  # claimed by another worker meanwhile
            inserted = [mid for i, mid in enumerate(missing) if i not in refused]
            await self._fence_many(inserted, 1)
            leases.update({mid: Lease(mid, owner, 1) for mid in inserted})
        holders = {d["owner"] for d in found.values() if d["owner"] is not None and d["owner"] != owner}
        now = utc_now()
        live = {
            d["_id"]
            async for d in self.workers.find({"_id": {"$in": sorted(holders)}})
            if d["expires_at"] > now
        }
        groups: dict[tuple[str | None, int | None], list[str]] = {}
        for mid, doc in found.items():
            epoch = doc.get("epoch")
            if doc["owner"] == owner and epoch is not None:
                leases[mid] = Lease(mid, owner, int(epoch))
            elif doc["owner"] is None or doc["owner"] == owner or doc["owner"] not in live:
                groups.setdefault((doc["owner"], epoch), []).append(mid)
        for (previous, epoch), group in groups.items():
            new_epoch = int(epoch or 0) + 1
            await self.leases.update_many(
                {"_id": {"$in": group}, "owner": previous, "epoch": epoch},
                {"$set": {"owner": owner, "epoch": new_epoch}},
            )
            won = [
                d["_id"]
                async for d in self.leases.find(
                    {"_id": {"$in": group}, "owner": owner, "epoch": new_epoch}, {"_id": 1}
                )
            ]
            await self._fence_many(won, new_epoch)
            leases.update({mid: Lease(mid, owner, new_epoch) for mid in won})
        return leases

    async def _fence_many(self, mailbox_ids: list[str], epoch: int) -> None:
        if mailbox_ids:
            await self.cursors.update_many(
                {"mailbox_id": {"$in": mailbox_ids}, "lease_epoch": {"$not": {"$gte": epoch}}},
                {"$set": {"lease_epoch": epoch}},
            )

    async def fence_cursors(self, mailbox_id: str, epoch: int) -> None:
        """Raise the ``lease_epoch`` of the mailbox's cursors to ``epoch``: writes under an older lease fail."""
        await self.cursors.update_many(
            {"mailbox_id": mailbox_id, "lease_epoch": {"$not": {"$gte": epoch}}},
            {"$set": {"lease_epoch": epoch}},
        )

    async def holds_lease(self, lease: Lease) -> bool:
        """True while ``lease`` is still the mailbox's current lease (same owner and epoch)."""
        doc = await self.leases.find_one(
            {"_id": lease.mailbox_id, "owner": lease.owner, "epoch": lease.epoch}, {"_id": 1}
        )
        return doc is not None

    async def held_leases(self, owner: str) -> set[str]:
        """The mailbox ids whose lease ``owner`` holds."""
        return {d["_id"] async for d in self.leases.find({"owner": owner}, {"_id": 1})}

    async def release_lease(self, lease: Lease) -> None:
        """Give the lease up (only if still ours). The document stays, with its epoch, for the next holder."""
        await self.leases.update_one(
            {"_id": lease.mailbox_id, "owner": lease.owner, "epoch": lease.epoch}, {"$set": {"owner": None}}
        )

    # ------------------------------------------------------------------------------------------ cursors

    async def load_cursor(self, mailbox_id: str, folder: str) -> Cursor | None:
        """The folder's cursor, or None before its first sync."""
        doc = await self.cursors.find_one({"_id": f"{mailbox_id}:{folder}"})
        return Cursor.from_doc(doc) if doc and not doc.get("void") else None

    async def load_cursors(self, mailbox_ids: Iterable[str]) -> dict[str, list[Cursor]]:
        """The cursors of many mailboxes (one query per 500), by mailbox id; a mailbox without any is absent
        (``void`` cursors are none)."""
        ids = sorted(set(mailbox_ids))
        found: dict[str, list[Cursor]] = {}
        for start in range(0, len(ids), _CHUNK):
            async for doc in self.cursors.find({"mailbox_id": {"$in": ids[start : start + _CHUNK]}}):
                if not doc.get("void"):
                    found.setdefault(doc["mailbox_id"], []).append(Cursor.from_doc(doc))
        return found

    async def save_cursor(self, cursor: Cursor, lease: Lease, *, create: bool = False) -> None:
        """Write the cursor (whole document) under ``lease``: a conditional replace that matches only while the
        stored ``lease_epoch`` is not newer than ``lease.epoch``. ``create``: the folder has no cursor yet as
        far as the caller knows (its first one): it is inserted (one write), and replaced as above if one
        exists after all; otherwise a missing cursor means the mailbox was removed.

        Raises:
            LeaseLost: a newer lease fenced the cursor (or it is gone and ``create`` is False).
        """
        doc = cursor.to_doc()
        doc["lease_epoch"] = lease.epoch
        if create and await insert_unique(self.cursors, doc):
            return
        result = await self.cursors.replace_one(
            {"_id": cursor.id, "lease_epoch": {"$not": {"$gt": lease.epoch}}}, doc
        )
        if result.matched_count == 1:
            return
        raise LeaseLost(cursor.mailbox_id, lease.epoch)

    # ------------------------------------------------------------------------------------------ messages

    async def store_raw(self, docs: Sequence[Document]) -> None:
        """Insert raw messages; ones already stored (a retried batch) are kept as they are."""
        if not docs:
            return
        try:
            await self.raw.insert_many(list(docs), ordered=False)
        except BulkWriteError as exc:
            others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
            if others:
                raise

    async def index_many(self, entries: Sequence[IndexEntry]) -> list[Document | None]:
        """Claim the index slots of a batch of messages (one unordered insert); results in ``entries`` order.

        Each result is None when the entry is new (inserted as given), else the document that already holds
        it: the same ``_id`` (a retried batch: republish under its ``event_id``), or another location with the
        same ``dedupe_key`` (a duplicate across folders, a re-delivered copy, or an earlier entry of this
        batch: skip). The refused entries are looked up together: one query by ``_id``, one by ``dedupe_key``.

        Raises:
            pymongo.errors.BulkWriteError: an error other than a duplicate key, or a holder that vanished
                meanwhile (mailbox removed): the batch is retried.
        """
        if not entries:
            return []
        results: list[Document | None] = [None] * len(entries)
        try:
            await self.messages.insert_many([e.to_doc() for e in entries], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            refused = [int(err["index"]) for err in errors]
            by_id = await self._find_in("_id", {entries[i].key for i in refused})
            rest = {entries[i].dedupe_key for i in refused if entries[i].key not in by_id}
            by_dedupe = await self._find_in("dedupe_key", rest) if rest else {}
            for i in refused:
                existing = by_id.get(entries[i].key) or by_dedupe.get(entries[i].dedupe_key)
                if existing is None:
                    raise
                results[i] = existing
        return results

    async def _find_in(self, name: str, values: Iterable[str]) -> Mapping[str, Document]:
        return {d[name]: d async for d in self.messages.find({name: {"$in": sorted(values)}})}

    async def mark_quarantined(self, key: str, reason: str, detail: str) -> None:
        """Record that the message indexed at ``key`` is quarantined after all (its ``mail.received`` record
        was refused by the broker as too large): ``reason``/``detail`` set, ``event_id`` cleared."""
        await self.messages.update_one(
            {"_id": key}, {"$set": {"reason": reason, "detail": detail, "event_id": None}}
        )

    async def reindex(self, entry: IndexEntry, raw_docs: Sequence[Document]) -> bool:
        """Give a location to another message: its UID was reused (UIDNEXT went backwards without a UIDVALIDITY
        change, a server fault). False when the new message is already indexed elsewhere (a duplicate).

        Checks the ``dedupe_key`` first, then deletes and re-inserts (FerretDB would not report a unique
        violation on a replace); the raw bytes at the location are replaced too (``raw_docs``: the head document
        first, then its continuation chunks).
        """
        if await self.messages.find_one({"dedupe_key": entry.dedupe_key}) is not None:
            return False
        await self.messages.delete_one({"_id": entry.key})
        if not await insert_unique(self.messages, entry.to_doc()):
            return False
        head, *rest = raw_docs
        await self.raw.replace_one({"_id": head["_id"]}, head, upsert=True)
        await self.raw.delete_many({"part_of": head["_id"]})
        if rest:
            await self.store_raw(rest)
        return True
