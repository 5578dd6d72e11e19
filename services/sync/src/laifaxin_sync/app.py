"""The sync worker process: wiring, HTTP probes and metrics, graceful shutdown.

``python -m laifaxin_sync`` runs :func:`main`: connect Mongo and the Kafka producer, join the ``sync`` group,
serve ``/healthz`` (liveness: the supervisor loop beat recently), ``/readyz`` (Kafka metadata and a Mongo ping
answer) and ``/metrics`` (Prometheus) on ``SYNC_HTTP_PORT``, and on SIGTERM/SIGINT stop the mailbox loops
(each finishes or abandons its batch), leave the group (committing applied offsets), flush the producer.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.kafka import declare_publishers, ensure_topics, make_broker
from laifaxin_shared.logging import configure_logging, get_logger
from laifaxin_shared.mongo import Document, make_mongo_client, ping
from laifaxin_shared.topics import TOPICS
from laifaxin_sync.mailbox_loop import WorkerContext
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.prepare import ParseBudget, Preparer, default_processes
from laifaxin_sync.publisher import Publisher
from laifaxin_sync.registry import RegistryConsumer
from laifaxin_sync.settings import SyncSettings
from laifaxin_sync.startup import StartGate
from laifaxin_sync.store import SyncStore
from laifaxin_sync.supervisor import Supervisor

log = get_logger(__name__)

TLS_READ_BUFFER = 32 * 1024  # bytes; a TLS record carries at most 16 KiB


def limit_tls_read_buffer(size: int = TLS_READ_BUFFER) -> None:
    """Make asyncio's TLS transports allocate ``size`` bytes of read buffer instead of 256 KiB each.

    ``asyncio.sslproto.SSLProtocol`` allocates (and zero-fills) a ``max_size`` bytearray per connection, and a
    worker holds one TLS connection per mailbox: 1,000 IDLE mailboxes kept 250 MB resident for buffers that
    never hold more than one read. ``max_size`` only caps how much one read takes (decrypted data is read in
    chunks of it, a TLS record holds at most 16 KiB), so a smaller one changes nothing else. Process-wide:
    called by :func:`main`.
    """
    asyncio.sslproto.SSLProtocol.max_size = size


class _Server(uvicorn.Server):
    """uvicorn inside our loop: the worker, not uvicorn, owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SyncWorker:
    """One worker: :meth:`start`, then :meth:`stop` (idempotent)."""

    def __init__(self, settings: SyncSettings) -> None:
        self.settings = settings
        self.metrics = SyncMetrics()
        self.mongo: AsyncMongoClient[Document] = make_mongo_client(
            settings.mongodb_url.get_secret_value(), appname=f"sync-{settings.worker_id}"
        )
        self.store = SyncStore(self.mongo[settings.mongodb_database])
        # A catch-up publishes hundreds of records to one partition: large record batches (see the setting).
        self.broker = make_broker(
            settings, client_id=f"sync-{settings.worker_id}", max_batch_size=settings.kafka_max_batch_bytes
        )
        declare_publishers(self.broker, settings, "mail.received", "mailbox.sync_status")  # AsyncAPI
        keyring = KeyRing.parse(
            settings.credential_keys.get_secret_value(),
            settings.credential_active_key_id,
            accept_v1=settings.credential_accept_v1,
        )
        processes = settings.parse_processes
        self.preparer = Preparer(
            default_processes() if processes is None else processes,
            idle_seconds=settings.parse_idle_seconds,
            keep_processes=settings.parse_keep_processes,
            budget=ParseBudget(
                settings.parse_cpu_seconds, settings.parse_cpu_seconds_per_mb, settings.mime_limits()
            ),
            wall_seconds=settings.parse_wall_seconds,
        )
        self.ctx = WorkerContext(
            settings,
            self.store,
            Publisher(self.broker, settings.topic_prefix, dlq_prefix_bytes=settings.dlq_raw_prefix_bytes),
            self.metrics,
            keyring,
            self.preparer,
            StartGate(settings.start_concurrency, self.metrics),
        )
        self.supervisor = Supervisor(self.ctx)
        self.registry = RegistryConsumer(settings, self.supervisor, self.broker)
        self.tasks: list[asyncio.Task[Any]] = []
        self.http: _Server | None = None
        self._stopped = False

    async def start(self) -> None:
        """Connect, create indexes (and topics when configured), join the group, start the probes."""
        s = self.settings
        for attempt in range(1, 11):  # Mongo may come up after the pod: retry before giving up
            try:
                await self.store.ensure_indexes()
                break
            except PyMongoError as exc:
                if attempt == 10:
                    raise
                log.warning("mongo not ready; retrying", attempt=attempt, error=type(exc).__name__)
                await asyncio.sleep(min(2.0 * attempt, 10.0))
        if s.create_topics:
            await ensure_topics(s, TOPICS.values(), prefix=s.topic_prefix, replication_factor=1)
        await self.broker.connect()
        await self.supervisor.tick()  # our heartbeat exists before we claim any lease
        await self.registry.start()
        self.tasks.append(asyncio.create_task(self.registry.run(), name="registry"))
        self.tasks.append(asyncio.create_task(self.supervisor.run(), name="supervisor"))
        if s.http_port:
            self.http = _Server(
                uvicorn.Config(
                    self.http_app(), host=s.http_host, port=s.http_port, log_level="warning", access_log=False
                )
            )
            self.tasks.append(asyncio.create_task(self.http.serve(), name="http"))
        log.info("sync worker started", worker_id=s.worker_id, group_id=s.group_id, http_port=s.http_port)

    def alive(self) -> bool:
        """Liveness: the supervisor loop beat within ``liveness_max_age_seconds`` and no core task died."""
        if any(t.done() for t in self.tasks):
            return False
        return time.monotonic() - self.supervisor.last_beat < self.settings.liveness_max_age_seconds

    async def ready(self) -> bool:
        """Readiness: Mongo answers ping and Kafka answers a metadata request."""
        try:
            async with asyncio.timeout(3):
                ok_mongo = await ping(self.mongo)
                ok_kafka = await self.broker.ping(timeout=3)
        except Exception as exc:  # noqa: BLE001  # any failure means "not ready"; the reason is logged
            log.info("not ready", error=type(exc).__name__)
            return False
        return bool(ok_mongo and ok_kafka)

    def http_app(self) -> FastAPI:
        """/healthz, /readyz and /metrics."""
        app = FastAPI(title="laifaxin-sync", openapi_url=None, docs_url=None, redoc_url=None)

        @app.get("/healthz")
        async def healthz() -> Response:
            ok = self.alive()
            return Response(
                "ok\n" if ok else "stalled\n", status_code=200 if ok else 503, media_type="text/plain"
            )

        @app.get("/readyz")
        async def readyz() -> Response:
            ok = await self.ready()
            return Response(
                "ready\n" if ok else "not ready\n", status_code=200 if ok else 503, media_type="text/plain"
            )

        @app.get("/metrics")
        async def metrics() -> Response:
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return app

    async def stop(self) -> None:
        """Graceful stop: loops end (batches finish or are abandoned), the group is left, the producer flushed."""
        if self._stopped:
            return
        self._stopped = True
        log.info("sync worker stopping", worker_id=self.settings.worker_id)
        for task in self.tasks:
            if task.get_name() in ("registry", "supervisor"):
                task.cancel()
        await asyncio.gather(*(t for t in self.tasks if t.get_name() != "http"), return_exceptions=True)
        await self.supervisor.stop_all()
        self.preparer.close()
        await self.registry.stop()
        await self.broker.stop()
        try:
            await self.store.retire(self.settings.worker_id)
        except PyMongoError as exc:  # the heartbeat then simply expires
            log.warning("heartbeat not retired", error=type(exc).__name__)
        if self.http is not None:
            self.http.should_exit = True
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.mongo.close()
        log.info("sync worker stopped", worker_id=self.settings.worker_id)


async def run(settings: SyncSettings) -> None:
    """Run a worker until SIGTERM or SIGINT."""
    worker = SyncWorker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    try:
        waiter = asyncio.create_task(stop.wait())
        watched = [t for t in worker.tasks if t.get_name() in ("registry", "supervisor")]
        done, _ = await asyncio.wait({waiter, *watched}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception() is not None:
                log.error("core task failed", task=task.get_name(), error=repr(task.exception()))
        waiter.cancel()
    finally:
        await worker.stop()


def main() -> None:
    """Entry point of ``python -m laifaxin_sync``."""
    settings = SyncSettings()
    configure_logging("sync", settings.log_level, json=settings.log_json)
    limit_tls_read_buffer()
    asyncio.run(run(settings))
