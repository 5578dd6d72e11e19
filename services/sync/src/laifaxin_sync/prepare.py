"""Fetched bytes -> what the store and the publisher need: index identity, ``mail.received`` record or quarantine.

Parsing (:func:`laifaxin_shared.mime.parse_message`, about 0.25 ms for a short message) is the largest CPU cost
of a catch-up, and the one a hostile message can inflate, so it never runs in the event loop: :class:`Preparer`
hands every batch, new mail under IDLE included, to one of its parsing processes, and each message gets a CPU
time budget there (:class:`ParseBudget`):

1. the structure limits (:class:`laifaxin_shared.mime.MimeLimits`) refuse hostile structure before parsing;
2. a CPU timer (``ITIMER_PROF``) interrupts a parse that used its budget (``cpu_seconds``, plus
   ``cpu_seconds_per_mb`` per MB of message: parsing is linear in the size once the limits hold, and a 25 MB
   attachment takes about 1-2 s on a busy 2-core machine): the message is quarantined with
   the reason ``parse_budget_exceeded`` and the process goes on with the next one;
3. the kernel ends a process whose parse is stuck inside one C call (``RLIMIT_CPU``, set per message to
   whole seconds 0.25 to 1.25 s beyond the CPU timer: ``SIGXCPU``); and the worker kills a process that
   does not answer within a wall-clock deadline. Either way the process is replaced, the message it was on (it
   records its position in shared memory) is quarantined with ``parse_budget_exceeded``, and the rest of the
   batch is parsed again.

So no message costs sync more than its budget + 1.25 s of CPU: with the defaults, 2 s for a message of up to
about 1 MB (nearly all mail) and 0.1 s more per MB above (at most 7 s for the largest accepted, 50 MB). The process builds and
serialises the event too: the loop receives record bytes ready to send, never builds a pydantic model per
message.

:func:`prepare_batch` is the pure function the processes run; it never raises for a message (an unparsable one
becomes a quarantine decision).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import resource
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from types import FrameType
from typing import Any

from laifaxin_shared.events import MailReceived
from laifaxin_shared.events.mail import FolderRole
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mime import MimeLimits, QuarantineError, QuarantineReason, parse_message
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


@dataclass(frozen=True, slots=True)
class ParseBudget:
    """What one message may cost: ``cpu_seconds`` of CPU time in the parsing process (> 0) plus
    ``cpu_seconds_per_mb`` per MB (10^6 bytes) of the message, and the structure ``limits`` checked before
    parsing."""

    cpu_seconds: float = 0.75
    cpu_seconds_per_mb: float = 0.1
    limits: MimeLimits = field(default_factory=MimeLimits)

    def seconds(self, size_bytes: int) -> float:
        """The CPU seconds a message of ``size_bytes`` may use."""
        return self.cpu_seconds + self.cpu_seconds_per_mb * size_bytes / 1e6


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


def prepare_batch(
    ctx: BatchContext,
    jobs: Sequence[ParseJob],
    budget: ParseBudget | None = None,
    progress: Synchronized[int] | None = None,
) -> list[Prepared]:
    """Parse each message and build its event record (or its quarantine decision), in ``jobs`` order.

    With ``budget`` (in a parsing process, on its main thread) each message runs under its CPU budget (see the
    module docstring); ``progress``, when given, holds the index of the message being parsed.
    """
    out: list[Prepared] = []
    for index, job in enumerate(jobs):
        if progress is not None:
            progress.value = index
        out.append(_prepare(ctx, job, MimeLimits()) if budget is None else _within_budget(ctx, job, budget))
    return out


class _BudgetExceeded(BaseException):
    """Raised by the CPU timer's signal handler: a BaseException, so no ``except Exception`` of the parser
    (which turns unforeseen failures into ``parser_error``) can swallow it."""


def _on_cpu_timer(signum: int, frame: FrameType | None) -> None:
    raise _BudgetExceeded


def _within_budget(ctx: BatchContext, job: ParseJob, budget: ParseBudget) -> Prepared:
    if threading.current_thread() is not threading.main_thread():
        return _prepare(ctx, job, budget.limits)  # signals reach the main thread only
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # Whole seconds, 0.25-1.25 s after the CPU timer (which should win: it leaves the process alive).
    seconds = budget.seconds(len(job.body))
    cap = int(usage.ru_utime + usage.ru_stime + seconds + 0.25) + 1
    if hard == resource.RLIM_INFINITY or cap <= hard:
        resource.setrlimit(resource.RLIMIT_CPU, (cap, hard))
    previous = signal.signal(signal.SIGPROF, _on_cpu_timer)
    try:
        signal.setitimer(signal.ITIMER_PROF, seconds)
        try:
            return _prepare(ctx, job, budget.limits)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _BudgetExceeded:
        return _quarantined(
            ctx,
            job,
            hashlib.sha256(job.body).hexdigest(),
            "parse_budget_exceeded",
            f"parsing used more than its {seconds:.3g} s of CPU time; not parsed",
        )
    finally:
        signal.signal(signal.SIGPROF, previous)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _quarantined(
    ctx: BatchContext, job: ParseJob, digest: str, reason: QuarantineReason, detail: str
) -> Prepared:
    return Prepared(
        uid=job.uid,
        key=message_key(ctx.mailbox_id, ctx.folder, ctx.uidvalidity, job.uid),
        dedupe_key=dedupe_key(ctx.mailbox_id, "", digest),
        event_id=None,
        value=None,
        reason=reason,
        detail=detail[:500],
        initial_sync=job.initial,
        internal_date=job.internal_date,
    )


def _prepare(ctx: BatchContext, job: ParseJob, limits: MimeLimits) -> Prepared:
    key = message_key(ctx.mailbox_id, ctx.folder, ctx.uidvalidity, job.uid)
    try:
        parsed = parse_message(job.body, limits=limits)
    except QuarantineError as exc:
        return _quarantined(ctx, job, hashlib.sha256(job.body).hexdigest(), exc.reason, exc.detail)
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


_PROGRESS: Synchronized[int] | None = None  # in a parsing process: its slot's shared progress value


def _pool_process_init(parent_pid: int, progress: Synchronized[int]) -> None:
    """Initializer of a parsing process: ignore SIGINT/SIGTERM, no core file, keep the shared ``progress``
    value, and exit once the worker that started it is gone.

    The parent handles SIGINT/SIGTERM and stops the processes; a Ctrl-C on the terminal must not make every
    process print a KeyboardInterrupt traceback. ``SIGXCPU`` (the per-message ``RLIMIT_CPU``) ends the process
    without a core file. A parent killed with SIGKILL cannot stop its processes, and a spawned process holds
    both ends of its queue pipes, so it would wait forever as an orphan: a daemon thread checks once a second
    that the parent is still ``parent_pid`` and ends the process otherwise.
    """
    global _PROGRESS
    _PROGRESS = progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _warm() -> int:
    """Run once in each new parsing process: the parser's imports and first-use caches, then its pid."""
    prepare_batch(_WARM_CTX, [ParseJob(1, b"From: warm@up.invalid\r\nSubject: w\r\n\r\nw\r\n", None, False)])
    return os.getpid()


