"""The inbox service process: the FastAPI app and the FastStream Kafka consumers in one event loop.

Run: ``uvicorn --factory laifaxin_inbox.app:create_app --host 0.0.0.0 --port 8088`` or ``python -m
laifaxin_inbox``. The read model (:mod:`laifaxin_inbox.store`) is fed only by Kafka
(:mod:`laifaxin_inbox.consumer`); message content comes from sync's ``GET /v1/raw`` on demand
(:mod:`laifaxin_inbox.content`).

Requests pass :class:`~laifaxin_shared.asgi.RequestGuard` first: a body over ``INBOX_MAX_BODY_BYTES`` is 413 and a
``/v1/`` write without a valid token is 401, both before the body is read. Probes: ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from laifaxin_shared.asgi import RequestGuard
from laifaxin_shared.health import readiness
from laifaxin_shared.kafka import ensure_topics, make_broker
from laifaxin_shared.logging import configure_logging, get_logger
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.topics import spec

from .api import router
from .consumer import INBOX_TOPICS, register
from .content import RawClient
from .ingest import Ingest
from .live import Hub
from .service import InboxService
from .settings import InboxSettings
from .store import Store

log = get_logger(__name__)


def create_app(settings: InboxSettings | None = None, *, consume: bool = True) -> FastAPI:
    """The inbox app. Nothing connects until the lifespan starts; ``consume=False`` serves the API without
    Kafka (the read model is then written by the caller through ``app.state.ingest``)."""
    settings = settings or InboxSettings()
    broker = make_broker(settings, client_id=settings.service_name)
    hub = Hub()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
        mongo = make_mongo_client(settings.mongodb_url.get_secret_value(), appname=settings.service_name)
        store = Store(mongo[settings.mongodb_database])
        await store.init()
        raw = RawClient(
            settings.sync_content_url,
            settings.sync_content_secret.get_secret_value(),
            timeout_s=settings.sync_timeout_s,
            max_bytes=settings.max_raw_bytes,
        )
        app.state.mongo = mongo
        app.state.ingest = Ingest(store, hub)
        app.state.service = InboxService(store, raw, page_max=settings.page_max, scan_max=settings.scan_max)
        if consume:
            if settings.create_topics:
                await ensure_topics(
                    settings,
                    [spec(name) for name in INBOX_TOPICS],
                    prefix=settings.topic_prefix,
                    replication_factor=settings.topic_replication_factor,
                )
            await broker.start()
        log.info("inbox started", topic_prefix=settings.topic_prefix, database=settings.mongodb_database)
        try:
            yield
        finally:
            if consume:
                await broker.stop()
            await raw.aclose()
            await mongo.close()

    app = FastAPI(
        title="Laifaxin inbox",
        version="1.0.0",
        description="The unified inbox: every bound mailbox and the system mailbox's matched replies, read "
        "together; To Reply queue that empties itself when the owner answers; live updates (SSE). Bearer JWT "
        "(HS256, aud laifaxin-inbox); every query is scoped to the caller's tenant and user.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.hub = hub
    app.state.broker = broker
    app.add_middleware(
        RequestGuard,
        verifier=settings.token_verifier(),
        max_body_bytes=settings.max_body_bytes,
        error_shape="detail",
    )
    app.include_router(router)
    register(broker, settings, lambda: app.state.ingest)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process and its event loop answer."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: MongoDB answers ``ping`` and, when consuming, the Kafka broker answers, each within 2 s."""

        async def kafka() -> bool:
            return bool(await broker.ping(timeout=2))

        return await readiness(request.app.state.mongo, kafka if consume else None)

    return app
