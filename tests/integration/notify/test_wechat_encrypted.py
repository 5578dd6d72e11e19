"""WeChat events in 安全模式 (safe) and 兼容模式 (compatible) message encryption (WeChat docs "消息加解密说明"),
through the whole service: encrypted ``subscribe`` / ``SCAN`` events link the scanner and alerts reach them;
a wrong ``msg_signature`` (403), another Official Account's message (400) and a service without the
EncodingAESKey (503) bind nothing. Real Kafka and FerretDB, the loopback WeChat API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from laifaxin_notify.wechat_crypto import aes_key, encrypt, msg_signature
from tests.integration.notify.conftest import APPID
from tests.integration.notify.test_service import make_settings, run_service
from tests.integration.notify.test_wechat_link import (
    CALLBACK_TOKEN,
    follow_event_for_a_new_code,
    link_and_alert,
    signed,
    wechat_bindings,
)
from tests.support.infra import Servers
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration

AES_KEY = "Lx0aifaxinTestEncodingAESKey0123456789abcde"  # 43 Base64 characters, as the OA page shows it


@pytest.fixture
async def running(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer, push: PushService
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(
        real_servers,
        topic_prefix,
        wechat,
        wechat_callback_token=SecretStr(CALLBACK_TOKEN),
        wechat_encoding_aes_key=SecretStr(AES_KEY),
    )
    async with run_service(settings, topic_prefix) as api:
        yield api


def sealed(inner: str, *, mode: str = "safe", appid: str = APPID) -> tuple[dict[str, str], str]:
    """Query parameters and body of an event as WeChat posts it encrypted: ``safe`` sends only ToUserName and
    Encrypt, ``compatible`` the plaintext fields too."""
    encrypted = encrypt(aes_key(AES_KEY), appid, inner.encode())
    params = signed()
    params |= {
        "encrypt_type": "aes",
        "msg_signature": msg_signature(CALLBACK_TOKEN, params["timestamp"], params["nonce"], encrypted),
    }
    outer = inner.removeprefix("<xml>").removesuffix("</xml>") if mode == "compatible" else ""
    body = f"<xml><ToUserName><![CDATA[gh_laifaxin]]></ToUserName>{outer}<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return params, body


@pytest.mark.parametrize("mode", ["safe", "compatible"])
async def test_an_encrypted_subscribe_links_the_scanner_and_alerts_reach_them(
    running: dict[str, Any], wechat: WeChatServer, mode: str
) -> None:
    async def deliver(http: httpx.AsyncClient, inner: str) -> None:
        params, body = sealed(inner, mode=mode)
        answer = await http.post("/wechat/callback", params=params, content=body)
        assert answer.status_code == 200 and answer.text == "success"

    await link_and_alert(running, wechat, "oSEALED", "subscribe", deliver)


async def test_encrypted_events_that_are_not_ours_bind_nothing(
    running: dict[str, Any], wechat: WeChatServer
) -> None:
    http, me, inner = await follow_event_for_a_new_code(
        running, wechat, "tenant-sealed", "u-sealed", "oFORGED"
    )

    params, body = sealed(inner)
    params["msg_signature"] = "0" * 40
    assert (await http.post("/wechat/callback", params=params, content=body)).status_code == 403
    params, body = sealed(inner, appid="wx" + uuid.uuid4().hex[:16])  # another Official Account's message
    refused = await http.post("/wechat/callback", params=params, content=body)
    assert refused.status_code == 400 and refused.json()["detail"] == "wrong_appid"
    params, _ = sealed(inner)
    no_encrypt = await http.post("/wechat/callback", params=params, content=inner)
    assert no_encrypt.status_code == 400
    assert await wechat_bindings(http, me) == []


async def test_an_encrypted_event_without_the_key_configured_is_refused(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer, push: PushService
) -> None:
    settings = make_settings(
        real_servers, topic_prefix, wechat, wechat_callback_token=SecretStr(CALLBACK_TOKEN)
    )
    async with run_service(settings, topic_prefix) as api:
        http, me, inner = await follow_event_for_a_new_code(api, wechat, "tenant-nokey", "u-nokey", "oNOKEY")
        params, body = sealed(inner)
        refused = await http.post("/wechat/callback", params=params, content=body)
        assert refused.status_code == 503 and AES_KEY not in refused.text
        assert await wechat_bindings(http, me) == []
