"""The whole service in one process: FastAPI app + FastStream consumers on the real Kafka and FerretDB, with the
loopback WeChat and Web Push services; the API over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pydantic import SecretStr

from laifaxin_notify.app import create_app
from laifaxin_notify.auth import issue_token
from laifaxin_notify.replay import replay_dlq
from laifaxin_notify.settings import NotifySettings
from laifaxin_notify.store import Binding, Store
from laifaxin_shared.events import MailboxRemoved, MailClassified
from laifaxin_shared.kafka import ensure_topics, make_broker, publish_event
from laifaxin_shared.topics import TOPICS
from tests.conftest import MailAccount
from tests.integration.notify.conftest import APPID, SECRET, TEMPLATE, alert_handled, classified, serve
from tests.support.infra import Servers
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration

NOTIFY_TOPICS = [
    t
    for name, t in TOPICS.items()
    if name.startswith("notify.")
    or name
    in (
        "mail.classified",
        "mail.classified.dlq",
        "mailbox.removed",
        "mailbox.verified",
        "mailbox.sync_status",
    )
]


def make_settings(servers: Servers, prefix: str, wechat: WeChatServer, **kw: Any) -> NotifySettings:
    kw.setdefault("push_allowlist", "127.0.0.0/8")  # the loopback push service: http on 127.0.0.1
    return NotifySettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap_servers,
        mongodb_url=SecretStr(servers.mongodb_url),
        mongodb_database=f"notify_{uuid.uuid4().hex[:10]}",
        topic_prefix=prefix,
        environment="test",
        jwt_secret=SecretStr("integration-jwt-secret-0123456789abcdef"),
        wechat_api_base=wechat.base_url,
        wechat_appid=APPID,
        wechat_secret=SecretStr(SECRET),
        wechat_template_id=TEMPLATE,
        retry_delays_s=[0.2, 0.4, 0.8],
        max_wait_in_handler_s=1.0,
        log_json=False,
        log_level="WARNING",
        **kw,
    )


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.1)


@pytest.fixture
async def running(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer, push: PushService
) -> AsyncIterator[dict[str, Any]]:
    async with run_service(make_settings(real_servers, topic_prefix, wechat), topic_prefix) as api:
        yield api


def relay_settings(account: MailAccount) -> dict[str, Any]:
    """Settings that send notify's mail (alerts, confirmations) through the local SMTP relay as ``account``."""
    return {
        "smtp_host": account.host,
        "smtp_port": account.smtps_port,
        "smtp_security": "ssl",
        "smtp_username": account.email,
        "smtp_password": SecretStr(account.password),
        "smtp_ca_file": str(account.servers.ca_file),
        "smtp_from": f"Laifaxin alerts <{account.email}>",
    }


@pytest.fixture
async def running_with_email(
    real_servers: Servers,
    topic_prefix: str,
    wechat: WeChatServer,
    push: PushService,
    mail_account: MailAccount,
) -> AsyncIterator[dict[str, Any]]:
    """:func:`running` with email alerts through the local relay (``"mail_account"``: the relay account)."""
    settings = make_settings(real_servers, topic_prefix, wechat, **relay_settings(mail_account))
    async with run_service(settings, topic_prefix) as api:
        yield {**api, "mail_account": mail_account}


async def bind_openid(running: dict[str, Any], tenant_id: str, user_id: str, openid: str) -> None:
    """Bind a WeChat openid as a scanned QR code does (``PUT /v1/bindings/wechat`` is refused: openids are
    linked only through the QR flow, test_wechat_link.py)."""
    store: Store = running["app"].state.runtime.store
    await store.put_binding(Binding(tenant_id, user_id, "wechat", openid, {}))


@contextlib.asynccontextmanager
async def run_service(settings: NotifySettings, topic_prefix: str) -> AsyncIterator[dict[str, Any]]:
    """The whole service (API and Kafka consumers) with its topics, a test producer and an HTTP client:
    ``{"settings", "app", "http", "producer", "base_url"}``."""
    await ensure_topics(
        settings.kafka_bootstrap_servers, NOTIFY_TOPICS, prefix=topic_prefix, replication_factor=1
    )
    app = create_app(settings)
    producer = make_broker(settings, client_id="test-producer")
    async with serve(app) as base_url, producer:
        await producer.start()
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            yield {"settings": settings, "app": app, "http": http, "producer": producer, "base_url": base_url}
        await app.state.runtime.mongo.drop_database(settings.mongodb_database)


