"""The Apprise channel through the whole service: the HTTP API (real uvicorn, bearer JWT, real FerretDB) that
adds, lists and removes Apprise URLs, and the Kafka path (real broker) from mail.classified through the retry
topics and the dead-letter topic, against the loopback WeCom robot and webhook (tests/support/webhook_server.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker

from laifaxin_notify.app import create_app
from laifaxin_notify.settings import NotifySettings
from laifaxin_shared.kafka import publish_event
from tests.integration.notify.conftest import classified, serve
from tests.integration.notify.test_service import (
    auth,
    make_settings,
    new_user,
    read_topic,
    run_service,
    wait_for,
)
from tests.support.infra import Servers
from tests.support.webhook_server import WebhookServer
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration

KEY = "5b1f0c7e-1111-4c2d-9e3f-a0b1c2d3e4f5"
GONE = "0000aaaa-dead-beef-0000-removedrobot"


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookServer]:
    async with WebhookServer(robot_keys={KEY}) as server:
        yield server


def apprise_settings(
    servers: Servers, prefix: str, wechat: WeChatServer, hooks: WebhookServer, **kw: Any
) -> NotifySettings:
    return make_settings(
        servers,
        prefix,
        wechat,
        wecom_bot_api_base=hooks.base_url,
        host_allowlist="127.0.0.0/8",
        **kw,
    )


@pytest.fixture
async def api(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer, hooks: WebhookServer
) -> AsyncIterator[dict[str, Any]]:
    """The API without consumers (tasks go to a memory queue)."""
    settings = apprise_settings(real_servers, topic_prefix, wechat, hooks, apprise_max_urls_per_user=3)
    app = create_app(settings, consume=False)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield {"settings": settings, "app": app, "http": http}


async def test_api_adds_lists_and_removes_apprise_urls_scoped_to_the_caller(
    api: dict[str, Any], hooks: WebhookServer, capfd: pytest.CaptureFixture[str]
) -> None:
    http: httpx.AsyncClient = api["http"]
    settings: NotifySettings = api["settings"]
    me, other = auth(settings, "tenant-a", "u1"), auth(settings, "tenant-b", "u1")
    robot = {"url": f"wecombot://{KEY}", "label": "Sales group"}
    assert (await http.post("/v1/bindings/apprise", json=robot)).status_code == 401

    added = await http.post("/v1/bindings/apprise", json=robot, headers=me)
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["channel"] == "apprise" and body["active"] is True and body["label"] == "Sales group"
    assert body["display"] == "wecombot://qyapi.weixin.qq.com/****"
    native = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"
    again = await http.post("/v1/bindings/apprise", json={"url": native}, headers=me)
    assert again.status_code == 201 and again.json()["target_id"] == body["target_id"]  # the same robot

    port = hooks.base_url.rsplit(":", 1)[1]
    hook = await http.post(
        "/v1/bindings/apprise", json={"url": f"json://127.0.0.1:{port}/hooks/x?-token=s3cr3t"}, headers=me
    )
    assert hook.status_code == 201 and hook.json()["display"] == f"json://127.0.0.1:{port}/****"

    unsupported = await http.post(
        "/v1/bindings/apprise", json={"url": "xml://example.com/s3cr3t"}, headers=me
    )
    assert unsupported.status_code == 422
    detail = unsupported.json()["detail"]
    assert detail["code"] == "unsupported_apprise_scheme"
    for scheme in ("wecombot://", "dingtalk://", "feishu://", "lark://", "tgram://", "slack://", "json://"):
        assert scheme in detail["message"]
    private = await http.post("/v1/bindings/apprise", json={"url": "json://10.1.2.3/hook"}, headers=me)
    assert private.status_code == 422 and private.json()["detail"]["code"] == "host_not_allowed"
    bad = await http.post("/v1/bindings/apprise", json={"url": "tgram://s3cr3t-no-chat"}, headers=me)
    assert bad.status_code == 422 and bad.json()["detail"]["code"] == "invalid_apprise_url"

    mine = (await http.get("/v1/bindings/apprise", headers=me)).json()
    assert {b["target_id"] for b in mine} == {body["target_id"], hook.json()["target_id"]}
    everything = (await http.get("/v1/bindings", headers=me)).json()
    assert {b["display"] for b in everything if b["channel"] == "apprise"} == {
        "wecombot://qyapi.weixin.qq.com/****",
        f"json://127.0.0.1:{port}/****",
    }
    assert (await http.get("/v1/bindings/apprise", headers=other)).json() == []
    assert (await http.delete(f"/v1/bindings/apprise/{body['target_id']}", headers=other)).status_code == 404

    await http.post("/v1/bindings/apprise", json={"url": "dingtalk://abcdef123456/"}, headers=me)
    full = await http.post("/v1/bindings/apprise", json={"url": "feishu://abcdef123456/"}, headers=me)
    assert full.status_code == 409 and full.json()["detail"]["code"] == "too_many_apprise_urls"

    assert (await http.delete(f"/v1/bindings/apprise/{body['target_id']}", headers=me)).status_code == 204
    assert body["target_id"] not in {
        b["target_id"] for b in (await http.get("/v1/bindings", headers=me)).json()
    }

    spec = (await http.get("/openapi.json")).json()
    assert {"get", "post"} <= set(spec["paths"]["/v1/bindings/apprise"])

    stored = [d async for d in api["app"].state.runtime.store.bindings.find({"channel": "apprise"})]
    assert stored and all(d["data"]["credential"]["ciphertext"] for d in stored)
    out, err = capfd.readouterr()
    seen = "\n".join(
        [added.text, again.text, hook.text, unsupported.text, bad.text, full.text, out, err]
        + [json.dumps(d, default=str) for d in stored]
        + [json.dumps(everything)]
    )
    for secret in (KEY, "s3cr3t", "abcdef123456"):
        assert secret not in seen


@pytest.fixture
async def running(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer, hooks: WebhookServer
) -> AsyncIterator[dict[str, Any]]:
    """The whole service: API and Kafka consumers."""
    async with run_service(apprise_settings(real_servers, topic_prefix, wechat, hooks), topic_prefix) as api:
        yield api


async def test_robot_errcode_retries_through_kafka_and_bad_robot_is_dead_lettered(
    running: dict[str, Any], hooks: WebhookServer
) -> None:
    settings: NotifySettings = running["settings"]
    producer: KafkaBroker = running["producer"]
    http, ev, me = new_user(running)
    assert (
        await http.post("/v1/bindings/apprise", json={"url": f"wecombot://{KEY}"}, headers=me)
    ).status_code == 201
    hooks.script_errcodes(-1)  # HTTP 200 {"errcode": -1}: must come back through notify.retry.0

    await publish_event(producer, ev, prefix=settings.topic_prefix)
    await publish_event(producer, ev, prefix=settings.topic_prefix)  # a redelivered record
    await wait_for(lambda: len(hooks.robot_messages) == 1)

    async def row() -> dict[str, Any]:
        rows = (await http.get("/v1/deliveries", params={"event_id": str(ev.event_id)}, headers=me)).json()
        return dict(rows[0]) if rows else {}

    async def sent() -> bool:
        return (await row()).get("status") == "sent"

    await wait_for(sent)
    assert (await row())["attempts"] == 2 and (await row())["channel"] == "apprise"
    assert len(hooks.robot_messages) == 1 and hooks.robot_requests == 2

    dead_ev = classified(1, user_id="user-with-a-removed-robot")
    them = auth(settings, dead_ev.tenant_id, dead_ev.user_id)
    assert (
        await http.post("/v1/bindings/apprise", json={"url": f"wecombot://{GONE}"}, headers=them)
    ).status_code == 201
    await publish_event(producer, dead_ev, prefix=settings.topic_prefix)
    [dead] = await read_topic(settings, settings.topic("notify.dlq"), 1)
    task = json.loads(dead.value)
    assert task["channel"] == "apprise" and "93000" in task["last_error"]
    assert GONE not in dead.value.decode() and all(GONE not in v.decode() for _, v in dead.headers)
    [listed] = (await http.get("/v1/bindings/apprise", headers=them)).json()
    assert listed["active"] is False  # 93000: the robot is gone; the user adds it again
