"""Classification in worker processes, with a CPU budget per message that the message cannot escape.

The rules are linear-time by construction (see :mod:`.reply`), but the service does not rely on it: every
message is classified in a worker process, and a message that takes more than its budget is abandoned. The
worker is killed with SIGKILL (no cooperation needed from the code it is running: a regular expression, NumPy
or a C extension) and replaced, and the caller gets an :class:`Outcome` with ``classification=None`` and a
reason, from which the service publishes a safe fallback. The other workers go on meanwhile.

- Workers are started with the ``forkserver`` method (a fork of a clean single-threaded server that has
  already imported the classifier, so a replacement is ready in about the time it takes to load the model
  artifact, ~0.1 s, and nothing of the service's threads or sockets is inherited). Each holds its own
  :class:`~.classify.Classifier`.
- The parent sends ``mail.received`` JSON documents in chunks over a pipe, the worker answers each document
  as soon as it is done, and the parent waits on the pipe from the event loop (``loop.add_reader``), so
  waiting costs no thread. (One document per round trip measured 5 ms of wall time per message on a loaded
  machine for 1 ms of classification: every message waited for two process wake-ups.)
- The budget is **CPU seconds of the worker** for the message (user + system, read from
  ``/proc/<pid>/stat`` on Linux; wall seconds where there is no ``/proc``), checked every
  :data:`POLL_SECONDS` while a message runs: a loaded machine slows a message down without using up its
  budget. A separate wall-clock limit (``wall_limit_s``) ends a message that is stuck without using CPU.
- A worker that dies by itself (a crash in a C extension, the OOM killer) gives reason ``worker:crashed``;
  an exception in the classifier (it should never raise on content) gives ``classifier:error:<Type>``; the
  budget gives ``budget:exceeded``. In every case the message gets its fallback once: nothing is redelivered.

The pool is the standard kill-and-replace design of job runners with hard time limits (Celery's
``task_time_limit``, which also measures per task and replaces the worker process).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from laifaxin_shared.logging import get_logger

from .classify import Classification
from .model import DEFAULT_ARTIFACT

log = get_logger(__name__)

POLL_SECONDS = 0.05
"""How often a running message's CPU time is checked against its budget."""
CHUNK = 16
"""Most documents sent to a worker at once (see :meth:`ClassifierPool.classify_many`)."""
START_TIMEOUT_SECONDS = 120.0
"""Longest a new worker may take to import the classifier and load the model."""