def auth(settings: NotifySettings, tenant: str, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, tenant, user)}"}


def new_user(running: dict[str, Any]) -> tuple[httpx.AsyncClient, MailClassified, dict[str, str]]:
    """A running service's API client, a ``mail.classified`` event of a fresh user, and that user's headers."""
    ev = classified()
    return running["http"], ev, auth(running["settings"], ev.tenant_id, ev.user_id)


async def test_api_bindings_preferences_scoping_and_openapi(
    running_with_email: dict[str, Any], push: PushService
) -> None:
    running = running_with_email
    http: httpx.AsyncClient = running["http"]
    settings: NotifySettings = running["settings"]
    me, other = auth(settings, "tenant-a", "u1"), auth(settings, "tenant-b", "u1")
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"mongodb": True, "kafka": True}
    assert (await http.get("/v1/preferences")).status_code == 401
    bad = await http.get("/v1/preferences", headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401 and "not.a.jwt" not in bad.text

    prefs = (await http.get("/v1/preferences", headers=me)).json()
    assert prefs["categories"] == ["to_reply", "inquiry"]
    new = {
        **prefs,
        "categories": ["inquiry", "ooo"],
        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Asia/Shanghai"},
    }
    assert (await http.put("/v1/preferences", json=new, headers=me)).status_code == 200
    assert (await http.get("/v1/preferences", headers=me)).json()["categories"] == ["inquiry", "ooo"]
    assert (await http.get("/v1/preferences", headers=other)).json()["categories"] == ["to_reply", "inquiry"]
    bad_zone = {**new, "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Nowhere/Land"}}
    assert (await http.put("/v1/preferences", json=bad_zone, headers=me)).status_code == 422

    typed = await http.put("/v1/bindings/wechat", json={"openid": "oABC_123"}, headers=me)
    assert typed.status_code == 410 and typed.json()["detail"]["code"] == "wechat_qrcode_required"
    await bind_openid(running, "tenant-a", "u1", "oABC_123")
    email = await http.put("/v1/bindings/email", json={"address": "Owner@Example.com"}, headers=me)
    assert email.status_code == 200
    assert email.json()["confirmed"] is False and email.json()["active"] is False  # until confirmed
    sub = push.subscribe()
    created = await http.post("/v1/bindings/webpush", json=sub, headers=me)
    assert created.status_code == 201
    listed = (await http.get("/v1/bindings", headers=me)).json()
    assert {(b["channel"], b["target_id"]) for b in listed} == {
        ("wechat", "oABC_123"),
        ("email", "owner@example.com"),
        ("webpush", created.json()["target_id"]),
    }
    assert sub["keys"]["auth"] not in json.dumps(listed)
    assert (await http.get("/v1/bindings", headers=other)).json() == []
    assert (await http.delete("/v1/bindings/wechat/oABC_123", headers=other)).status_code == 404
    assert (await http.delete("/v1/bindings/wechat/oABC_123", headers=me)).status_code == 204

    key = (await http.get("/v1/vapid-public-key")).json()["publicKey"]
    assert len(key) == 87  # base64url of a 65-byte uncompressed P-256 point
    spec = (await http.get("/openapi.json")).json()
    assert {"/v1/preferences", "/v1/bindings/webpush", "/v1/deliveries", "/v1/vapid-public-key"} <= set(
        spec["paths"]
    )
    page = await http.get("/")
    assert "notify.js" in page.text and (await http.get("/sw.js")).headers["content-type"].startswith(
        "text/javascript"
    )