def _run_batch(ctx: BatchContext, jobs: Sequence[ParseJob], budget: ParseBudget) -> list[Prepared]:
    """:func:`prepare_batch` in a parsing process, recording its position in the slot's shared value."""
    return prepare_batch(ctx, jobs, budget, _PROGRESS)


def default_processes() -> int:
    """Parsing processes when not configured: one fewer than the CPUs this process may use (the event loop
    keeps one), at least 1, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus - 1))


class _Slot:
    """One parsing process: a single-process executor, its pid once started, the shared index of the message
    it is on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        mp = multiprocessing.get_context("spawn")
        self.progress: Synchronized[int] = mp.Value("i", -1, lock=False)  # type: ignore[assignment]
        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=mp,
            initializer=_pool_process_init,
            initargs=(os.getpid(), self.progress),
        )
        self.ready: asyncio.Future[int] = asyncio.wrap_future(self.executor.submit(_warm), loop=loop)
        self.ready.add_done_callback(_retrieve)
        self.alive = True

    def stop(self, kill: bool = False) -> None:
        """Shut the executor down; with ``kill``, SIGKILL the process first (it may be stuck in a parse)."""
        self.alive = False
        if kill and self.ready.done() and not self.ready.cancelled() and self.ready.exception() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.ready.result(), signal.SIGKILL)
        self.ready.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


class _Lost(Exception):
    """A batch's process died or overran: ``index`` is the message it was on (-1: unknown)."""

    def __init__(self, index: int, why: str, reason: QuarantineReason = "parse_budget_exceeded") -> None:
        super().__init__(why)
        self.index = index
        self.why = why
        self.reason: QuarantineReason = reason