BUDGET_EXCEEDED = Counter(
    "classifier_budget_exceeded_total",
    "Messages abandoned because classifying them exceeded the per-message budget (CPU or wall limit)",
)
FALLBACKS = Counter(
    "classifier_fallbacks_total",
    "Messages published with the fallback classification, by reason",
    ["reason"],
)
WORKER_RESTARTS = Counter(
    "classifier_worker_restarts_total", "Classification worker processes replaced, by reason", ["reason"]
)
WORKERS_ALIVE = Gauge("classifier_workers", "Classification worker processes running")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the pool made of one message.

    ``classification`` is None when the message was abandoned; ``reason`` then says why
    (``budget:exceeded``, ``worker:crashed`` or ``classifier:error:<ExceptionType>``). ``cpu_seconds`` is the
    worker CPU time the message used (seconds; for an abandoned message, what was used when it was given up).
    """

    classification: Classification | None
    reason: str | None
    cpu_seconds: float


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (``/proc/<pid>/stat`` fields 14 and 15, proc(5)), or None
    where ``/proc`` is not available or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # the command name may hold spaces; it ends at the last ")"
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when its parent exits (prctl PR_SET_PDEATHSIG), so a
    worker busy on a message never outlives the service."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def _worker_main(conn: Connection, artifact: str, spin_marker: str) -> None:
    """Worker process: load the model, then classify the chunks of ``mail.received`` JSON documents sent on
    ``conn`` (a pickled list of bytes each), one reply per document as soon as it is done.

    Replies ``("ok", Classification, cpu_seconds, cpu_total)`` or ``("error", exception type name,
    cpu_seconds, cpu_total)``, where ``cpu_total`` is the process's CPU time after the document (the parent's
    baseline for the next one); ``("ready", pid, cpu_total)`` once loaded. An empty list or a closed pipe ends
    the worker. ``spin_marker`` (tests only): a message whose subject contains it spins on the CPU until the
    parent gives up on it.
    """
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service handles ^C and stops the pool
    from laifaxin_shared.events import MailReceived

    from .classify import Classifier
    from .message import ClassifierInput

    classifier = Classifier(Path(artifact))
    conn.send(("ready", os.getpid(), time.process_time()))
    while True:
        try:
            chunk: list[bytes] = conn.recv()
        except (EOFError, OSError):
            return
        if not chunk:
            return
        for payload in chunk:
            started = time.process_time()
            try:
                event = MailReceived.model_validate_json(payload)
                if spin_marker and spin_marker in event.subject:
                    while True:  # a message engineered to be slow (tests of the budget)
                        pass
                result = classifier.classify(ClassifierInput.from_event(event))
            except Exception as exc:  # noqa: BLE001  reported to the parent, which publishes the fallback
                done = time.process_time()
                conn.send(("error", type(exc).__name__, done - started, done))
                continue
            done = time.process_time()
            conn.send(("ok", result, done - started, done))


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.pid = process.pid or 0
        self.cpu_total = 0.0
        """The worker's process CPU seconds after its last reply (the baseline of the next message's budget)."""

    async def receive(self, deadline_cpu: float | None, deadline_wall: float) -> tuple[Any, ...] | str:
        """The worker's next reply, or ``"budget"`` when it passes either deadline, or ``"crashed"`` when the
        pipe closes. ``deadline_cpu`` is the worker's process CPU time at which to give up (None: wall only)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.conn.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ready), POLL_SECONDS)
                if ready.done():
                    try:
                        reply: tuple[Any, ...] = self.conn.recv()
                    except (EOFError, OSError):
                        return "crashed"
                    return reply
                if loop.time() > deadline_wall:
                    return "budget"
                if deadline_cpu is not None:
                    cpu = process_cpu_seconds(self.pid)
                    if cpu is None:
                        return "crashed"
                    if cpu > deadline_cpu:
                        return "budget"
        finally:
            loop.remove_reader(fd)

    def kill(self) -> None:
        """SIGKILL and reap the process, close the pipe."""
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        self.process.join(5)
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(ValueError):
            self.process.close()


