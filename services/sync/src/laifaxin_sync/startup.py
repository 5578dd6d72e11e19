"""Bounded, observable mailbox starts: at most ``SYNC_START_CONCURRENCY`` mailboxes connect at once.

A worker that is assigned partitions (or restarts) starts hundreds of mailbox loops together. Each one's start
is a TLS handshake, LOGIN, LIST, EXAMINE and a first pass (cursor reads and writes, a status event): done all
at once they swamp the provider (connection-rate limits, IP bans after bursts of logins), our store and the
event loop itself, and every mailbox ends up waiting for all the others. :class:`StartGate` hands out
``concurrency`` slots: a loop takes one before it connects and gives it back when its first pass is done (it
then IDLEs or waits for its next poll) or when the attempt fails. Reconnects after a failure take a slot too,
so an outage of a provider is not followed by a burst of logins.

Progress: :meth:`StartGate.expect` counts a loop as starting, :meth:`StartGate.done` as started (first pass done
or first attempt failed: either way it no longer waits for a slot); the ``sync_mailboxes_starting`` gauge and
``sync_mailbox_starts_total`` counter follow them, and a log line reports every ``log_every`` starts and the
moment nothing is left to start.
"""

from __future__ import annotations

import asyncio
import time

from laifaxin_shared.logging import get_logger
from laifaxin_sync.metrics import SyncMetrics

log = get_logger(__name__)


class Slot:
    """One start slot; :meth:`release` is idempotent."""

    def __init__(self, gate: StartGate) -> None:
        self._gate: StartGate | None = gate

    def release(self) -> None:
        """Give the slot back (nothing if already given back)."""
        if self._gate is not None:
            self._gate._sem.release()
            self._gate = None


class StartGate:
    """Slots for the connect phase of mailbox loops, shared by every loop of a worker (one event loop).

    ``concurrency``: slots (>= 1); ``log_every``: starts between two progress log lines.
    """

    def __init__(self, concurrency: int, metrics: SyncMetrics, *, log_every: int = 100) -> None:
        self.concurrency = concurrency
        self.metrics = metrics
        self.log_every = max(1, log_every)
        self._sem = asyncio.Semaphore(concurrency)
        self._starting: set[str] = set()
        self._started = 0  # since nothing was left to start
        self._since: float | None = None

    @property
    def starting(self) -> int:
        """Loops counted as starting (their first attempt has not finished)."""
        return len(self._starting)

    async def acquire(self, stop: asyncio.Event) -> Slot | None:
        """Wait for a slot; None when ``stop`` is set first (the caller then ends without connecting)."""
        if stop.is_set():
            return None
        acquiring = asyncio.ensure_future(self._sem.acquire())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while waiting: give back a permit obtained meanwhile
            if acquiring.done() and not acquiring.cancelled():
                self._sem.release()
            raise
        finally:
            stopping.cancel()
            if not acquiring.done():
                acquiring.cancel()  # a waiter cancelled before it got the permit takes nothing
        if not acquiring.done() or acquiring.cancelled():
            return None
        slot = Slot(self)  # acquired: from here the permit is released exactly once
        if stop.is_set():
            slot.release()
            return None
        return slot

    def expect(self, mailbox_id: str) -> None:
        """Count ``mailbox_id`` as starting (its loop was created)."""
        if not self._starting:
            self._since = time.monotonic()
            self._started = 0
        self._starting.add(mailbox_id)
        self.metrics.mailboxes_starting.set(len(self._starting))

    def done(self, mailbox_id: str, *, started: bool = True) -> None:
        """``mailbox_id`` finished its first attempt (``started``) or stopped before (False); idempotent."""
        if mailbox_id not in self._starting:
            return
        self._starting.discard(mailbox_id)
        self.metrics.mailboxes_starting.set(len(self._starting))
        if not started:
            return
        self._started += 1
        self.metrics.mailbox_starts.inc()
        elapsed = round(time.monotonic() - (self._since or time.monotonic()), 1)
        if not self._starting:
            log.info("all mailboxes started", started=self._started, seconds=elapsed)
        elif self._started % self.log_every == 0:
            log.info(
                "mailboxes started", started=self._started, starting=len(self._starting), seconds=elapsed
            )
