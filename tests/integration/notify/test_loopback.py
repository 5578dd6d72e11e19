"""The loopback services refuse what the real ones refuse, so the channel tests can fail."""

from __future__ import annotations

import base64
import time

import http_ece
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.notify.conftest import APPID, SECRET
from tests.support.push_service import PushService, b64url, b64url_decode
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration


async def test_wechat_token_endpoints_and_errcodes(wechat: WeChatServer) -> None:
    async with httpx.AsyncClient(base_url=wechat.base_url) as http:
        ok = (
            await http.get(
                "/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
            )
        ).json()
        assert ok["expires_in"] > 0 and len(ok["access_token"]) > 50
        bad = (
            await http.get(
                "/cgi-bin/token", params={"grant_type": "client_credential", "appid": "wxnope", "secret": "x"}
            )
        ).json()
        assert bad["errcode"] == 40013
        stable = (
            await http.post(
                "/cgi-bin/stable_token",
                json={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
            )
        ).json()
        again = (
            await http.post(
                "/cgi-bin/stable_token",
                json={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
            )
        ).json()
        assert stable["access_token"] == again["access_token"]  # stable: same token until force_refresh
        body = {"touser": "o1", "template_id": "TPL_NEW_REPLY", "data": {"thing1": {"value": "x" * 21}}}
        sent = await http.post(
            "/cgi-bin/message/template/send", params={"access_token": stable["access_token"]}, json=body
        )
        assert sent.status_code == 200 and sent.json()["errcode"] == 47003  # over 20 characters
        wrong = await http.post("/cgi-bin/message/template/send", params={"access_token": "nope"}, json=body)
        assert wrong.json()["errcode"] == 40001


def _encrypt(sub: dict[str, object], data: bytes) -> bytes:
    keys = sub["keys"]
    assert isinstance(keys, dict)
    server_key = ec.generate_private_key(ec.SECP256R1())
    result: bytes = http_ece.encrypt(
        data,
        private_key=server_key,
        dh=b64url_decode(keys["p256dh"]),
        auth_secret=b64url_decode(keys["auth"]),
        version="aes128gcm",
    )
    return result


async def test_push_service_checks_ttl_topic_and_vapid(push: PushService) -> None:
    sub = push.subscribe()
    endpoint = str(sub["endpoint"])
    vapid_key = ec.generate_private_key(ec.SECP256R1())
    k = b64url(
        vapid_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )

    def auth(aud: str, sub_claim: str = "mailto:ops@laifa.xin") -> str:
        token = jwt.encode(
            {"aud": aud, "exp": int(time.time()) + 600, "sub": sub_claim}, vapid_key, algorithm="ES256"
        )
        return f"vapid t={token}, k={k}"

    body = _encrypt(sub, b'{"title": "hi"}')
    base = {"Content-Encoding": "aes128gcm", "TTL": "60", "Authorization": auth(push.base_url)}
    async with httpx.AsyncClient() as http:
        assert (await http.post(endpoint, content=body, headers=base)).status_code == 201
        assert push.received[-1].json() == {"title": "hi"}
        no_ttl = {k2: v for k2, v in base.items() if k2 != "TTL"}
        assert (await http.post(endpoint, content=body, headers=no_ttl)).status_code == 400
        assert (
            await http.post(endpoint, content=body, headers={**base, "Topic": "x" * 33})
        ).status_code == 400
        wrong_aud = {**base, "Authorization": auth("https://elsewhere.example")}
        assert (await http.post(endpoint, content=body, headers=wrong_aud)).status_code == 403
        bad_sub = {**base, "Authorization": auth(push.base_url, "ops@laifa.xin")}
        assert (await http.post(endpoint, content=body, headers=bad_sub)).status_code == 403
        gone = endpoint.rsplit("/", 1)[0] + "/" + base64.urlsafe_b64encode(b"unknown").decode()
        assert (await http.post(gone, content=body, headers=base)).status_code == 404
