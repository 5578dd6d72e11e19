"""Fixtures for notify against the real MongoDB-wire server and the loopback WeChat / Web Push services."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn

from laifaxin_notify.channels.webpush import WebPushSender, load_vapid
from laifaxin_notify.channels.wechat import WeChatSender
from laifaxin_notify.egress import EgressGuard
from laifaxin_notify.pipeline import Limits, MemoryQueue, Notifier
from laifaxin_notify.settings import NotifySettings
from laifaxin_notify.store import Binding, Store, push_target_id
from laifaxin_shared.events import MailClassified
from laifaxin_shared.kafka import publish_event
from laifaxin_shared.topics import spec
from tests.support.kafka import wait_committed
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

APPID, SECRET, TEMPLATE = "wx-test-app", "test-app-secret", "TPL_NEW_REPLY"
LOOPBACK = "127.0.0.0/8"
"""The operator allowlist the tests give notify for the loopback push service and webhooks (http, 127.0.0.1)."""


@pytest.fixture
async def wechat() -> AsyncIterator[WeChatServer]:
    async with WeChatServer(apps={APPID: SECRET}, templates={TEMPLATE}) as server:
        yield server


@pytest.fixture
async def push() -> AsyncIterator[PushService]:
    async with PushService() as service:
        yield service


@pytest.fixture
async def store(mongo_db: Any) -> Store:
    s = Store(mongo_db)
    await s.ensure_indexes()
    return s


@pytest.fixture
async def wechat_sender(wechat: WeChatServer) -> AsyncIterator[WeChatSender]:
    sender = WeChatSender(
        base_url=wechat.base_url, appid=APPID, secret=SECRET, template_id=TEMPLATE, quota_delay_s=7200
    )
    yield sender
    await sender.aclose()


@pytest.fixture
async def push_sender() -> AsyncIterator[WebPushSender]:
    sender = WebPushSender(
        vapid=load_vapid(""), subject="mailto:ops@laifa.xin", ttl_s=3600, guard=EgressGuard(LOOPBACK)
    )
    yield sender
    await sender.aclose()


@pytest.fixture
def make_notifier(store: Store) -> Callable[..., tuple[Notifier, MemoryQueue]]:
    def make(senders: dict[str, Any], **kw: Any) -> tuple[Notifier, MemoryQueue]:
        queue = MemoryQueue()
        kw.setdefault("retry_delays_s", [0.05, 0.1, 0.2])
        kw.setdefault(
            "limits", Limits(digest_threshold_per_minute=5, rate_limit_per_hour=1000, digest_window_s=60)
        )
        return Notifier(store, senders, queue, **kw), queue

    return make


def classified(n: int = 0, **update: Any) -> MailClassified:
    """An example mail.classified event with a fresh event id (``n`` varies the UID)."""
    base = MailClassified.model_validate(spec("mail.classified").examples()[0])
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "category": "inquiry",
        "initial_sync": False,
        "ref": base.ref.model_copy(update={"uid": 1000 + n}),
        "subject": f"Quotation request #{n}",
    }
    fields.update(update)
    return base.model_copy(update=fields)


async def bind_wechat(store: Store, event: MailClassified, openid: str = "oUSER1") -> Binding:
    b = Binding(event.tenant_id, event.user_id, "wechat", openid, {})
    await store.put_binding(b)
    return b


async def bind_push(store: Store, event: MailClassified, subscription: dict[str, Any]) -> Binding:
    data = {"endpoint": subscription["endpoint"], "keys": subscription["keys"]}
    b = Binding(event.tenant_id, event.user_id, "webpush", push_target_id(subscription["endpoint"]), data)
    await store.put_binding(b)
    return b


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port in this event loop; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before starting")
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def alert_handled(running: dict[str, Any], ev: MailClassified) -> None:
    """Publish ``ev`` and wait until notify's consumer committed it (handled, whatever it sent); ``running``
    is a running service's fixture dict (``settings``, ``producer``)."""
    settings: NotifySettings = running["settings"]
    record = await publish_event(running["producer"], ev, prefix=settings.topic_prefix)
    await wait_committed(
        settings.kafka_bootstrap_servers,
        settings.consumer_group,
        record.topic,
        record.partition,
        record.offset,
    )