class Preparer:
    """Runs :func:`prepare_batch` in up to ``processes`` parsing processes (``spawn``: a forked copy of a running
    event loop and its sockets is unsafe), each message under ``budget`` (see the module docstring).

    A process is started by the first batch that needs it (or by :meth:`start`; about a second: it imports the
    parser) and the batches wait meanwhile, so the event loop keeps fetching. After ``idle_seconds`` without
    work the processes beyond ``keep_processes`` exit (about 80 MB each), so the one new mail under IDLE brings
    does not wait for a process to start. A batch that gets no answer within ``wall_seconds`` + (its budget
    + 1.25 s) per message, or whose process dies, has its process killed and replaced; the message it was on is
    quarantined with ``parse_budget_exceeded`` and the others are parsed again (a process lost before it
    reached any message: each message again alone; one lost twice that way is quarantined).

    ``processes=0`` parses in the calling thread without a budget: only for unit tests of the folder logic (the
    worker's settings require at least one process).
    """

    def __init__(
        self,
        processes: int,
        *,
        idle_seconds: float = 120.0,
        keep_processes: int = 1,
        budget: ParseBudget | None = None,
        wall_seconds: float = 10.0,
    ) -> None:
        self.processes = processes
        self.idle_seconds = idle_seconds
        self.keep_processes = min(keep_processes, processes)
        self.budget = budget or ParseBudget()
        self.wall_seconds = wall_seconds
        self.pool_starts = 0  # times the processes were started from none
        self.replaced = 0  # processes killed or found dead and replaced
        self._slots: list[_Slot] = []
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        self._busy = 0
        self._last_used = 0.0
        self._reaper: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        """True while parsing processes exist (starting or ready)."""
        return bool(self._slots)

    def _add_slot(self) -> _Slot:
        loop = asyncio.get_running_loop()
        if not self._slots:
            self.pool_starts += 1
        slot = _Slot(loop)
        self._slots.append(slot)
        self._idle.put_nowait(slot)
        self._last_used = loop.time()
        self._schedule_reap(loop)
        return slot

    def _ready(self) -> bool:
        """True when every process has started."""
        return bool(self._slots) and all(
            s.ready.done() and not s.ready.cancelled() and s.ready.exception() is None for s in self._slots
        )

    async def start(self) -> None:
        """Start all ``processes`` now and wait until each has imported the parser (about a second).

        Raises:
            concurrent.futures.process.BrokenProcessPool: a process died while starting.
        """
        if self.processes <= 0:
            return
        while len(self._slots) < self.processes:
            self._add_slot()
        await asyncio.gather(*(asyncio.shield(s.ready) for s in self._slots))

    def close(self) -> None:
        """Stop the processes (work in flight is dropped; nothing depends on it after the loops stopped)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for slot in self._slots:
            slot.stop()
        self._slots.clear()
        self._idle = asyncio.Queue()

    def _discard(self, slot: _Slot) -> None:
        """Kill a process that overran or died and start its replacement."""
        if slot in self._slots:
            self._slots.remove(slot)
            slot.stop(kill=True)
            self.replaced += 1
            self._add_slot()

    def _release(self, slot: _Slot) -> None:
        if slot.alive and slot in self._slots:
            self._idle.put_nowait(slot)

    def _schedule_reap(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._reaper is None:
            self._reaper = loop.call_at(self._last_used + self.idle_seconds, self._reap, loop)

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        self._reaper = None
        if not self._slots:
            return
        if self._busy or not self._ready():
            self._last_used = loop.time()  # look again one idle period later
        elif loop.time() - self._last_used >= self.idle_seconds:
            while len(self._slots) > self.keep_processes and not self._idle.empty():
                slot = self._idle.get_nowait()
                self._slots.remove(slot)
                slot.stop()
            if not self._slots:
                log.info("parse processes idle; stopped", idle_seconds=self.idle_seconds)
                return
        self._schedule_reap(loop)

    async def _acquire(self) -> _Slot:
        while True:
            if self._idle.empty() and len(self._slots) < self.processes:
                self._add_slot()
            slot = await self._idle.get()
            try:
                await asyncio.shield(slot.ready)
                return slot
            except asyncio.CancelledError:
                self._release(slot)
                raise
            except Exception as exc:  # noqa: BLE001  # a process that failed to start is replaced, not fatal
                log.warning("parse process failed to start; replacing it", error=type(exc).__name__)
                if slot in self._slots:
                    self._slots.remove(slot)
                    slot.stop(kill=True)
                await asyncio.sleep(1.0)  # a system that cannot start processes must not spin

    async def prepare(self, ctx: BatchContext, jobs: Sequence[ParseJob]) -> list[Prepared]:
        """:func:`prepare_batch` of ``jobs`` in a parsing process, in ``jobs`` order; never raises for a message."""
        jobs = list(jobs)
        if not jobs:
            return []
        if self.processes <= 0:  # unit tests: no CPU timer or limit on the test process itself
            return [_prepare(ctx, job, self.budget.limits) for job in jobs]
        done: dict[int, Prepared] = {}
        todo = jobs
        unplaced = 0  # batches lost without knowing the message they were on
        while todo:
            try:
                for p in await self._run(ctx, todo):
                    done[p.uid] = p
                todo = []
            except _Lost as lost:
                if lost.index < 0 and len(todo) > 1:
                    # Not known where it happened: each message alone, so that only the one at fault pays.
                    for job in todo:
                        done.update((p.uid, p) for p in await self.prepare(ctx, [job]))
                    todo = []
                    continue
                if lost.index < 0 and unplaced == 0:
                    unplaced += 1  # a process lost before it reached the message: once more
                    continue
                # The message the process was on pays for it; the others are parsed again.
                culprit = todo[max(lost.index, 0)]
                digest = await asyncio.to_thread(_sha256, culprit.body)
                done[culprit.uid] = _quarantined(ctx, culprit, digest, lost.reason, lost.why)
                log.warning(
                    "message quarantined: parsing process overran or died",
                    mailbox_id=ctx.mailbox_id,
                    folder=ctx.folder,
                    uid=culprit.uid,
                    why=lost.why,
                )
                todo = [j for j in todo if j is not culprit]
        return [done[j.uid] for j in jobs]

    async def _run(self, ctx: BatchContext, jobs: list[ParseJob]) -> list[Prepared]:
        """One batch in one process. Raises _Lost when the process overran the wall-clock deadline (it is
        killed) or died (the kernel's CPU limit, out of memory); the process is replaced either way."""
        slot = await self._acquire()
        loop = asyncio.get_running_loop()
        slot.progress.value = -1
        self._busy += 1
        future: Future[list[Prepared]] = slot.executor.submit(_run_batch, ctx, jobs, self.budget)
        # What the batch may use at most (each message its budget + 1.25 s, then the kernel ends it), and slack.
        deadline = self.wall_seconds + sum(self.budget.seconds(len(j.body)) + 1.25 for j in jobs)
        release = True
        try:
            wrapped = asyncio.wrap_future(future)
            wrapped.add_done_callback(_retrieve)  # after a timeout nobody awaits it; no "never retrieved"
            return await asyncio.wait_for(asyncio.shield(wrapped), deadline)
        except TimeoutError:
            release = False
            index = slot.progress.value
            self._discard(slot)
            raise _Lost(index, f"no answer from the parsing process within {deadline:g} s") from None
        except BrokenProcessPool:
            release = False
            index = slot.progress.value
            self._discard(slot)
            raise _Lost(
                index,
                "the parsing process ended (its CPU time limit, the message's budget + up to 1.25 s; or memory)",
            ) from None
        except asyncio.CancelledError:
            release = False  # the batch was abandoned: the slot comes back when its work is done
            future.add_done_callback(lambda _f: loop.call_soon_threadsafe(self._release, slot))
            raise
        except Exception as exc:  # not a message's doing: logged, and each is parsed again
            log.warning("parsing batch failed", error=f"{type(exc).__name__}: {exc}"[:300])
            raise _Lost(
                -1 if len(jobs) > 1 else 0, f"{type(exc).__name__} in the parsing process", "parser_error"
            ) from exc
        finally:
            self._busy -= 1
            self._last_used = loop.time()
            if release:
                self._release(slot)


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()  # releases the GIL on large inputs: run in a thread


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A failed start is handled when the process is next asked for (it is replaced), a lost batch by its caller;
    # no "never retrieved" warning for either.
    if not future.cancelled():
        future.exception()


_WARM_CTX = BatchContext(
    "tenant", "user", "mbx_warm", "INBOX", "inbox", 1, datetime(2000, 1, 1, tzinfo=UTC)
)  # never published
