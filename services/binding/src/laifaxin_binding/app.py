"""The binding service process: the FastAPI app and the FastStream Kafka broker in one event loop.

Run: ``uvicorn --factory laifaxin_binding.app:create_app --host 0.0.0.0 --port 8080`` or
``python -m laifaxin_binding``. The broker is started and stopped in FastAPI's lifespan; it publishes
``mailbox.verified|updated|removed`` and consumes ``mailbox.sync_status`` (consumer group ``binding``,
offset committed after the handler returns: :func:`~laifaxin_shared.kafka.subscriber_options`).

Requests pass :class:`~laifaxin_shared.asgi.RequestGuard` first: a body over ``BINDING_MAX_BODY_BYTES`` is 413 and
a ``/v1/`` write without a valid token is 401, both before the body is read.

Probes: ``/healthz`` (liveness: the process answers) and ``/readyz`` (readiness: Kafka and MongoDB answer).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker

from laifaxin_binding import errors
from laifaxin_binding.api import router
from laifaxin_binding.detect import Detector
from laifaxin_binding.models import MailboxCreate, ServerIn
from laifaxin_binding.oauth import OAuthService, TokenRefresher
from laifaxin_binding.oauth_api import router as oauth_router
from laifaxin_binding.service import Limits, MailboxService, Principal
from laifaxin_binding.settings import BindingSettings
from laifaxin_binding.store import AttemptLog, MailboxStore
from laifaxin_binding.verify import HostGuard, Verifier
from laifaxin_shared.api import install_method_not_allowed
from laifaxin_shared.asgi import RequestGuard
from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.events import Envelope, MailboxSyncStatus
from laifaxin_shared.health import readiness
from laifaxin_shared.imap import client_tls_context
from laifaxin_shared.kafka import (
    declare_publishers,
    ensure_topics,
    make_broker,
    publish_event,
    subscriber_options,
)
from laifaxin_shared.logging import configure_logging, get_logger
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.providers.errors import MailError
from laifaxin_shared.topics import spec

log = get_logger(__name__)

CONSUMER_GROUP = "binding"
BINDING_TOPICS = ("mailbox.verified", "mailbox.updated", "mailbox.removed", "mailbox.sync_status")
"""Topics binding produces or consumes (with ``BINDING_CREATE_TOPICS`` they are created at start)."""


def build_verifier(settings: BindingSettings) -> Verifier:
    """The verifier the settings describe (CA file, host allowlist, timeouts, per-host bound)."""
    networks, names = settings.allowlist()
    return Verifier(
        ssl_context=client_tls_context(settings.ca_file),
        guard=HostGuard(networks, names, timeout=settings.command_timeout_seconds),
        timeout=settings.verify_timeout_seconds,
        command_timeout=settings.command_timeout_seconds,
        max_connections_per_host=settings.max_connections_per_host,
    )


def build_detector(settings: BindingSettings) -> Detector:
    """The detector the settings describe: system DNS resolver, real autoconfig over HTTPS, and all network
    lookups of one detection within ``detect_timeout_seconds`` (:attr:`Detector.budget`)."""
    return Detector(budget=settings.detect_timeout_seconds)


def register_subscribers(broker: KafkaBroker, settings: BindingSettings, app: FastAPI) -> None:
    """``mailbox.sync_status`` -> :meth:`MailboxService.apply_sync_status` (thin handler)."""

    @broker.subscriber(settings.topic("mailbox.sync_status"), **subscriber_options(CONSUMER_GROUP))
    async def on_sync_status(event: MailboxSyncStatus) -> None:
        svc: MailboxService = app.state.service
        await svc.apply_sync_status(event)


def _server(spec_text: str | None) -> ServerIn | None:
    """``host:port:security`` -> :class:`ServerIn` (None when unset)."""
    if not spec_text:
        return None
    host, port, security = spec_text.rsplit(":", 2)
    return ServerIn(host=host, port=int(port), security=security)  # type: ignore[arg-type]


async def bind_system_mailbox(service: MailboxService, settings: BindingSettings) -> None:
    """Bind (or keep) the system mailbox named in the settings; a failure is logged with its code and fix,
    and the service still starts (the mailbox then shows the error through the API)."""
    assert settings.system_mailbox_email and settings.system_mailbox_password
    who = Principal(settings.system_tenant_id, settings.system_user_id)
    body = MailboxCreate(
        email=settings.system_mailbox_email,
        password=settings.system_mailbox_password,
        nickname="System mailbox (mass-email replies)",
        imap=_server(settings.system_mailbox_imap),
        smtp=_server(settings.system_mailbox_smtp),
    )
    try:
        out = await service.ensure_system_mailbox(who, body)
    except errors.BindingError as exc:
        log.error(
            "system mailbox not bound",
            email=settings.system_mailbox_email,
            code=exc.code,
            message=exc.message.en,
            fix=exc.fix.en,
        )
        return
    log.info("system mailbox bound", mailbox_id=out.id, email=out.email)


async def rotate_credentials(settings: BindingSettings) -> dict[str, int]:
    """Operator command: reseal every stored credential under the active key, with v2 associated data (bound to
    its servers and logins), and emit ``mailbox.verified``
    for each (``laifaxin-mail credentials rotate``). Uses binding's own settings (database, key ring, Kafka)."""
    mongo = make_mongo_client(
        settings.mongodb_url.get_secret_value(), appname=f"{settings.service_name}-rotate"
    )
    broker = make_broker(settings, client_id=f"{settings.service_name}-rotate")
    db = mongo[settings.mongodb_database]

    async def publish(event: Envelope) -> None:
        await publish_event(broker, event, prefix=settings.topic_prefix)

    service = MailboxService(
        store=MailboxStore(db),
        attempts=AttemptLog(db, timedelta(seconds=settings.rate_window_seconds)),
        verifier=build_verifier(settings),
        keyring=KeyRing.parse(
            settings.credential_keys.get_secret_value(),
            settings.credential_active_key_id,
            accept_v1=settings.credential_accept_v1,
        ),
        publish=publish,
    )
    await broker.start()
    try:
        return await service.reseal_credentials()
    finally:
        await broker.stop()
        await mongo.close()


