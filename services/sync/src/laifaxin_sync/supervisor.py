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
        """Take ``partitions`` on: start the enabled mailboxes stored for them."""
        new = set(partitions) - self.partitions
        async with self._lock:
            self.partitions |= new
            if new:
                for doc in await self.ctx.store.mailboxes_in(new):
                    self._start(doc)
            self._gauges()
        log.info("partitions assigned", partitions=sorted(new), mailboxes=len(self.loops))

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

    def _start(self, doc: dict[str, Any]) -> None:
        if not doc.get("sync", {}).get("enabled", True) or doc["_id"] in self.loops:
            return
        loop = MailboxLoop(doc, self.ctx)
        self.loops[doc["_id"]] = loop
        loop.start()

    def _gauges(self) -> None:
        self.ctx.metrics.mailboxes_owned.set(len(self.loops))
        self.ctx.metrics.partitions_owned.set(len(self.partitions))

    # ------------------------------------------------------------------------------------------ registry

    async def on_verified(self, event: MailboxVerified, partition: int) -> None:
        """Store the config; (re)start the loop with it (new credentials end an ``auth_failed`` wait)."""
        doc = await self.ctx.store.upsert_mailbox(event, partition)
        async with self._lock:
            await self._stop_many([event.mailbox_id])
            if partition in self.partitions:
                doc["status"] = None  # a new configuration: report its first state afresh
                self._start(doc)
            self._gauges()

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
        """Stop the loop and drop every trace of the mailbox."""
        async with self._lock:
            await self._stop_many([event.mailbox_id])
            self._gauges()
        await self.ctx.store.remove_mailbox(event.mailbox_id)

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
