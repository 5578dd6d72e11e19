"""Linking WeChat by QR code (WeChat docs "生成带参数的二维码", "接收事件推送"), through the whole service: the API
over real HTTP, the Kafka consumers on the real broker, FerretDB, and the loopback WeChat API.

Flow: ``POST /v1/bindings/wechat/qrcode`` -> the loopback server records the ``QR_STR_SCENE`` code -> a signed
``subscribe`` (``qrscene_<scene>``) or ``SCAN`` event on ``/wechat/callback`` binds the openid -> alerts go to it;
``unsubscribe`` makes the binding inactive and alerts stop.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from faststream.kafka import KafkaBroker
from pydantic import SecretStr

from laifaxin_notify.app import create_app
from laifaxin_notify.settings import NotifySettings
from laifaxin_notify.store import Store
from laifaxin_shared.kafka import publish_event
from tests.integration.notify.conftest import SECRET, alert_handled, classified, serve
from tests.integration.notify.test_service import auth, make_settings, new_user, run_service, wait_for
from tests.support.infra import Servers
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration

CALLBACK_TOKEN = "callback-token-for-tests"


@pytest.fixture
async def running(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer, push: PushService
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(
        real_servers, topic_prefix, wechat, wechat_callback_token=SecretStr(CALLBACK_TOKEN)
    )
    async with run_service(settings, topic_prefix) as api:
        yield api


def signed(token: str = CALLBACK_TOKEN) -> dict[str, str]:
    """Query parameters of a callback signed as WeChat signs it (SHA-1 of sorted token, timestamp, nonce)."""
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


def event_xml(openid: str, event: str, create_time: int, event_key: str | None = None) -> str:
    key = (
        f"<EventKey><![CDATA[{event_key}]]></EventKey><Ticket><![CDATA[gQTICKET]]></Ticket>"
        if event_key
        else ""
    )
    return (
        "<xml><ToUserName><![CDATA[gh_laifaxin]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{create_time}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{key}</xml>"
    )


async def post_event(http: httpx.AsyncClient, xml: str) -> None:
    answer = await http.post("/wechat/callback", params=signed(), content=xml)
    assert answer.status_code == 200 and answer.text == "success"


async def new_qrcode(http: httpx.AsyncClient, wechat: WeChatServer, headers: dict[str, str]) -> str:
    """Create a code through the API; returns the scene WeChat was asked to encode."""
    made = await http.post("/v1/bindings/wechat/qrcode", headers=headers)
    assert made.status_code == 201, made.text
    body = made.json()
    code = wechat.qrcodes[-1]
    assert code.action_name == "QR_STR_SCENE" and code.expire_seconds == 600
    assert body["ticket"] == code.ticket
    assert body["qrcode_url"] == "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + quote(
        code.ticket, safe=""
    )
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)
    assert 1 <= len(code.scene) <= 64 and code.scene not in json.dumps(body)
    return code.scene


async def follow_event_for_a_new_code(
    running: dict[str, Any], wechat: WeChatServer, tenant_id: str, user_id: str, openid: str
) -> tuple[httpx.AsyncClient, dict[str, str], str]:
    """A QR code made by the user ``(tenant_id, user_id)``; returns the API client, the user's headers and the
    ``subscribe`` event of ``openid`` scanning it (not sent)."""
    http: httpx.AsyncClient = running["http"]
    me = auth(running["settings"], tenant_id, user_id)
    scene = await new_qrcode(http, wechat, me)
    return http, me, event_xml(openid, "subscribe", int(time.time()), f"qrscene_{scene}")


async def wechat_bindings(http: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[str, bool]]:
    rows = (await http.get("/v1/bindings/wechat", headers=headers)).json()
    return [(r["target_id"], r["active"]) for r in rows]


async def test_qrcode_subscribe_binds_and_alerts_then_unsubscribe_stops_them(
    running: dict[str, Any], wechat: WeChatServer
) -> None:
    settings: NotifySettings = running["settings"]
    producer: KafkaBroker = running["producer"]
    http, ev, me = new_user(running)
    someone_else = auth(settings, ev.tenant_id, "another-user")
    assert await wechat_bindings(http, me) == []

    scene = await new_qrcode(http, wechat, me)
    t0 = int(time.time())
    follow = event_xml("oNEW", "subscribe", t0, f"qrscene_{scene}")
    await post_event(http, follow)
    assert await wechat_bindings(http, me) == [("oNEW", True)]
    assert await wechat_bindings(http, someone_else) == []

    await publish_event(producer, ev, prefix=settings.topic_prefix)
    await wait_for(lambda: len(wechat.messages_for("oNEW")) == 1)

    # the same event again (WeChat's redelivery) changes nothing; the used code binds no other WeChat
    await post_event(http, follow)
    await post_event(http, event_xml("oOTHER", "subscribe", t0 + 1, f"qrscene_{scene}"))
    assert await wechat_bindings(http, me) == [("oNEW", True)]
    listed = (await http.get("/v1/bindings", headers=me)).json()
    assert [(b["channel"], b["target_id"]) for b in listed] == [("wechat", "oNEW")]

    # unfollow: the binding turns inactive and the next alert is not sent to it
    unfollow = event_xml("oNEW", "unsubscribe", t0 + 10)
    await post_event(http, unfollow)
    assert await wechat_bindings(http, me) == [("oNEW", False)]
    await post_event(http, unfollow)  # redelivered: still inactive
    await post_event(http, follow)  # a late retry of the older follow does not undo the unfollow
    assert await wechat_bindings(http, me) == [("oNEW", False)]
    await alert_handled(running, classified(1, tenant_id=ev.tenant_id, user_id=ev.user_id))
    assert len(wechat.messages_for("oNEW")) == 1

    # following again through a new code re-enables it
    scene2 = await new_qrcode(http, wechat, me)
    await post_event(http, event_xml("oNEW", "subscribe", t0 + 20, f"qrscene_{scene2}"))
    assert await wechat_bindings(http, me) == [("oNEW", True)]


async def link_and_alert(
    running: dict[str, Any],
    wechat: WeChatServer,
    openid: str,
    event: str,
    deliver: Callable[[httpx.AsyncClient, str], Awaitable[None]] = post_event,
) -> None:
    """Make a code for a new user, have ``deliver`` post the scanner's ``event`` (``subscribe`` or ``SCAN``) for
    it, and check that ``openid`` is bound and gets the user's next alert."""
    http, ev, me = new_user(running)
    scene = await new_qrcode(http, wechat, me)
    key = scene if event == "SCAN" else f"qrscene_{scene}"
    await deliver(http, event_xml(openid, event, int(time.time()), key))
    assert await wechat_bindings(http, me) == [(openid, True)]
    await alert_handled(running, ev)
    await wait_for(lambda: len(wechat.messages_for(openid)) == 1)


