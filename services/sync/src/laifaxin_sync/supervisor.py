"""Shard ownership: which mailbox loops run in this worker, following the ``sync`` group's partitions.

The ``sync`` consumer group assigns partitions of the co-partitioned ``mailbox.*`` topics (RangeAssignor gives
one worker the same partition numbers of all three). A mailbox lives on partition
``murmur2(mailbox_id) % MAILBOX_PARTITIONS`` (Kafka's default partitioner, :func:`partition_for`), so a worker
runs exactly the mailboxes of its partitions: on assignment it loads them from ``mailboxes`` and starts their
loops; on revocation it stops them (the batch in flight finishes or is abandoned, cursors never pass what was
acknowledged) before the partitions are handed over. A per-mailbox lease in Mongo fences the overlap a
rebalance or a dead worker could otherwise cause; the supervisor renews its leases every third of their TTL
and stops a loop whose lease another worker took.

Leases are renewed through one heartbeat document per worker (``workers``), not per mailbox.

Starting many mailboxes (an assignment, a worker restart, a burst of ``mailbox.verified``) costs a fixed number
of queries, not several per mailbox: their configs come in one query per partition set, their leases are
claimed together (:meth:`SyncStore.claim_leases`), and the loops then connect at most
``SYNC_START_CONCURRENCY`` at a time (:mod:`laifaxin_sync.startup`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from pymongo.errors import PyMongoError

from laifaxin_shared.events import MailboxRemoved, MailboxUpdated, MailboxVerified
from laifaxin_shared.logging import get_logger
from laifaxin_shared.topics import MAILBOX_PARTITIONS
from laifaxin_sync.mailbox_loop import MailboxLoop, WorkerContext
from laifaxin_sync.store import Cursor, Lease

log = get_logger(__name__)

_PARTITIONER = DefaultPartitioner()


def partition_for(mailbox_id: str, partitions: int = MAILBOX_PARTITIONS) -> int:
    """The partition Kafka's default producer partitioner puts key ``mailbox_id`` on (murmur2, positive, mod n)."""
    all_partitions = list(range(partitions))
    return int(_PARTITIONER(mailbox_id.encode(), all_partitions, all_partitions))


