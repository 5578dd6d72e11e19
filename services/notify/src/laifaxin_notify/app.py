"""The notify service: FastAPI app factory with the Kafka consumers in its lifespan.

Run: ``uvicorn --factory laifaxin_notify.app:create_app --host 127.0.0.1 --port 8086`` or
``python -m laifaxin_notify serve``. OpenAPI at ``/openapi.json``, docs at ``/docs``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any

from defusedxml import ElementTree
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from faststream.kafka import KafkaBroker
from pydantic import BaseModel, EmailStr, Field
from pymongo.errors import ConnectionFailure, PyMongoError

from laifaxin_shared.asgi import RequestGuard
from laifaxin_shared.auth import TokenVerifier, check_secret
from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.kafka import make_broker
from laifaxin_shared.logging import configure_logging, get_logger
from laifaxin_shared.mongo import Document, make_mongo_client, ping

from .auth import Principal, principal
from .channels.apprise import SUPPORTED_TEXT, AppriseSender, AppriseUrlError, new_target_id
from .channels.base import Sender
from .channels.email import EmailSender, build_confirmation
from .channels.webpush import WebPushSender, load_vapid
from .channels.wechat import WeChatApiError, WeChatHttpError, WeChatSender
from .consumer import KafkaQueue, register
from .egress import EgressGuard, EgressRefused
from .models import Channel, Preferences
from .pipeline import Limits, MemoryCounter, MemoryQueue, Notifier, StoreCounter, TaskQueue
from .settings import NotifySettings
from .store import Binding, Store, push_target_id
from .wechat_crypto import WeChatCryptoError, aes_key, check_msg_signature, decrypt
from .wechat_link import WeChatEvent, handle_event, new_scene_id, ref

CALLBACK_BUDGET_S = 4.0
"""Longest ``/wechat/callback`` waits for an event's handling before answering ``success`` (WeChat waits 5 s,
then retries up to 3 times within 15 s; "接收事件推送"). Handling that takes longer finishes in the background."""

log = get_logger(__name__)


def build_senders(settings: NotifySettings) -> dict[str, Sender]:
    """One sender per channel the settings enable (WeChat needs an AppID, email a relay host)."""
    senders: dict[str, Sender] = {}
    if settings.wechat_appid:
        senders["wechat"] = WeChatSender(
            base_url=settings.wechat_api_base,
            appid=settings.wechat_appid,
            secret=settings.wechat_secret.get_secret_value(),
            template_id=settings.wechat_template_id,
            quota_delay_s=settings.quota_delay_s,
            timeout_s=settings.http_timeout_s,
        )
    if settings.smtp_host:
        ctx = ssl.create_default_context(cafile=settings.smtp_ca_file)
        senders["email"] = EmailSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value(),
            tls_context=ctx,
            timeout_s=settings.smtp_timeout_s,
            connections=settings.smtp_connections,
            idle_s=settings.smtp_idle_s,
            messages_per_connection=settings.smtp_messages_per_connection,
        )
    senders["webpush"] = WebPushSender(
        vapid=load_vapid(settings.vapid_private_key.get_secret_value()),
        subject=settings.vapid_subject,
        ttl_s=settings.push_ttl_s,
        timeout_s=settings.http_timeout_s,
        guard=push_guard(settings),
    )
    if settings.apprise_enabled:
        senders["apprise"] = build_apprise_sender(settings)
    return senders


def push_guard(settings: NotifySettings) -> EgressGuard:
    """Which Web Push endpoints may be stored and connected to: https to public addresses, plus what
    ``NOTIFY_PUSH_ALLOWLIST`` names (:mod:`laifaxin_notify.egress`)."""
    return EgressGuard(settings.push_allowlist, timeout_s=min(settings.http_timeout_s, 5.0))


def build_apprise_sender(settings: NotifySettings) -> AppriseSender:
    """The Apprise channel: URLs sealed under notify's own key ring (``NOTIFY_SECRETS_KEYS``), never the
    mailbox credential ring."""
    return AppriseSender(
        keyring=KeyRing.parse(settings.secrets_keys.get_secret_value(), settings.secrets_active_key_id),
        wecom_base_url=settings.wecom_bot_api_base,
        timeout_s=settings.http_timeout_s,
        concurrency=settings.apprise_concurrency,
        host_allowlist=settings.host_allowlist,
        wecom_rate_limit_delay_s=settings.wecom_bot_rate_limit_delay_s,
        dingtalk_base_url=settings.dingtalk_api_base,
        dingtalk_rate_limit_delay_s=settings.dingtalk_rate_limit_delay_s,
        feishu_base_url=settings.feishu_api_base,
        lark_base_url=settings.lark_api_base,
        feishu_rate_limit_delay_s=settings.feishu_rate_limit_delay_s,
    )


@dataclass
class Runtime:
    """What the running service holds: database, senders, broker, notifier."""

    settings: NotifySettings
    store: Store
    senders: dict[str, Sender]
    notifier: Notifier
    broker: KafkaBroker | None = None
    mongo: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def webpush(self) -> WebPushSender:
        sender = self.senders["webpush"]
        assert isinstance(sender, WebPushSender)
        return sender


def make_notifier(
    settings: NotifySettings, store: Store, senders: Mapping[str, Sender], queue: TaskQueue
) -> Notifier:
    """A :class:`Notifier` configured from settings."""
    return Notifier(
        store,
        senders,
        queue,
        retry_delays_s=settings.retry_delays_s,
        lease_s=settings.lease_s,
        limits=Limits(
            settings.digest_threshold_per_minute, settings.rate_limit_per_hour, settings.digest_window_s
        ),
        app_base_url=settings.app_base_url,
        concurrency=settings.send_concurrency,
        counter=StoreCounter(store) if settings.shared_counters else MemoryCounter(),
    )


# request / response bodies ---------------------------------------------------------------------------------
class WeChatQrCodeOut(BaseModel):
    """A temporary QR code that links the caller's WeChat when scanned (WeChat doc "生成带参数的二维码")."""

    ticket: str = Field(description="WeChat's QR ticket (shows the code; not a secret).")
    qrcode_url: str = Field(
        description="The QR image: https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=<urlencoded ticket>."
    )
    content_url: str = Field(
        default="", description="What the code encodes (http://weixin.qq.com/q/...), to draw it yourself."
    )
    expires_at: datetime = Field(description="When the code and its pending link expire (UTC).")


