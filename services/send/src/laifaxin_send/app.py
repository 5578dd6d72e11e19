"""The send service process: the FastAPI app, the FastStream Kafka broker and the dispatcher in one event loop.

Run: ``uvicorn --factory laifaxin_send.app:create_app`` or ``python -m laifaxin_send``. Consumer group ``send``
(offsets committed after the handler returns: :func:`~laifaxin_shared.kafka.subscriber_options`):

- ``mail.send`` (in batches) -> :meth:`SendService.accept_many` (store once, schedule);
- ``mailbox.verified`` / ``updated`` / ``removed`` -> send's copy of the mailbox (servers, login, sealed
  credential), as sync keeps one;
- ``mail.classified`` -> the bounce-rate guard (bounces matched to mail a mailbox sent).

(Each topic but ``mail.send`` is consumed in a group of its own, ``send.<topic>``.) It publishes ``mail.sent``, ``mail.send_failed`` and ``mailbox.sync_status`` (source ``send``), and, for the
HTTP API, ``mail.send``. Probes: ``/healthz`` (the dispatcher runs) and ``/readyz`` (Kafka and MongoDB answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError

from laifaxin_send.api import router
from laifaxin_send.errors import SendError, http_error, refusal
from laifaxin_send.pacing import Clock, SystemClock
from laifaxin_send.sentcopy import SentFolder
from laifaxin_send.service import SendService
from laifaxin_send.settings import SendSettings
from laifaxin_send.smtp import SmtpPool
from laifaxin_send.store import SendStore
from laifaxin_shared.api import install_method_not_allowed
from laifaxin_shared.asgi import RequestGuard
from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.events import (
    Envelope,
    MailboxRemoved,
    MailboxUpdated,
    MailboxVerified,
    MailClassified,
    SendCommand,
)
from laifaxin_shared.health import readiness
from laifaxin_shared.imap import client_tls_context
from laifaxin_shared.kafka import (
    declare_publishers,
    describe_validation_error,
    ensure_topics,
    make_broker,
    publish_dead_letter,
    publish_event,
    subscriber_options,
)
from laifaxin_shared.logging import configure_logging, get_logger
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.replytoken import ReplyTokens
from laifaxin_shared.topics import spec

log = get_logger(__name__)

SEND_TOPICS = (
    "mail.send",
    "mail.send.dlq",
    "mail.sent",
    "mail.send_failed",
    "mailbox.verified",
    "mailbox.verified.dlq",
    "mailbox.updated",
    "mailbox.updated.dlq",
    "mailbox.removed",
    "mailbox.removed.dlq",
    "mailbox.sync_status",
    "mail.classified",
    "mail.classified.dlq",
)
"""Topics send produces or consumes (with ``SEND_CREATE_TOPICS`` they are created at start)."""


def register_subscribers(broker: KafkaBroker, settings: SendSettings, app: FastAPI) -> None:
    """Thin handlers: each calls one :class:`SendService` method.

    ``mail.send`` is consumed in group ``SEND_GROUP_ID``; every other topic in a group of its own
    (``<group>.<topic>``), so the five consumers of a worker do not rebalance one another as they join.
    """

    def opts(name: str) -> dict[str, Any]:
        return subscriber_options(settings.group_id if name == "mail.send" else f"{settings.group_id}.{name}")

    def svc() -> SendService:
        service: SendService = app.state.service
        return service

    @broker.subscriber(
        settings.topic("mail.send"),
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=200,
        **opts("mail.send"),
    )
    async def on_commands(msg: KafkaMessage) -> None:
        """A batch of commands: validate each (poison to ``mail.send.dlq``), then :meth:`SendService.
        accept_many` (mailboxes in parallel, each mailbox's commands in order); the offsets are committed
        after every command of the batch is stored."""
        records: list[Any] = list(msg.raw_message)  # type: ignore[arg-type]
        commands: list[SendCommand] = []
        for record in records:
            try:
                commands.append(SendCommand.model_validate_json(record.value or b""))
            except ValidationError as exc:
                await publish_dead_letter(
                    broker,
                    record,
                    error=describe_validation_error(exc),
                    error_type="ValidationError",
                    group_id=settings.group_id,
                )
        await svc().accept_many(commands)

    @broker.subscriber(settings.topic("mailbox.verified"), **opts("mailbox.verified"))
    async def on_verified(event: MailboxVerified) -> None:
        await svc().on_verified(event)

    @broker.subscriber(settings.topic("mailbox.updated"), **opts("mailbox.updated"))
    async def on_updated(event: MailboxUpdated) -> None:
        await svc().on_updated(event)

    @broker.subscriber(settings.topic("mailbox.removed"), **opts("mailbox.removed"))
    async def on_removed(event: MailboxRemoved) -> None:
        await svc().on_removed(event)

    @broker.subscriber(settings.topic("mail.classified"), **opts("mail.classified"))
    async def on_classified(event: MailClassified) -> None:
        await svc().on_classified(event)


def build_service(
    settings: SendSettings, store: SendStore, publish: Any, clock: Clock, rng: random.Random | None = None
) -> SendService:
    """The service the settings describe."""
    ctx = client_tls_context(settings.ca_file)
    return SendService(
        settings=settings,
        store=store,
        pool=SmtpPool(
            ctx,
            timeout=settings.smtp_timeout_seconds,
            per_mailbox=settings.connections_per_mailbox,
            idle_seconds=settings.session_idle_seconds,
        ),
        sent_folder=SentFolder(ctx, timeout=settings.imap_timeout_seconds),
        publish=publish,
        keyring=KeyRing.parse(
            settings.credential_keys.get_secret_value(),
            settings.credential_active_key_id,
            accept_v1=settings.credential_accept_v1,
        ),
        reply_tokens=ReplyTokens.parse(
            settings.reply_token_keys.get_secret_value(), settings.reply_token_active_key_id
        ),
        clock=clock,
        rng=rng,
    )


def create_app(
    settings: SendSettings | None = None,
    *,
    start_broker: bool = True,
    run_dispatcher: bool = True,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> FastAPI:
    """The send app. Nothing connects until the lifespan starts.

    Args:
        settings: defaults to the environment (:class:`SendSettings`).
        start_broker: False runs without Kafka (HTTP tests of the API alone).
        run_dispatcher: False leaves dispatching to the caller (``app.state.service.dispatch_once``; tests
            with a :class:`~laifaxin_send.pacing.ManualClock`).
        clock: defaults to the system clock.
        rng: randomness of the spacing (seeded in tests).
    """
    settings = settings or SendSettings()
    clock = clock or SystemClock()
    broker = make_broker(settings, client_id=f"{settings.service_name}-{settings.worker_id}")
    declare_publishers(broker, settings, "mail.sent", "mail.send_failed", "mailbox.sync_status", "mail.send")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
        mongo = make_mongo_client(settings.mongodb_url.get_secret_value(), appname=settings.service_name)
        store = SendStore(mongo[settings.mongodb_database])
        await store.init()

        async def publish(event: Envelope) -> None:
            await publish_event(broker, event, prefix=settings.topic_prefix)

        app.state.mongo = mongo
        app.state.publish = publish
        service = build_service(settings, store, publish, clock, rng)
        service.autostart = run_dispatcher
        app.state.service = service
        if start_broker:
            if settings.create_topics:
                await ensure_topics(
                    settings,
                    [spec(name) for name in SEND_TOPICS],
                    prefix=settings.topic_prefix,
                    replication_factor=settings.topic_replication_factor,
                )
            await broker.start()
        dispatcher = asyncio.create_task(service.run(), name="dispatcher") if run_dispatcher else None
        app.state.dispatcher = dispatcher
        log.info("send started", worker_id=settings.worker_id, topic_prefix=settings.topic_prefix)
        try:
            yield
        finally:
            if dispatcher is not None:
                dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher
            await service.drain()
            if start_broker:
                await broker.stop()
            await service.pool.close()
            await mongo.close()

    app = FastAPI(
        title="Laifaxin send",
        version="1.0.0",
        description="Send mail from a bound mailbox through its own SMTP server: commands (idempotent on "
        "command_id), warm-up pacing and daily caps, Sent copies, a bounce-rate guard. Every error carries a "
        "code, a message and a fix in English and Chinese.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # A body over 1 MiB (attachments are capped below that) is 413 and a /v1/ write without a valid token is 401,
    # both before the body is read.
    app.add_middleware(
        RequestGuard, verifier=settings.token_verifier(), max_body_bytes=settings.max_body_bytes
    )
    app.state.broker = broker
    app.state.publish = None
    app.include_router(router)
    install_method_not_allowed(app, render=lambda status, detail: http_error(status, detail).to_dict())
    register_subscribers(broker, settings, app)

    @app.exception_handler(SendError)
    async def send_error(_request: Request, exc: SendError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Locations and messages only: the input values are left out.
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
        )
        error = refusal("invalid_command", details=details)
        return JSONResponse(error.to_dict(), status_code=error.status)

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> JSONResponse:
        """Liveness: the process answers and its dispatcher has not died."""
        task = getattr(request.app.state, "dispatcher", None)
        ok = task is None or not task.done()
        return JSONResponse({"status": "ok" if ok else "dispatcher_stopped"}, status_code=200 if ok else 503)

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: MongoDB answers ``ping`` and the Kafka broker answers, each within 2 s."""

        async def kafka() -> bool:
            return bool(start_broker and await broker.ping(timeout=2))

        return await readiness(request.app.state.mongo, kafka)

    return app