class Supervisor:
    """Runs the mailbox loops of the owned partitions; applies registry events; renews leases; beats."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.partitions: set[int] = set()
        self.loops: dict[str, MailboxLoop] = {}
        self.last_beat = time.monotonic()
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------------------------------ shards

    async def assign(self, partitions: Iterable[int]) -> None:
        """Take ``partitions`` on: start the enabled mailboxes stored for them (one query for their configs, a
        few for their leases; the loops then connect ``SYNC_START_CONCURRENCY`` at a time).

        Raises:
            pymongo.errors.PyMongoError: the configs could not be read (the partitions stay unowned).
        """
        new = set(partitions) - self.partitions
        started = 0
        async with self._lock:
            if new:
                docs = await self._configs(new)
                self.partitions |= new
                started = await self._start_many(docs)
            self._gauges()
        log.info("partitions assigned", partitions=sorted(new), started=started, mailboxes=len(self.loops))

    async def _configs(self, partitions: set[int], attempts: int = 5) -> list[dict[str, Any]]:
        for attempt in range(1, attempts + 1):
            try:
                return await self.ctx.store.mailboxes_in(partitions)
            except PyMongoError as exc:
                if attempt == attempts:
                    raise
                log.warning("mailbox configs not read; retrying", attempt=attempt, error=type(exc).__name__)
                await asyncio.sleep(float(attempt))
        raise AssertionError("unreachable")

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Give ``partitions`` up: stop their loops (concurrently, each within the stop grace)."""
        gone = set(partitions)
        async with self._lock:
            self.partitions -= gone
            ids = [mid for mid, loop in self.loops.items() if loop.partition in gone]
            await self._stop_many(ids)
            self._gauges()
        log.info("partitions revoked", partitions=sorted(gone), stopped=len(ids), mailboxes=len(self.loops))

    async def stop_all(self) -> None:
        """Stop every loop (shutdown)."""
        async with self._lock:
            await self._stop_many(list(self.loops))
            self.partitions.clear()
            self._gauges()

    async def _stop_many(self, ids: list[str]) -> None:
        loops = [self.loops.pop(mid) for mid in ids if mid in self.loops]
        await asyncio.gather(*(lp.stop(self.ctx.settings.stop_grace_seconds) for lp in loops))

    def _startable(self, doc: dict[str, Any]) -> bool:
        return bool(doc.get("sync", {}).get("enabled", True)) and doc["_id"] not in self.loops

    def _start(
        self, doc: dict[str, Any], lease: Lease | None = None, cursors: list[Cursor] | None = None
    ) -> None:
        if not self._startable(doc):
            return
        loop = MailboxLoop(doc, self.ctx, lease, cursors)
        self.loops[doc["_id"]] = loop
        loop.start()

    async def _start_many(self, docs: list[dict[str, Any]]) -> int:
        """Start the loops of ``docs`` (enabled, not running) with their leases claimed and then their cursors
        read in bulk; a mailbox whose lease another live worker holds starts without one and waits for it.
        Returns the loops started."""
        docs = [d for d in docs if self._startable(d)]
        if not docs:
            return 0
        store = self.ctx.store
        leases: dict[str, Lease] = {}
        cursors: dict[str, list[Cursor]] | None = None
        try:
            leases = await store.claim_leases((d["_id"] for d in docs), self.ctx.settings.worker_id)
            cursors = await store.load_cursors(leases)  # after the claim: fenced at our epochs
        except PyMongoError as exc:  # each loop then claims its own lease and reads its own cursors
            log.warning("bulk lease claim failed; loops claim one by one", error=type(exc).__name__)
        for doc in docs:
            mid = doc["_id"]
            self._start(doc, leases.get(mid), None if cursors is None else cursors.get(mid, []))
        if len(docs) > len(leases):
            log.info("leases held elsewhere; those mailboxes wait", waiting=len(docs) - len(leases))
        return len(docs)

    def _gauges(self) -> None:
        self.ctx.metrics.mailboxes_owned.set(len(self.loops))
        self.ctx.metrics.partitions_owned.set(len(self.partitions))

    # ------------------------------------------------------------------------------------------ registry

    async def on_verified(self, event: MailboxVerified, partition: int) -> None:
        """Store the config; (re)start the loop with it (new credentials end an ``auth_failed`` wait)."""
        await self.on_verified_many([(event, partition)])

    async def on_verified_many(self, events: list[tuple[MailboxVerified, int]]) -> None:
        """:meth:`on_verified` for a batch of ``(event, partition)`` (a later event of a mailbox wins): one bulk
        write of the configs, the running loops of those mailboxes stopped together, the new ones started with
        their leases claimed in bulk.

        Raises:
            pymongo.errors.PyMongoError: the configs were not stored (nothing was stopped; apply again).
        """
        docs = await self.ctx.store.upsert_mailboxes(events)
        async with self._lock:
            renewed = [d for d in docs if self._token_renewal(d)]
            for doc in renewed:
                self.loops[doc["_id"]].renew_credential(doc)
            docs = [d for d in docs if d not in renewed]
            await self._stop_many([d["_id"] for d in docs])
            mine = [d for d in docs if d["partition"] in self.partitions]
            for doc in mine:
                doc["status"] = None  # a new configuration: report its first state afresh
            await self._start_many(mine)
            self._gauges()

    _TOKEN_FIELDS = frozenset(
        {"credential", "access_token_expires_at", "verified_event_id", "verified_at_ms", "updated_at"}
    )

    def _token_renewal(self, doc: dict[str, Any]) -> bool:
        """Whether ``doc`` (a stored ``mailbox.verified``) only brings a refreshed OAuth access token for a
        running loop: nothing else of the configuration changed (then the loop keeps its session)."""
        loop = self.loops.get(doc["_id"])
        if loop is None or doc.get("auth") != "oauth2" or doc.get("account_reset"):
            return False
        return all(loop.config.get(k) == v for k, v in doc.items() if k not in self._TOKEN_FIELDS)

    async def on_updated(self, event: MailboxUpdated, partition: int) -> None:
        """Apply new sync settings: start, stop, or change the interval of a running loop."""
        sync = event.sync.model_dump(mode="json")
        if not await self.ctx.store.update_sync_settings(event.mailbox_id, sync, event.nickname):
            log.info("mailbox.updated for an unknown mailbox ignored", mailbox_id=event.mailbox_id)
            return
        async with self._lock:
            loop = self.loops.get(event.mailbox_id)
            if not event.sync.enabled:
                await self._stop_many([event.mailbox_id])
                if loop is not None:
                    await loop.report("stopped")
            elif loop is not None:
                loop.update_settings(sync)
            elif partition in self.partitions:
                doc = await self.ctx.store.get_mailbox(event.mailbox_id)
                if doc is not None:
                    self._start(doc)
            self._gauges()

    async def on_removed(self, event: MailboxRemoved) -> None:
        """Stop the loop and drop every trace of the mailbox, unless it was bound again after this removal
        (its stored ``mailbox.verified`` is newer: records of two topics may be read in either order)."""
        if await self.ctx.store.binding_newer_than(event.mailbox_id, event.occurred_at):
            log.info("mailbox.removed older than the mailbox's binding ignored", mailbox_id=event.mailbox_id)
            return
        async with self._lock:
            await self._stop_many([event.mailbox_id])
            self._gauges()
        await self.ctx.store.remove_mailbox(event.mailbox_id, event.occurred_at)

    # ------------------------------------------------------------------------------------------ heartbeat

    async def tick(self) -> None:
        """One supervisor beat: renew leases, stop loops whose lease was lost, restart loops that ended."""
        s = self.ctx.settings
        try:
            await self.ctx.store.heartbeat(s.worker_id, s.lease_ttl_seconds)
            read_at = time.monotonic()
            held = await self.ctx.store.held_leases(s.worker_id)
        except PyMongoError as exc:
            log.warning("lease renewal failed", error=type(exc).__name__)
            return
        async with self._lock:
            for mid, loop in list(self.loops.items()):
                if loop.has_lease and loop.lease_claimed_at < read_at and mid not in held:
                    log.warning("lease lost; stopping mailbox", mailbox_id=mid)
                    loop.lose_lease()
                if loop.done:
                    # A loop ends by itself only on a lost lease or a crash: start it again (it waits for the lease).
                    if (crashed := loop.crash()) is not None:
                        log.error("mailbox loop crashed; restarting", mailbox_id=mid, error=repr(crashed))
                    self.loops.pop(mid)
                    doc = await self.ctx.store.get_mailbox(mid)
                    if doc is not None and loop.partition in self.partitions:
                        self._start(doc)
            self._gauges()
        self.last_beat = time.monotonic()
        self.ctx.metrics.heartbeat.set(time.time())

    async def run(self) -> None:
        """Beat every third of the lease TTL (at most every 5 s) until cancelled."""
        period = min(5.0, self.ctx.settings.lease_ttl_seconds / 3)
        while True:
            await self.tick()
            await asyncio.sleep(period)