async def test_mail_classified_to_alerts_through_kafka(
    running: dict[str, Any], wechat: WeChatServer, push: PushService
) -> None:
    settings: NotifySettings = running["settings"]
    producer: KafkaBroker = running["producer"]
    http, ev, me = new_user(running)
    await bind_openid(running, ev.tenant_id, ev.user_id, "oKAFKA")
    sub = push.subscribe()
    await http.post("/v1/bindings/webpush", json=sub, headers=me)
    wechat.script(-1)  # the first WeChat send fails: it must come back through notify.retry.0

    await publish_event(producer, ev, prefix=settings.topic_prefix)
    await publish_event(producer, ev, prefix=settings.topic_prefix)  # a duplicate record
    await producer.publish(b"{not json", settings.topic("mail.classified"), key=ev.ref.mailbox_id.encode())

    await wait_for(lambda: len(wechat.sent) == 1 and len(push.received) == 1)
    await asyncio.sleep(1.0)
    assert len(wechat.sent) == 1 and len(push.received) == 1

    async def statuses() -> dict[str, str]:
        rows = (await http.get("/v1/deliveries", params={"event_id": str(ev.event_id)}, headers=me)).json()
        return {r["channel"]: r["status"] for r in rows}

    await wait_for(lambda: _eq(statuses(), {"wechat": "sent", "webpush": "sent"}))
    rows = (await http.get("/v1/deliveries", params={"event_id": str(ev.event_id)}, headers=me)).json()
    assert next(r for r in rows if r["channel"] == "wechat")["attempts"] == 2

    # TEMPLATESENDJOBFINISH receipt
    msgid = wechat.sent[0].msgid
    xml = (
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oKAFKA]]></FromUserName>"
        f"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
        f"<MsgID>{msgid}</MsgID><Status><![CDATA[success]]></Status></xml>"
    )
    assert (await http.post("/wechat/callback", content=xml)).text == "success"
    assert (await statuses())["wechat"] == "delivered"

    poison = await read_topic(settings, settings.topic("mail.classified.dlq"), 1)
    assert poison[0].value == b"{not json"


async def _eq(coro: Any, expected: Any) -> bool:
    return bool(await coro == expected)


async def read_topic(settings: NotifySettings, topic: str, expect: int, timeout: float = 20.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < expect:
                for recs in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def test_dead_letter_and_replay(running: dict[str, Any], wechat: WeChatServer) -> None:
    http: httpx.AsyncClient = running["http"]
    settings: NotifySettings = running["settings"]
    producer: KafkaBroker = running["producer"]
    ev = classified()
    me = auth(settings, ev.tenant_id, ev.user_id)
    await bind_openid(running, ev.tenant_id, ev.user_id, "oDLQ")
    wechat.templates.clear()  # 40037 invalid template_id: configuration error, dead-lettered
    await publish_event(producer, ev, prefix=settings.topic_prefix)
    [dead] = await read_topic(settings, settings.topic("notify.dlq"), 1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["x-attempt"] == "1" and "x-due-at" in headers
    assert "40037" in json.loads(dead.value)["last_error"]
    assert wechat.sent == []

    wechat.templates.add(TEMPLATE)  # the operator fixed the configuration
    result = await replay_dlq(settings, idle_s=1.0)
    assert result["replayed"] == 1
    await wait_for(lambda: len(wechat.sent) == 1)
    await wait_for(lambda: _eq(_status(http, me), "sent"))


async def _status(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    rows = (await http.get("/v1/deliveries", headers=headers)).json()
    return str(rows[0]["status"]) if rows else ""


async def test_mailbox_removed_is_consumed(running: dict[str, Any], wechat: WeChatServer) -> None:
    settings: NotifySettings = running["settings"]
    producer: KafkaBroker = running["producer"]
    ev = classified()
    await bind_openid(running, ev.tenant_id, ev.user_id, "oREMOVED")
    await publish_event(
        producer,
        MailboxRemoved(tenant_id=ev.tenant_id, mailbox_id=ev.ref.mailbox_id),
        prefix=settings.topic_prefix,
    )
    store = running["app"].state.runtime.store
    await wait_for(lambda: store.mailbox_removed(ev.tenant_id, ev.ref.mailbox_id))
    await alert_handled(running, ev)  # the event was handled, not merely not handled yet
    assert wechat.sent == []