async def test_scan_when_already_following_binds(running: dict[str, Any], wechat: WeChatServer) -> None:
    await link_and_alert(running, wechat, "oFOLLOWER", "SCAN")


async def test_unknown_expired_and_unscened_events_bind_nothing(
    running: dict[str, Any], wechat: WeChatServer
) -> None:
    http: httpx.AsyncClient = running["http"]
    settings: NotifySettings = running["settings"]
    store: Store = running["app"].state.runtime.store
    me = auth(settings, "tenant-x", "u-x")
    expired = "expired-scene-" + uuid.uuid4().hex
    await store.create_wechat_link(expired, "tenant-x", "u-x", datetime.now(UTC) - timedelta(seconds=1))
    now = int(time.time())
    await post_event(http, event_xml("oLATE", "subscribe", now, f"qrscene_{expired}"))
    await post_event(http, event_xml("oLATE", "SCAN", now, expired))
    await post_event(http, event_xml("oGUESS", "subscribe", now, "qrscene_" + uuid.uuid4().hex))
    await post_event(http, event_xml("oGUESS", "SCAN", now, uuid.uuid4().hex))
    await post_event(http, event_xml("oPLAIN", "subscribe", now))  # followed by search: nothing to link
    assert await wechat_bindings(http, me) == []
    assert await store.bindings_of_target("wechat", "oLATE") == []
    assert await store.bindings_of_target("wechat", "oGUESS") == []