class EmailBindingIn(BaseModel):
    address: EmailStr = Field(examples=["owner@example.com"])


class EmailConfirmIn(BaseModel):
    """The code of a confirmation mail (also the ``#code=`` part of its link)."""

    code: str = Field(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class PushKeys(BaseModel):
    p256dh: str = Field(min_length=40, max_length=200, description="Client public key, base64url (RFC 8291).")
    auth: str = Field(min_length=16, max_length=64, description="Auth secret, base64url (16 bytes).")


class PushSubscriptionIn(BaseModel):
    """A browser's ``PushSubscription.toJSON()``."""

    endpoint: str = Field(
        min_length=10,
        max_length=2048,
        pattern=r"^https?://",
        description="The push service URL: https, resolving to public addresses only (plain http and "
        "non-public hosts only where the operator allowlist NOTIFY_PUSH_ALLOWLIST names them).",
    )
    keys: PushKeys
    expirationTime: float | None = None  # the browser's JSON field name


class AppriseBindingIn(BaseModel):
    """An extra channel as an Apprise URL; the URL is sealed and never shown again."""

    url: str = Field(
        description=f"Apprise URL (secret: carries the token or key). Supported: {SUPPORTED_TEXT}; a WeCom "
        "robot's own https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=... URL is accepted too. A DingTalk, "
        "Feishu or Lark robot with signing enabled takes its secret as SECRET@TOKEN (or ?secret=SECRET).",
        examples=["wecombot://YOUR-ROBOT-KEY"],
    )
    label: str = Field(default="", max_length=64, description="Your name for it, e.g. 'Sales group'.")


class BindingOut(BaseModel):
    channel: Channel
    target_id: str
    active: bool
    endpoint_origin: str | None = None
    display: str | None = Field(
        default=None, description="Apprise bindings: the redacted URL, scheme://host/****.", examples=[None]
    )
    label: str | None = Field(default=None, description="Apprise bindings: the user's label.")
    confirmed: bool | None = Field(
        default=None,
        description="Email bindings: whether the address was confirmed (double opt-in); alerts go only to "
        "confirmed addresses (``active`` stays false until then).",
    )


class BindingRef(BaseModel):
    channel: Channel
    target_id: str


def _binding_out(b: Binding) -> BindingOut:
    origin = None
    if b.channel == "webpush":
        endpoint = str(b.data.get("endpoint", ""))
        origin = "/".join(endpoint.split("/", 3)[:3])
    if b.channel == "apprise":
        return BindingOut(
            channel=b.channel,
            target_id=b.target_id,
            active=b.active,
            display=str(b.data.get("display", "")),
            label=str(b.data.get("label", "")),
        )
    confirmed = bool(b.data.get("confirmed", True)) if b.channel == "email" else None
    return BindingOut(
        channel=b.channel, target_id=b.target_id, active=b.active, endpoint_origin=origin, confirmed=confirmed
    )


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


User = Annotated[Principal, Depends(principal)]
Rt = Annotated[Runtime, Depends(_runtime)]


def create_app(
    settings: NotifySettings | None = None,
    *,
    consume: bool = True,
    senders: dict[str, Sender] | None = None,
) -> FastAPI:
    """The notify app. ``consume=False`` serves the API without Kafka (tasks then go to a memory queue)."""
    settings = settings or NotifySettings()
    configure_logging("notify", settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = make_mongo_client(settings.mongodb_url.get_secret_value(), appname="notify")
        store = Store(mongo[settings.mongodb_database])
        for attempt in range(5):  # the database may still be starting, or drop a connection under load
            try:
                await store.ensure_indexes()
                break
            except ConnectionFailure as exc:
                if attempt == 4:
                    raise
                log.warning("mongodb not ready, retrying", error=type(exc).__name__, attempt=attempt + 1)
                await asyncio.sleep(1.0 + attempt)
        chans = senders if senders is not None else build_senders(settings)
        broker: KafkaBroker | None = None
        queue: TaskQueue = MemoryQueue()
        if consume:
            broker = make_broker(settings, client_id="notify")
            queue = KafkaQueue(broker, settings.topic_prefix)
        notifier = make_notifier(settings, store, chans, queue)
        runtime = Runtime(settings, store, chans, notifier, broker, mongo)
        app.state.runtime = runtime
        if broker is not None:
            register(broker, settings, lambda: runtime.notifier)
            await broker.start()
        try:
            yield
        finally:
            if broker is not None:
                await broker.stop()
            await asyncio.gather(*(s.aclose() for s in chans.values()))
            await mongo.close()

    app = FastAPI(
        title="Laifaxin notify",
        version="1.0",
        description="Alert preferences, channel bindings (WeChat openid, alert email, Web Push), delivery "
        "history. Bearer JWT (HS256) with `sub` and `tenant_id`; every query is scoped to the caller.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    check_secret("NOTIFY_JWT_SECRET", settings.jwt_secret.get_secret_value(), settings.environment)
    app.add_middleware(  # 401 / 413 before a body is read; the unauthenticated WeChat callback: 16 KiB
        RequestGuard,
        verifier=TokenVerifier(
            settings.jwt_secret.get_secret_value(), settings.jwt_audience, settings.jwt_issuer
        ),
        path_limits={"/wechat/callback": 16 * 1024, "/v1/bindings/email/confirm": 4 * 1024},
        # The confirmation code of an alert address is its own credential: the link in the confirmation mail
        # is opened by the address's owner, who need not be signed in.
        public_paths=("/v1/bindings/email/confirm",),
        error_shape="detail",
    )

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(runtime: Rt) -> JSONResponse:
        """Readiness: MongoDB answers ping and, when consuming, the broker is connected."""
        checks: dict[str, bool] = {}
        try:
            checks["mongodb"] = await asyncio.wait_for(ping(runtime.mongo), 3)
        except (TimeoutError, OSError) as exc:
            log.warning("readiness: mongodb", error=type(exc).__name__)
            checks["mongodb"] = False
        except Exception as exc:  # noqa: BLE001  # any driver error means not ready; reported, not raised
            log.warning("readiness: mongodb", error=type(exc).__name__)
            checks["mongodb"] = False
        if runtime.broker is not None:
            checks["kafka"] = bool(runtime.broker.running)
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/v1/preferences", response_model=Preferences, tags=["preferences"])
    async def get_preferences(user: User, runtime: Rt) -> Preferences:
        """The caller's alert preferences (defaults when never saved)."""
        return await runtime.store.get_preferences(user.tenant_id, user.user_id)

    @app.put("/v1/preferences", response_model=Preferences, tags=["preferences"])
    async def put_preferences(prefs: Preferences, user: User, runtime: Rt) -> Preferences:
        """Replace the caller's preferences: categories, channels, quiet hours, digest."""
        await runtime.store.put_preferences(user.tenant_id, user.user_id, prefs)
        return prefs

    @app.get("/v1/bindings", response_model=list[BindingOut], tags=["bindings"])
    async def list_bindings(user: User, runtime: Rt) -> list[BindingOut]:
        """The caller's channel bindings (no push keys are returned)."""
        return [_binding_out(b) for b in await runtime.store.list_bindings(user.tenant_id, user.user_id)]

    @app.put(
        "/v1/bindings/wechat",
        status_code=410,
        tags=["bindings"],
        deprecated=True,
        responses={
            410: {
                "description": "Always: an openid is bound only through the QR flow (code "
                "``wechat_qrcode_required``, with the fix)."
            }
        },
    )
    async def bind_wechat(user: User) -> Response:
        """Refused (410 ``wechat_qrcode_required``): a WeChat openid cannot be typed in, since nothing would
        prove it belongs to the caller. Link WeChat with ``POST /v1/bindings/wechat/qrcode`` instead: scanning
        the code binds the scanner's openid (and re-enables a binding disabled by an unfollow or 43004)."""
        raise HTTPException(
            status.HTTP_410_GONE,
            {
                "code": "wechat_qrcode_required",
                "message": "WeChat accounts are linked by scanning a QR code; an openid cannot be set directly",
                "fix": "POST /v1/bindings/wechat/qrcode, show its qrcode_url, and scan it with WeChat",
            },
        )

    @app.get("/v1/bindings/wechat", response_model=list[BindingOut], tags=["bindings"])
    async def list_wechat(user: User, runtime: Rt) -> list[BindingOut]:
        """The caller's WeChat bindings (``target_id`` = openid; ``active`` false after an unfollow or 43004)."""
        found = await runtime.store.list_bindings(user.tenant_id, user.user_id, ["wechat"])
        return [_binding_out(b) for b in found]

    @app.post(
        "/v1/bindings/wechat/qrcode",
        response_model=WeChatQrCodeOut,
        status_code=201,
        tags=["bindings"],
        responses={
            409: {
                "description": "WeChat is not configured (code ``wechat_not_configured``, with a fix), or the "
                "caller has NOTIFY_WECHAT_MAX_BINDINGS_PER_USER WeChat accounts already "
                "(``too_many_wechat_bindings``)."
            },
            502: {"description": "WeChat refused (``wechat_error`` with ``errcode``) or was unreachable."},
        },
    )
    async def wechat_qrcode(user: User, runtime: Rt) -> WeChatQrCodeOut:
        """Create a temporary QR code that links the caller's WeChat (WeChat docs "生成带参数的二维码",
        "接收事件推送"; wechat_link.py has the flow).

        Stores a pending link (random 48-character scene id -> the caller's tenant and user) that expires with the
        code after ``NOTIFY_WECHAT_QRCODE_EXPIRE_S`` seconds (default 600), and asks WeChat for a
        ``QR_STR_SCENE`` code with that scene (``POST /cgi-bin/qrcode/create``; the access token is refreshed and
        the call retried once on 40001/40014/42001). When the user scans it and follows the account
        (``subscribe``, ``EventKey`` ``qrscene_<scene>``) or already follows (``SCAN``), ``/wechat/callback`` binds
        their openid (re-enabling it after an unfollow); the link is used once. Past
        ``NOTIFY_WECHAT_MAX_BINDINGS_PER_USER`` linked accounts: 409 ``too_many_wechat_bindings``.

        Returns ``{ticket, qrcode_url, content_url, expires_at}``. Errors: 409 ``wechat_not_configured`` (fix:
        set ``NOTIFY_WECHAT_APPID`` and ``NOTIFY_WECHAT_SECRET``); 502 ``wechat_error`` with WeChat's ``errcode``
        (e.g. 40013 invalid AppID, 40125 invalid AppSecret, 40164 IP not whitelisted, 45009 quota) or
        ``wechat_unreachable``. No answer or log line carries the AppSecret or the access token.
        """
        sender = runtime.senders.get("wechat")
        if not isinstance(sender, WeChatSender):
            raise HTTPException(
                409,
                {
                    "code": "wechat_not_configured",
                    "message": "WeChat alerts are not configured on this server",
                    "fix": "Set NOTIFY_WECHAT_APPID and NOTIFY_WECHAT_SECRET to the Official Account's AppID "
                    "and AppSecret (and NOTIFY_WECHAT_TEMPLATE_ID), then restart notify.",
                },
            )
        linked = await runtime.store.list_bindings(user.tenant_id, user.user_id, ["wechat"])
        if len(linked) >= runtime.settings.wechat_max_bindings_per_user:
            raise HTTPException(
                409,
                {
                    "code": "too_many_wechat_bindings",
                    "message": f"at most {runtime.settings.wechat_max_bindings_per_user} WeChat accounts; "
                    "remove one first (DELETE /v1/bindings/wechat/{openid})",
                },
            )
        scene = new_scene_id()
        expire_s = runtime.settings.wechat_qrcode_expire_s
        try:
            code = await sender.create_qrcode(scene, expire_s)
        except WeChatApiError as exc:
            message = sender.scrub(
                f"WeChat refused to create the QR code: errcode {exc.errcode}: {exc.errmsg}"
            )
            log.warning("wechat qrcode refused", errcode=exc.errcode, message=message)
            raise HTTPException(
                502, {"code": "wechat_error", "errcode": exc.errcode, "message": message[:300]}
            ) from None
        except WeChatHttpError as exc:
            log.warning("wechat qrcode failed", status=exc.status)
            raise HTTPException(
                502, {"code": "wechat_unreachable", "message": f"WeChat API answered HTTP {exc.status}"}
            ) from None
        except (OSError, TimeoutError, ValueError) as exc:  # aiohttp.ClientError is an OSError subclass
            log.warning("wechat qrcode failed", error=type(exc).__name__)
            raise HTTPException(
                502, {"code": "wechat_unreachable", "message": f"WeChat API: {type(exc).__name__}"}
            ) from None
        expires_at = datetime.now(UTC) + timedelta(seconds=min(expire_s, code.expire_seconds))
        await runtime.store.create_wechat_link(scene, user.tenant_id, user.user_id, expires_at)
        await _prune_wechat_links(runtime)
        log.info(
            "wechat qrcode created", tenant_id=user.tenant_id, user_id=user.user_id, scene_ref=ref(scene)
        )
        return WeChatQrCodeOut(
            ticket=code.ticket, qrcode_url=code.image_url, content_url=code.url, expires_at=expires_at
        )

    @app.put(
        "/v1/bindings/email",
        response_model=BindingOut,
        tags=["bindings"],
        responses={
            409: {"description": "``too_many_email_addresses`` or ``email_not_configured``."},
            429: {"description": "``too_many_confirmations``: NOTIFY_EMAIL_CONFIRMATIONS_PER_HOUR reached."},
            502: {"description": "``confirmation_not_sent``: the relay refused the confirmation mail."},
        },
    )
    async def bind_email(body: EmailBindingIn, user: User, runtime: Rt) -> BindingOut:
        """Add an alert email address; alerts go to it only once it is confirmed (double opt-in).

        A new (or still unconfirmed) address is stored inactive (``confirmed`` false) and a confirmation mail
        is sent to it through notify's own relay: a link ``{NOTIFY_PUBLIC_BASE_URL}/confirm-email#code=CODE``
        and the code, single use, valid ``NOTIFY_EMAIL_CONFIRM_TTL_S`` (24 h); ``POST
        /v1/bindings/email/confirm`` with the code confirms it. An address already confirmed is returned as it
        is (no mail). Errors: 409 ``too_many_email_addresses`` (over ``NOTIFY_EMAIL_MAX_ADDRESSES_PER_USER``)
        or ``email_not_configured``; 429 ``too_many_confirmations`` (over
        ``NOTIFY_EMAIL_CONFIRMATIONS_PER_HOUR`` mails per user); 502 ``confirmation_not_sent``.
        """
        settings = runtime.settings
        address = str(body.address).lower()
        existing = await runtime.store.list_bindings(user.tenant_id, user.user_id, ["email"])
        same = next((b for b in existing if b.target_id == address), None)
        if same is not None and same.data.get("confirmed", True):
            return _binding_out(same)
        if same is None and len(existing) >= settings.email_max_addresses_per_user:
            raise HTTPException(
                409,
                {
                    "code": "too_many_email_addresses",
                    "message": f"at most {settings.email_max_addresses_per_user} alert email addresses; "
                    "remove one first",
                },
            )
        sender = runtime.senders.get("email")
        if not isinstance(sender, EmailSender):
            raise HTTPException(
                409,
                {
                    "code": "email_not_configured",
                    "message": "email alerts are not configured on this server",
                    "fix": "set NOTIFY_SMTP_HOST (and NOTIFY_SMTP_USERNAME/NOTIFY_SMTP_PASSWORD), then restart",
                },
            )
        now = datetime.now(UTC)
        made = await runtime.store.count_email_confirmations(
            user.tenant_id, user.user_id, now - timedelta(hours=1)
        )
        if made >= settings.email_confirmations_per_hour:
            raise HTTPException(
                429,
                {
                    "code": "too_many_confirmations",
                    "message": f"at most {settings.email_confirmations_per_hour} confirmation mails an hour; "
                    "try again later",
                },
            )
        code = secrets.token_urlsafe(24)
        ttl = settings.email_confirm_ttl_s
        await runtime.store.create_email_confirmation(
            code, user.tenant_id, user.user_id, address, now + timedelta(seconds=ttl)
        )
        pending = Binding(
            user.tenant_id,
            user.user_id,
            "email",
            address,
            {"confirmed": False, "requested_at": now.isoformat()},
            active=False,
        )
        await runtime.store.put_binding(pending)
        link = f"{settings.public_base_url.rstrip('/')}/confirm-email#code={code}"
        mail = build_confirmation(
            sender.sender,
            address,
            code=code,
            link=link,
            expires_in_s=ttl,
            message_id=f"confirm-{secrets.token_hex(12)}",
        )
        outcome = await sender.send_message(mail)
        if outcome.kind != "sent":
            log.warning("email confirmation not sent", detail=outcome.detail[:80])
            raise HTTPException(
                502,
                {
                    "code": "confirmation_not_sent",
                    "message": "the confirmation mail could not be sent; try again later",
                },
            )
        await _prune_confirmations(runtime)
        log.info("email confirmation sent", tenant_id=user.tenant_id, user_id=user.user_id)
        return _binding_out(pending)

    @app.post(
        "/v1/bindings/email/confirm",
        response_model=BindingOut,
        tags=["bindings"],
        responses={404: {"description": "``invalid_code``: unknown, expired or already used."}},
    )
    async def confirm_email(body: EmailConfirmIn, runtime: Rt) -> BindingOut:
        """Confirm an alert email address with the code of its confirmation mail (no bearer token needed: the
        code proves access to the mailbox). Single use; afterwards alerts go to the address. Errors: 404
        ``invalid_code`` (unknown, expired, used, or the address was removed meanwhile)."""
        invalid = HTTPException(
            404,
            {
                "code": "invalid_code",
                "message": "this confirmation code is unknown, expired or already used; add the address again",
            },
        )
        now = datetime.now(UTC)
        used = await runtime.store.use_email_confirmation(body.code, now)
        if used is None:
            raise invalid
        tenant_id, user_id, address = str(used["tenant_id"]), str(used["user_id"]), str(used["address"])
        current = await runtime.store.get_binding(tenant_id, user_id, "email", address)
        if current is None:
            raise invalid
        confirmed = Binding(
            tenant_id, user_id, "email", address, {"confirmed": True, "confirmed_at": now.isoformat()}
        )
        await runtime.store.put_binding(confirmed)
        log.info("email address confirmed", tenant_id=tenant_id, user_id=user_id)
        return _binding_out(confirmed)

    @app.post(
        "/v1/bindings/webpush",
        response_model=BindingOut,
        status_code=201,
        tags=["bindings"],
        responses={
            409: {"description": "``too_many_push_subscriptions``."},
            422: {
                "description": "``https_required``, ``host_not_allowed``, ``invalid_url`` or ``dns_failed``."
            },
        },
    )
    async def bind_webpush(body: PushSubscriptionIn, user: User, runtime: Rt) -> BindingOut:
        """Store a browser push subscription (``PushSubscription.toJSON()``).

        The endpoint must be an https URL whose host resolves to public addresses only (the platform's SSRF
        rule; plain http or a non-public host only where ``NOTIFY_PUSH_ALLOWLIST`` names it); every push
        checks again when it connects. Errors: 422 ``https_required``, ``host_not_allowed``, ``invalid_url``,
        ``dns_failed``; 409 ``too_many_push_subscriptions`` (over ``NOTIFY_WEBPUSH_MAX_SUBSCRIPTIONS_PER_USER``).
        """
        guard = runtime.webpush.guard
        try:
            host, _port = guard.check_url(body.endpoint)
            await guard.check_host(host)
        except EgressRefused as exc:
            raise HTTPException(422, {"code": exc.code, "message": str(exc)}) from None
        except (OSError, TimeoutError):
            raise HTTPException(
                422, {"code": "dns_failed", "message": f"the push service host {host} does not resolve"}
            ) from None
        target_id = push_target_id(body.endpoint)
        existing = await runtime.store.list_bindings(user.tenant_id, user.user_id, ["webpush"])
        limit = runtime.settings.webpush_max_subscriptions_per_user
        if all(b.target_id != target_id for b in existing) and len(existing) >= limit:
            raise HTTPException(
                409,
                {
                    "code": "too_many_push_subscriptions",
                    "message": f"at most {limit} browser subscriptions; remove one first",
                },
            )
        data = {"endpoint": body.endpoint, "keys": body.keys.model_dump()}
        b = Binding(user.tenant_id, user.user_id, "webpush", target_id, data)
        await runtime.store.put_binding(b)
        return _binding_out(b)

    @app.get("/v1/bindings/apprise", response_model=list[BindingOut], tags=["bindings"])
    async def list_apprise(user: User, runtime: Rt) -> list[BindingOut]:
        """The caller's Apprise URLs, redacted (``display``: scheme://host/****); the URLs are never returned."""
        found = await runtime.store.list_bindings(user.tenant_id, user.user_id, ["apprise"])
        return [_binding_out(b) for b in found]

    @app.post("/v1/bindings/apprise", response_model=BindingOut, status_code=201, tags=["bindings"])
    async def bind_apprise(body: AppriseBindingIn, user: User, runtime: Rt) -> BindingOut:
        """Add an extra channel as an Apprise URL (channels/apprise.py has the rules).

        The URL is parsed by Apprise, its host checked (json/form webhooks: public addresses only, unless
        allowlisted), sealed with notify's key ring (NOTIFY_SECRETS_KEYS) and stored; adding the same URL again returns the
        existing binding (re-enabled). Alerts go out while ``apprise`` is among the preference's channels
        (the default). Errors: 422 ``unsupported_apprise_scheme`` (lists the supported schemes),
        ``invalid_apprise_url``, ``host_not_allowed``, ``dns_failed``; 409 ``too_many_apprise_urls``;
        503 when the channel is disabled. No response, error or log line contains the URL.
        """
        sender = runtime.senders.get("apprise")
        if not isinstance(sender, AppriseSender):
            raise HTTPException(503, {"code": "apprise_disabled", "message": "Apprise channels are disabled"})
        try:
            target = await sender.inspect(body.url)
        except AppriseUrlError as exc:
            raise HTTPException(422, {"code": exc.code, "message": str(exc)}) from None
        existing = await runtime.store.list_bindings(user.tenant_id, user.user_id, ["apprise"])
        same = await sender.find_same(target, existing)
        target_id = same.target_id if same is not None else ""
        if not target_id:
            if len(existing) >= runtime.settings.apprise_max_urls_per_user:
                raise HTTPException(
                    409,
                    {
                        "code": "too_many_apprise_urls",
                        "message": f"at most {runtime.settings.apprise_max_urls_per_user} Apprise URLs; "
                        "remove one first",
                    },
                )
            target_id = new_target_id()
        data = {
            "credential": sender.seal(
                body.url, tenant_id=user.tenant_id, user_id=user.user_id, target_id=target_id
            ),
            "scheme": target.scheme,
            "display": target.display,
            "label": body.label,
        }
        b = Binding(user.tenant_id, user.user_id, "apprise", target_id, data)
        await runtime.store.put_binding(b)
        log.info("apprise binding added", scheme=target.scheme, target_id=target_id)
        return _binding_out(b)

    @app.delete("/v1/bindings/{channel}/{target_id}", status_code=204, tags=["bindings"])
    async def unbind(channel: Channel, target_id: str, user: User, runtime: Rt) -> Response:
        """Remove one of the caller's bindings."""
        if not await runtime.store.delete_binding(user.tenant_id, user.user_id, channel, target_id):
            raise HTTPException(404, "no such binding")
        return Response(status_code=204)

    @app.get("/v1/vapid-public-key", tags=["bindings"])
    async def vapid_public_key(runtime: Rt) -> dict[str, str]:
        """The VAPID application server key for ``pushManager.subscribe`` (base64url P-256 point)."""
        return {"publicKey": runtime.webpush.public_key}

    @app.get("/v1/deliveries", tags=["deliveries"])
    async def deliveries(
        user: User,
        runtime: Rt,
        event_id: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        """Delivery history of the caller, newest first: per message (event) and channel, the status
        (pending, sent, delivered, retrying, deferred, digested, failed, skipped), attempts and last error."""
        docs = await runtime.store.history(user.tenant_id, user.user_id, event_id=event_id, limit=limit)
        return [_jsonable(d) for d in docs]

    @app.get("/wechat/callback", tags=["wechat"], response_class=PlainTextResponse)
    async def wechat_verify(
        signature: str, timestamp: str, nonce: str, echostr: str, runtime: Rt
    ) -> PlainTextResponse:
        """Server URL verification: echo ``echostr`` when the signature matches and the request is fresh
        (403 otherwise, as for events)."""
        _check_signature(runtime.settings, signature, timestamp, nonce)
        await _check_fresh(runtime, timestamp, nonce)
        return PlainTextResponse(echostr)

    @app.post("/wechat/callback", tags=["wechat"], response_class=PlainTextResponse)
    async def wechat_event(
        request: Request,
        runtime: Rt,
        signature: str = "",
        timestamp: str = "",
        nonce: str = "",
        encrypt_type: str = "",
        msg_signature: str = "",
    ) -> PlainTextResponse:
        """Event push from WeChat ("接收事件推送"), answered ``success``; plaintext, compatible or safe mode.

        The signature (``signature``, ``timestamp``, ``nonce`` query parameters) is checked first: 403 when wrong;
        then replay protection (when ``NOTIFY_WECHAT_CALLBACK_TOKEN`` is set): 403 when ``timestamp`` is further
        than ``NOTIFY_WECHAT_CALLBACK_MAX_SKEW_S`` (300 s) from our clock, or its (``timestamp``, ``nonce``) was
        already accepted; 400 for a body that is not XML. With ``encrypt_type=aes`` (safe or compatible mode) the ``Encrypt``
        element is checked against ``msg_signature`` (403 when wrong) and decrypted with
        ``NOTIFY_WECHAT_ENCODING_AES_KEY`` (:mod:`laifaxin_notify.wechat_crypto`): 400 when it cannot be (wrong
        key, another AppID's message), 503 when that setting is empty; each logged with the fix.

        Events: ``TEMPLATESENDJOBFINISH`` (``MsgID``, ``Status``) updates the delivery; ``subscribe`` with
        ``EventKey`` ``qrscene_<scene>`` or ``SCAN`` with ``<scene>`` binds the sender's openid (``FromUserName``)
        to the user of a pending QR link (``POST /v1/bindings/wechat/qrcode``); ``unsubscribe`` marks that openid's WeChat bindings inactive (as errcode 43004 does). Idempotent: WeChat
        redelivers an event unanswered within 5 s. Handling waits at most ``CALLBACK_BUDGET_S`` (4 s), then goes on
        in the background; a failure is logged and still answered ``success`` (the user can scan again).
        """
        _check_signature(runtime.settings, signature, timestamp, nonce)
        await _check_fresh(runtime, timestamp, nonce)
        root = _parse_xml(await request.body())
        if encrypt_type.lower() == "aes":
            root = _decrypted(runtime.settings, root, timestamp, nonce, msg_signature)
        ev = WeChatEvent.from_xml(root)
        if ev.event == "TEMPLATESENDJOBFINISH":
            msgid = (root.findtext("MsgID") or root.findtext("MsgId") or "").strip()
            state = (root.findtext("Status") or "").strip()
            updated = await runtime.notifier.wechat_receipt(msgid, state)
            log.info("wechat receipt", msgid=msgid, status=state, updated=updated)
        elif ev.event in ("subscribe", "SCAN", "unsubscribe"):
            await _handle_in_budget(runtime, ev)
        return PlainTextResponse("success")

    static = resources.files("laifaxin_notify").joinpath("static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(static.joinpath("index.html").read_text(encoding="utf-8"))

    @app.get("/confirm-email", response_class=HTMLResponse, include_in_schema=False)
    async def confirm_email_page() -> HTMLResponse:
        """The page a confirmation mail links to (``#code=...``: the code stays in the browser); its button
        posts the code to ``/v1/bindings/email/confirm`` (a link preview or mail scanner confirms nothing)."""
        return HTMLResponse(static.joinpath("confirm-email.html").read_text(encoding="utf-8"))

    @app.get("/sw.js", include_in_schema=False)
    async def service_worker() -> Response:
        return Response(
            static.joinpath("sw.js").read_text(encoding="utf-8"),
            media_type="text/javascript",
            headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"},
        )

    @app.get("/notify.js", include_in_schema=False)
    async def page_script() -> Response:
        return Response(
            static.joinpath("notify.js").read_text(encoding="utf-8"), media_type="text/javascript"
        )

    return app


LINK_PRUNE_EVERY = timedelta(hours=1)
"""How often a process deletes expired QR links (on the next ``POST /v1/bindings/wechat/qrcode``)."""
LINK_KEEP_AFTER_EXPIRY = timedelta(hours=1)
"""How long an expired link is kept: a consumed link still answers WeChat's redelivery of its event (WeChat
retries within seconds)."""


async def _prune_wechat_links(runtime: Runtime) -> None:
    """Delete QR links expired over :data:`LINK_KEEP_AFTER_EXPIRY` ago, at most every :data:`LINK_PRUNE_EVERY`
    per process; a store failure is logged and left for the next time (the code was created)."""
    now = datetime.now(UTC)
    last: datetime | None = runtime.extra.get("wechat_links_pruned_at")
    if last is not None and now - last < LINK_PRUNE_EVERY:
        return
    runtime.extra["wechat_links_pruned_at"] = now
    try:
        deleted = await runtime.store.prune_wechat_links(now - LINK_KEEP_AFTER_EXPIRY)
    except PyMongoError as exc:
        log.warning("expired wechat links not pruned", error=type(exc).__name__)
        return
    if deleted:
        log.info("expired wechat links pruned", deleted=deleted)


async def _handle_in_budget(runtime: Runtime, ev: WeChatEvent) -> None:
    """Run :func:`handle_event` for at most :data:`CALLBACK_BUDGET_S`; later it finishes in the background.

    Errors are logged (event type and the openid's :func:`ref` only), never raised: the callback answers anyway.
    """
    task = asyncio.create_task(
        handle_event(
            runtime.store,
            ev,
            datetime.now(UTC),
            max_bindings=runtime.settings.wechat_max_bindings_per_user,
        )
    )
    pending: set[asyncio.Task[Any]] = runtime.extra.setdefault("wechat_event_tasks", set())
    pending.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        pending.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error(
                "wechat event failed",
                event=ev.event,
                openid_ref=ref(ev.openid),
                error=type(t.exception()).__name__,
            )

    task.add_done_callback(done)
    try:
        await asyncio.wait_for(asyncio.shield(task), CALLBACK_BUDGET_S)
    except TimeoutError:
        log.warning("wechat event still being handled; answered", event=ev.event, openid_ref=ref(ev.openid))
    except Exception:  # noqa: BLE001, S110  # logged by done(); WeChat must get its answer
        pass


CONFIRMATION_PRUNE_EVERY = timedelta(hours=1)
CONFIRMATION_KEEP_AFTER_EXPIRY = timedelta(days=1)
NONCE_PRUNE_EVERY = timedelta(minutes=5)


async def _prune_confirmations(runtime: Runtime) -> None:
    """Delete email confirmations expired over a day ago, at most hourly per process (no TTL on FerretDB v1)."""
    now = datetime.now(UTC)
    last: datetime | None = runtime.extra.get("confirmations_pruned_at")
    if last is not None and now - last < CONFIRMATION_PRUNE_EVERY:
        return
    runtime.extra["confirmations_pruned_at"] = now
    try:
        await runtime.store.prune_email_confirmations(now - CONFIRMATION_KEEP_AFTER_EXPIRY)
    except PyMongoError as exc:
        log.warning("expired email confirmations not pruned", error=type(exc).__name__)


async def _check_fresh(runtime: Runtime, timestamp: str, nonce: str) -> None:
    """Replay protection of signed WeChat callbacks (the signature covers ``timestamp`` and ``nonce``, WeChat
    docs "接入指南"/"消息加解密说明"): the timestamp within ``NOTIFY_WECHAT_CALLBACK_MAX_SKEW_S`` of our clock, and
    each (timestamp, nonce) accepted once (collection ``wechat_nonces``, shared by every worker). Without a
    callback token (development) nothing is signed, so nothing is checked.

    Raises:
        HTTPException: 403 for a stale, future or malformed timestamp or a replayed pair.
    """
    settings = runtime.settings
    if not settings.wechat_callback_token.get_secret_value():
        return
    skew = settings.wechat_callback_max_skew_s
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > skew:
        log.warning("wechat callback refused: timestamp outside the window", max_skew_s=skew)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "stale or future timestamp")
    now = datetime.now(UTC)
    if not await runtime.store.claim_wechat_nonce(timestamp, nonce, now):
        log.warning("wechat callback refused: replayed timestamp and nonce")
        raise HTTPException(status.HTTP_403_FORBIDDEN, "replayed request")
    last: datetime | None = runtime.extra.get("wechat_nonces_pruned_at")
    if last is None or now - last >= NONCE_PRUNE_EVERY:
        runtime.extra["wechat_nonces_pruned_at"] = now
        try:  # a pair is useless once its timestamp is out of the window (both ways: 2 x skew)
            await runtime.store.prune_wechat_nonces(now - timedelta(seconds=2 * skew + 60))
        except PyMongoError as exc:
            log.warning("old wechat nonces not pruned", error=type(exc).__name__)


def _parse_xml(body: bytes) -> Any:
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise HTTPException(400, "malformed XML") from None


def _decrypted(settings: NotifySettings, root: Any, timestamp: str, nonce: str, signature: str) -> Any:
    """The inner event of an encrypted callback (``<Encrypt>``), checked and decrypted.

    Raises:
        HTTPException: 503 without ``NOTIFY_WECHAT_ENCODING_AES_KEY``; 403 for a wrong ``msg_signature``; 400
            when the ``Encrypt`` text is missing or cannot be decrypted for this AppID.
    """
    key_text = settings.wechat_encoding_aes_key.get_secret_value()
    if not key_text:
        log.error(
            "encrypted wechat event refused: NOTIFY_WECHAT_ENCODING_AES_KEY is not set",
            fix="set NOTIFY_WECHAT_ENCODING_AES_KEY to the EncodingAESKey of the Official Account "
            "(基本配置 → 服务器配置), or switch its 消息加解密方式 to 明文模式 (plaintext)",
        )
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "encrypted events need the EncodingAESKey")
    encrypted = (root.findtext("Encrypt") or "").strip()
    if not encrypted:
        raise HTTPException(400, "encrypt_type=aes without an Encrypt element")
    try:
        check_msg_signature(
            settings.wechat_callback_token.get_secret_value(), timestamp, nonce, encrypted, signature
        )
        inner = decrypt(aes_key(key_text), settings.wechat_appid, encrypted)
    except WeChatCryptoError as exc:
        log.warning(
            "encrypted wechat event refused",
            reason=exc.reason,
            fix="check NOTIFY_WECHAT_ENCODING_AES_KEY, NOTIFY_WECHAT_CALLBACK_TOKEN and NOTIFY_WECHAT_APPID "
            "against 基本配置 → 服务器配置 of the Official Account",
        )
        code = status.HTTP_403_FORBIDDEN if exc.reason == "bad_signature" else status.HTTP_400_BAD_REQUEST
        raise HTTPException(code, exc.reason) from None
    return _parse_xml(inner)


def _check_signature(settings: NotifySettings, signature: str, timestamp: str, nonce: str) -> None:
    """WeChat's callback signature: SHA-1 of the sorted concatenation of token, timestamp and nonce."""
    token = settings.wechat_callback_token.get_secret_value()
    if not token:
        if settings.environment == "production":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "callback token not configured")
        return
    expected = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324  # WeChat's protocol
    if not hmac.compare_digest(expected, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "bad signature")


def _jsonable(doc: Document) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        out[k] = v.isoformat() if hasattr(v, "isoformat") else v
    return out
