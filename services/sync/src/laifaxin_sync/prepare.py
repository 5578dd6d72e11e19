"""Fetched bytes -> what the store and the publisher need: index identity, ``mail.received`` record or quarantine.

Parsing (:func:`laifaxin_shared.mime.parse_message`, about 0.25 ms for a short message) is the largest CPU cost
of a catch-up, so :class:`Preparer` runs it in a process pool when a batch is large enough to pay for the
hand-over (pickling ~2 KB in and out per message), and in the event loop for the one or two messages new mail
under IDLE brings. The pool process builds and serialises the event too: the loop receives record bytes ready
to send, never builds a pydantic model per message.

:func:`prepare_batch` is the pure function both paths run; it never raises for a message (an unparsable one
becomes a quarantine decision).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime

from laifaxin_shared.events import MailReceived
from laifaxin_shared.events.mail import FolderRole
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mime import QuarantineError, parse_message
from laifaxin_shared.wire import event_headers, serialize
from laifaxin_sync.keys import dedupe_key, message_key

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """The envelope shared by the messages of one fetched batch (one folder under one UIDVALIDITY)."""

    tenant_id: str
    user_id: str
    mailbox_id: str
    folder: str
    folder_role: FolderRole
    uidvalidity: int
    arrived_at: datetime


@dataclass(frozen=True, slots=True)
class ParseJob:
    """One fetched message: UID, ``BODY[]`` bytes, INTERNALDATE, and whether it is history (``initial_sync``)."""

    uid: int
    body: bytes
    internal_date: datetime | None
    initial: bool


@dataclass(slots=True)
class Prepared:
    """One message ready to index and publish.

    ``value``/``headers``: the serialised ``mail.received`` record (None when quarantined); ``reason``/
    ``detail``: why it is quarantined (a :data:`laifaxin_shared.mime.QuarantineReason`), else None/"".
    ``dedupe_key``: Message-ID (RFC 5322 3.6.4) or SHA-256 identity (:func:`laifaxin_sync.store.dedupe_key`).
    """

    uid: int
    key: str
    dedupe_key: str
    event_id: str | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    detail: str = ""
    initial_sync: bool = False
    internal_date: datetime | None = None


def prepare_batch(ctx: BatchContext, jobs: Sequence[ParseJob]) -> list[Prepared]:
    """Parse each message and build its event record (or its quarantine decision), in ``jobs`` order."""
    return [_prepare(ctx, job) for job in jobs]


def _prepare(ctx: BatchContext, job: ParseJob) -> Prepared:
    key = message_key(ctx.mailbox_id, ctx.folder, ctx.uidvalidity, job.uid)
    try:
        parsed = parse_message(job.body)
    except QuarantineError as exc:
        return Prepared(
            uid=job.uid,
            key=key,
            dedupe_key=dedupe_key(ctx.mailbox_id, "", hashlib.sha256(job.body).hexdigest()),
            event_id=None,
            value=None,
            reason=exc.reason,
            detail=exc.detail[:500],
            initial_sync=job.initial,
            internal_date=job.internal_date,
        )
    event = parsed.to_event(
        tenant_id=ctx.tenant_id,
        user_id=ctx.user_id,
        mailbox_id=ctx.mailbox_id,
        folder=ctx.folder,
        uidvalidity=ctx.uidvalidity,
        uid=job.uid,
        raw_ref=f"sync:raw_messages/{key}",
        folder_role=ctx.folder_role,
        initial_sync=job.initial,
        internal_date=job.internal_date,
        arrived_at=ctx.arrived_at,
    )
    return Prepared(
        uid=job.uid,
        key=key,
        dedupe_key=dedupe_key(ctx.mailbox_id, parsed.message_id, parsed.content_hash),
        event_id=str(event.event_id),
        value=serialize(event),
        headers=event_headers(event),
        initial_sync=job.initial,
        internal_date=job.internal_date,
    )


def with_event_id(prepared: Prepared, event_id: str) -> Prepared:
    """The same record under an earlier ``event_id`` (a retried batch republishes what it had claimed, so
    consumers that dedupe on ``event_id`` see one event)."""
    if prepared.value is None or prepared.event_id == event_id:
        return prepared
    event = MailReceived.model_validate_json(prepared.value).model_copy(
        update={"event_id": uuid.UUID(event_id)}
    )
    prepared.event_id = event_id
    prepared.value = serialize(event)
    prepared.headers = event_headers(event)
    return prepared


def _pool_process_init(parent_pid: int) -> None:
    """Initializer of a pool process: ignore SIGINT/SIGTERM, and exit once the worker that started it is gone.

    The parent handles SIGINT/SIGTERM and shuts the pool down; a Ctrl-C on the terminal must not make every
    pool process print a KeyboardInterrupt traceback. A parent killed with SIGKILL cannot shut the pool down,
    and a spawned process holds both ends of its queue pipes, so it would wait forever as an orphan: a daemon
    thread checks once a second that the parent is still ``parent_pid`` and ends the process otherwise.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def default_processes() -> int:
    """Pool processes when not configured: one fewer than the CPUs this process may use (the event loop keeps
    one), at most 4; 0 (parse in the loop) on a single CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus - 1))


class Preparer:
    """Runs :func:`prepare_batch` in ``processes`` pool processes (``spawn``: a forked copy of a running event
    loop and its sockets is unsafe), or inline when the pool is off or the batch is small.

    A batch goes inline when it has at most ``inline_max`` messages of at most ``inline_max_bytes`` in all.
    The pool is started by the first batch that needs it (or by :meth:`start`) and shut down after
    ``idle_seconds`` without work, so a worker whose mailboxes only IDLE keeps no parsing process (about 80 MB
    each) in memory; batches that come while it starts (under a second: each process imports the parser) wait
    for it, so the event loop keeps fetching meanwhile. A pool that fails to start or breaks (a process killed)
    is replaced, and the batch is parsed inline meanwhile.
    """

    def __init__(
        self,
        processes: int,
        *,
        inline_max: int = 4,
        inline_max_bytes: int = 256 * 1024,
        idle_seconds: float = 120.0,
    ) -> None:
        self.processes = processes
        self.inline_max = inline_max
        self.inline_max_bytes = inline_max_bytes
        self.idle_seconds = idle_seconds
        self.pool_starts = 0  # pools started so far (lazily, or to replace a broken one)
        self._pool: ProcessPoolExecutor | None = None
        self._warm: asyncio.Future[list[list[Prepared]]] | None = None
        self._busy = 0
        self._last_used = 0.0
        self._reaper: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        """True while pool processes exist (starting or ready)."""
        return self._pool is not None

    def _start_pool(self) -> None:
        loop = asyncio.get_running_loop()
        self._pool = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_pool_process_init,
            initargs=(os.getpid(),),
        )
        self.pool_starts += 1
        self._last_used = loop.time()
        # Every process imports the parser now, not in the middle of the first batch it gets.
        warm = asyncio.gather(
            *(loop.run_in_executor(self._pool, prepare_batch, _WARM_CTX, ()) for _ in range(self.processes))
        )
        warm.add_done_callback(_retrieve)
        self._warm = warm
        self._schedule_reap(loop)

    def _ready(self) -> bool:
        warm = self._warm
        return warm is not None and warm.done() and not warm.cancelled() and warm.exception() is None

    async def start(self) -> None:
        """Start the pool now and wait until every process has imported the parser (about a second).

        Raises:
            concurrent.futures.process.BrokenProcessPool: a process died while starting.
        """
        if self.processes <= 0:
            return
        if self._pool is None:
            self._start_pool()
        assert self._warm is not None
        await asyncio.shield(self._warm)

    def close(self) -> None:
        """Stop the pool processes (queued work is dropped; nothing depends on it after the loops stopped)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        if self._warm is not None:
            self._warm.cancel()
            self._warm = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _schedule_reap(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._reaper is None:
            self._reaper = loop.call_at(self._last_used + self.idle_seconds, self._reap, loop)

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        self._reaper = None
        if self._pool is None:
            return
        if self._busy or not (self._warm is not None and self._warm.done()):
            self._last_used = loop.time()  # look again one idle period later
        elif loop.time() - self._last_used >= self.idle_seconds:
            log.info("parse pool idle; stopping it", idle_seconds=self.idle_seconds)
            self.close()
            return
        self._schedule_reap(loop)

    async def prepare(self, ctx: BatchContext, jobs: Sequence[ParseJob]) -> list[Prepared]:
        """:func:`prepare_batch` of ``jobs``, in the pool or inline."""
        if not jobs:
            return []
        inline = len(jobs) <= self.inline_max and sum(len(j.body) for j in jobs) <= self.inline_max_bytes
        if self.processes <= 0 or inline:
            return prepare_batch(ctx, jobs)
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._start_pool()
        pool = self._pool
        self._busy += 1
        try:
            if not self._ready():
                # Wait for the processes to import the parser rather than parse in the event loop meanwhile:
                # the loop is what fetches, stores and publishes, and a large batch would hold it.
                if self._warm is not None:
                    await asyncio.wait([self._warm])  # never raises; cancelled when the pool is closed
                if self._pool is not pool or not self._ready():
                    if self._pool is pool:
                        log.warning("parse pool failed to start; replacing it")
                        self._replace(pool)
                    return prepare_batch(ctx, jobs)
            return await loop.run_in_executor(pool, prepare_batch, ctx, list(jobs))
        except BrokenProcessPool:
            log.warning("parse pool broken; replacing it")
            self._replace(pool)
            return prepare_batch(ctx, jobs)
        finally:
            self._busy -= 1
            self._last_used = loop.time()

    def _replace(self, pool: ProcessPoolExecutor | None) -> None:
        if self._pool is pool:
            self.close()
            self._start_pool()


def _retrieve(future: asyncio.Future[list[list[Prepared]]]) -> None:
    # A failed warm-up is handled at the next batch (the pool is replaced); do not log "never retrieved".
    if not future.cancelled():
        future.exception()


_WARM_CTX = BatchContext("", "", "", "", "inbox", 0, datetime(2000, 1, 1))  # never published