async def test_bad_signature_is_refused(running: dict[str, Any], wechat: WeChatServer) -> None:
    http, me, xml = await follow_event_for_a_new_code(running, wechat, "tenant-s", "u-s", "oFORGED")
    forged = await http.post("/wechat/callback", params=signed("not-the-token"), content=xml)
    assert forged.status_code == 403
    unsigned = await http.post("/wechat/callback", content=xml)
    assert unsigned.status_code == 403
    assert await wechat_bindings(http, me) == []
    await post_event(http, xml)  # the link is still there for the genuine event
    assert await wechat_bindings(http, me) == [("oFORGED", True)]


async def test_qrcode_errcode_is_a_clear_502_without_secrets(
    running: dict[str, Any], wechat: WeChatServer
) -> None:
    http: httpx.AsyncClient = running["http"]
    settings: NotifySettings = running["settings"]
    me = auth(settings, "tenant-e", "u-e")
    wechat.script_qrcode(45009)
    refused = await http.post("/v1/bindings/wechat/qrcode", headers=me)
    assert refused.status_code == 502
    detail = refused.json()["detail"]
    assert detail["code"] == "wechat_error" and detail["errcode"] == 45009 and "45009" in detail["message"]
    tokens = [tok for tok, _ in wechat._tokens.values()]
    assert tokens and all(tok not in refused.text for tok in tokens) and SECRET not in refused.text

    # an expired access token is refreshed once, as for template sends
    wechat.expire_tokens()
    before = wechat.stable_token_requests
    assert (await http.post("/v1/bindings/wechat/qrcode", headers=me)).status_code == 201
    assert wechat.stable_token_requests == before + 1

    # a wrong AppSecret: the token endpoint's errcode, still without the secret
    wechat.apps[next(iter(wechat.apps))] = "rotated-secret"
    wechat.expire_tokens()
    bad = await http.post("/v1/bindings/wechat/qrcode", headers=me)
    assert bad.status_code == 502 and bad.json()["detail"]["errcode"] == 40125
    assert SECRET not in bad.text and "rotated-secret" not in bad.text


async def test_qrcode_without_wechat_configured(real_servers: Servers, wechat: WeChatServer) -> None:
    settings = make_settings(real_servers, "unused.", wechat).model_copy(update={"wechat_appid": ""})
    app = create_app(settings, consume=False)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        try:
            me = auth(settings, "tenant-n", "u-n")
            answer = await http.post("/v1/bindings/wechat/qrcode", headers=me)
            assert answer.status_code == 409
            detail = answer.json()["detail"]
            assert detail["code"] == "wechat_not_configured" and "NOTIFY_WECHAT_APPID" in detail["fix"]
            assert (await http.post("/v1/bindings/wechat/qrcode")).status_code == 401
        finally:
            await app.state.runtime.mongo.drop_database(settings.mongodb_database)
    assert wechat.qrcode_requests == 0


async def test_expired_links_are_deleted_when_codes_are_made(
    running: dict[str, Any], wechat: WeChatServer
) -> None:
    """No TTL index on FerretDB v1: the QR-code endpoint deletes links expired over an hour ago (once an hour per
    process); a link expired a moment ago is kept, for WeChat's redelivery of its event."""
    http: httpx.AsyncClient = running["http"]
    settings: NotifySettings = running["settings"]
    store: Store = running["app"].state.runtime.store
    now = datetime.now(UTC)
    old = ["old-scene-" + uuid.uuid4().hex for _ in range(3)]
    for scene in old:
        await store.create_wechat_link(scene, "tenant-p", "u-p", now - timedelta(hours=2))
    recent = "recent-scene-" + uuid.uuid4().hex
    await store.create_wechat_link(recent, "tenant-p", "u-p", now - timedelta(minutes=5))

    await new_qrcode(http, wechat, auth(settings, "tenant-p", "u-p"))
    left = await store.wechat_links.count_documents({"tenant_id": "tenant-p"})
    assert left == 2  # the recent expired one and the new code
    assert await store.wechat_links.find_one({"_id": hashlib.sha256(recent.encode()).hexdigest()}) is not None