def _revoked_status_publisher(publish: Callable[[Envelope], Awaitable[None]]) -> Any:
    """``mailbox.sync_status`` (state ``auth_failed``, code ``oauth_revoked``) for a grant found revoked."""

    async def on_revoked(doc: dict[str, Any], error: MailError, at: datetime) -> None:
        await publish(
            MailboxSyncStatus(
                tenant_id=doc["tenant_id"],
                mailbox_id=doc["_id"],
                occurred_at=at,
                state="auth_failed",
                error_code=error.code.value,
                message=error.message.en,
                fix=error.fix.en,
                message_zh=error.message.zh,
                fix_zh=error.fix.zh,
            )
        )

    return on_revoked


def create_app(
    settings: BindingSettings | None = None, *, start_broker: bool = True, detector: Detector | None = None
) -> FastAPI:
    """The binding app. Nothing connects until the lifespan starts.

    Args:
        settings: defaults to the environment (:class:`BindingSettings`).
        start_broker: False runs without Kafka (events must then be published by ``app.state.publish``
            replaced by the caller; for tests of the HTTP layer alone).
        detector: provider detection for ``/v1/providers/detect`` and for binds without provider or servers;
            defaults to :func:`build_detector` (tests pass one aimed at loopback DNS and autoconfig servers).
    """
    settings = settings or BindingSettings()
    detector = detector if detector is not None else build_detector(settings)
    broker = make_broker(settings, client_id=settings.service_name)
    declare_publishers(
        broker, settings, "mailbox.verified", "mailbox.updated", "mailbox.removed", "mailbox.sync_status"
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
        mongo = make_mongo_client(settings.mongodb_url.get_secret_value(), appname=settings.service_name)
        db = mongo[settings.mongodb_database]
        store = MailboxStore(db)
        await store.init()

        async def publish(event: Envelope) -> None:
            await publish_event(broker, event, prefix=settings.topic_prefix)

        app.state.mongo = mongo
        app.state.service = MailboxService(
            store=store,
            attempts=AttemptLog(db, timedelta(seconds=settings.rate_window_seconds)),
            verifier=build_verifier(settings),
            keyring=KeyRing.parse(
                settings.credential_keys.get_secret_value(),
                settings.credential_active_key_id,
                accept_v1=settings.credential_accept_v1,
            ),
            publish=publish,
            detector=detector,
            limits=Limits(
                mailboxes_per_tenant=settings.mailbox_limit_per_tenant,
                failures_per_address=settings.rate_max_failures_per_address,
                failures_per_address_all_tenants=settings.rate_max_failures_per_address_all_tenants,
                attempts_per_tenant=settings.rate_max_attempts_per_tenant,
                window=timedelta(seconds=settings.rate_window_seconds),
                expiry_warning=timedelta(days=settings.credential_expiry_warning_days),
            ),
        )
        if start_broker:
            if settings.create_topics:
                await ensure_topics(
                    settings,
                    [spec(name) for name in BINDING_TOPICS],
                    prefix=settings.topic_prefix,
                    replication_factor=settings.topic_replication_factor,
                )
            await broker.start()
        app.state.oauth = OAuthService(settings, app.state.service)
        app.state.oauth.on_revoked = _revoked_status_publisher(publish)
        refresher = TokenRefresher(app.state.oauth, settings.oauth_refresh_interval_seconds)
        app.state.oauth_refresher = refresher
        if settings.oauth_refresh_enabled and start_broker:
            refresher.start()
        if settings.system_mailbox_email and start_broker:
            await bind_system_mailbox(app.state.service, settings)
        log.info("binding started", topic_prefix=settings.topic_prefix, database=settings.mongodb_database)
        try:
            yield
        finally:
            await refresher.stop()
            if start_broker:
                await broker.stop()
            await mongo.close()

    app = FastAPI(
        title="Laifaxin binding",
        version="1.0.0",
        description="Bind mailboxes over IMAP and SMTP: verify, save, edit, remove; provider lookup and "
        "detection. Every error carries a code, a message and a fix in English and Chinese.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(
        RequestGuard, verifier=settings.token_verifier(), max_body_bytes=settings.max_body_bytes
    )
    app.state.broker = broker
    app.state.detector = detector
    app.include_router(router)
    install_method_not_allowed(app, render=lambda status, detail: errors.http_error(status, detail).to_dict())
    app.include_router(oauth_router)
    register_subscribers(broker, settings, app)

    @app.exception_handler(errors.BindingError)
    async def binding_error(_request: Request, exc: errors.BindingError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Field locations and messages only: the input values (which may hold the password) are left out.
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
        )
        error = errors.invalid_request(details)
        for e in exc.errors():
            loc = e.get("loc", ())
            if loc and loc[-1] == "email" and e.get("type") == "string_pattern_mismatch":
                error = errors.invalid_email(str(e.get("input", "")))
        return JSONResponse(error.to_dict(), status_code=error.status)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process and its event loop answer."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"description": "Not ready: the same body with the failing check's error type."}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: MongoDB answers ``ping`` and the Kafka broker answers, each within 2 s."""

        async def kafka() -> bool:
            return bool(start_broker and await broker.ping(timeout=2))

        return await readiness(request.app.state.mongo, kafka)

    return app