class ClassifierPool:
    """``size`` worker processes classifying ``mail.received`` documents with a per-message budget.

    Args:
        size: worker processes (>= 1).
        budget_s: CPU seconds a message may use in its worker (``/proc`` CPU accounting; wall seconds where
            it is missing).
        wall_limit_s: wall seconds a message may take whatever its CPU use (stuck or starved workers).
        artifact: the model artifact each worker loads.
        spin_marker: tests only; see :func:`_worker_main`.

    Use ``await pool.start()`` (raises ``RuntimeError`` when a worker cannot start, e.g. a missing artifact),
    :meth:`classify` (never raises for a message), ``await pool.close()``.
    """

    def __init__(
        self,
        size: int = 1,
        *,
        budget_s: float = 2.0,
        wall_limit_s: float = 10.0,
        artifact: Path = DEFAULT_ARTIFACT,
        spin_marker: str = "",
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.size = size
        self.budget_s = budget_s
        self.wall_limit_s = max(wall_limit_s, budget_s)
        self.artifact = artifact
        self.spin_marker = spin_marker
        self.restarts = 0
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["laifaxin_classifier.pool", "laifaxin_classifier.classify"])
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._replacing: set[asyncio.Task[None]] = set()
        self._has_proc = process_cpu_seconds(os.getpid()) is not None
        self._closed = False

    async def start(self) -> None:
        """Start the workers (concurrently) and wait until each has loaded the model."""
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        for w in workers:
            self._idle.put_nowait(w)

    async def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child, str(self.artifact), self.spin_marker),
            name="classifier-worker",
            daemon=True,
        )
        await asyncio.to_thread(process.start)
        child.close()
        worker = _Worker(process, parent)
        reply = await worker.receive(None, asyncio.get_running_loop().time() + START_TIMEOUT_SECONDS)
        if not (isinstance(reply, tuple) and reply[0] == "ready"):
            worker.kill()
            raise RuntimeError(f"classifier worker did not start ({reply!r}); is the model artifact there?")
        worker.cpu_total = float(reply[2])
        self._workers.add(worker)
        WORKERS_ALIVE.set(len(self._workers))
        return worker

    def _replace(self, worker: _Worker, reason: str) -> None:
        """Kill ``worker`` and start its replacement in the background (retrying until it starts)."""
        worker.kill()
        self._workers.discard(worker)
        WORKERS_ALIVE.set(len(self._workers))
        WORKER_RESTARTS.labels(reason).inc()
        self.restarts += 1

        async def replace() -> None:
            delay = 0.5
            while not self._closed:
                try:
                    new = await self._spawn()
                except (RuntimeError, OSError) as exc:
                    log.error("classifier worker restart failed", error=str(exc), retry_in_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if self._closed:
                    new.kill()
                else:
                    self._idle.put_nowait(new)
                return

        task = asyncio.create_task(replace())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def classify(self, payload: bytes) -> Outcome:
        """Classify one ``mail.received`` JSON document (already validated by the caller) in a worker."""
        return (await self.classify_many([payload]))[0]

    async def classify_many(self, payloads: list[bytes]) -> list[Outcome]:
        """:meth:`classify` for each document, results in the same order.

        The documents go to the workers in chunks (at most :data:`CHUNK` each, at least one chunk per worker);
        a worker streams one reply per document, so the budget still applies to each document, and a worker
        stays busy through its chunk instead of waiting for the parent between messages. When a document is
        abandoned, the rest of its chunk goes to the next free worker.
        """
        if not payloads:
            return []
        out: list[Outcome | None] = [None] * len(payloads)
        size = max(1, min(CHUNK, -(-len(payloads) // self.size)))
        chunks = [list(range(i, min(i + size, len(payloads)))) for i in range(0, len(payloads), size)]
        await asyncio.gather(*(self._run_chunk(payloads, chunk, out) for chunk in chunks))
        return [o if o is not None else Outcome(None, "worker:crashed", 0.0) for o in out]

    async def _run_chunk(self, payloads: list[bytes], chunk: list[int], out: list[Outcome | None]) -> None:
        """Classify ``payloads[i] for i in chunk`` in one worker, writing ``out[i]``; the rest of the chunk
        after an abandoned document is run again (in another worker)."""
        while chunk:
            worker = await self._idle.get()
            try:
                worker.conn.send([payloads[i] for i in chunk])
            except OSError:
                self._replace(worker, "crashed")
                continue  # nothing was classified: the whole chunk goes to the next worker
            loop = asyncio.get_running_loop()
            for n, i in enumerate(chunk):
                if self._has_proc:
                    deadline_cpu: float | None = worker.cpu_total + self.budget_s
                    deadline_wall = loop.time() + self.wall_limit_s
                else:  # no CPU accounting here: the budget is wall time
                    deadline_cpu, deadline_wall = None, loop.time() + self.budget_s
                reply = await worker.receive(deadline_cpu, deadline_wall)
                if isinstance(reply, str):
                    used = (process_cpu_seconds(worker.pid) or worker.cpu_total) - worker.cpu_total
                    reason = "budget:exceeded" if reply == "budget" else "worker:crashed"
                    self._replace(worker, reply)
                    if reason == "budget:exceeded":
                        BUDGET_EXCEEDED.inc()
                    FALLBACKS.labels(reason).inc()
                    log.warning(
                        "classification abandoned", reason=reason, cpu_seconds=round(max(used, 0.0), 3)
                    )
                    out[i] = Outcome(None, reason, max(used, 0.0))
                    chunk = chunk[n + 1 :]
                    break
                worker.cpu_total = float(reply[3])
                if reply[0] == "ok":
                    out[i] = Outcome(reply[1], None, float(reply[2]))
                else:
                    reason = f"classifier:error:{reply[1]}"
                    FALLBACKS.labels(reason).inc()
                    log.error("classifier raised", error_type=reply[1])
                    out[i] = Outcome(None, reason, float(reply[2]))
            else:
                self._idle.put_nowait(worker)
                return

    async def close(self) -> None:
        """Stop the workers (a worker busy on a message is killed)."""
        self._closed = True
        for task in list(self._replacing):
            task.cancel()
        for worker in list(self._workers):
            with contextlib.suppress(OSError):
                worker.conn.send([])
        for worker in list(self._workers):
            await asyncio.to_thread(worker.process.join, 2)
            worker.kill()
        self._workers.clear()
        WORKERS_ALIVE.set(0)
