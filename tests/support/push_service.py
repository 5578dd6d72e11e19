"""A loopback Web Push service (RFC 8030) that decrypts what it receives (RFC 8291) and checks VAPID (RFC 8292).

It plays both the push service and the user agent: :meth:`PushService.subscribe` makes a subscription the way
a browser would (a fresh P-256 key pair and a 16-byte auth secret), and every accepted push is decrypted with
``http_ece.decrypt(..., version="aes128gcm")`` and recorded with its headers.

Checks on ``POST /push/<id>``: ``TTL`` present and a non-negative integer (else 400), ``Urgency`` one of
very-low/low/normal/high, ``Topic`` at most 32 base64url characters (else 400), ``Content-Encoding:
aes128gcm``, and ``Authorization: vapid t=<JWT>, k=<key>`` with an ES256 JWT signed by ``k`` whose ``aud`` is
the endpoint's origin, ``exp`` within 24 hours and ``sub`` a mailto: or https: URL (else 401/403).
Scripting: :meth:`script` queues statuses (201, 404, 410, 413, 429, 500) for a subscription's next pushes;
``max_body`` answers 413 for bodies above it; unknown ids answer 404 (RFC 8030 section 7.3).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.loopback import serve

_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class ReceivedPush:
    """One push the service accepted, decrypted."""

    subscription_id: str
    payload: bytes
    headers: dict[str, str]
    vapid_claims: dict[str, Any]
    at: float = field(default_factory=time.time)
    """When the push service accepted it (epoch seconds), for latency measurements."""

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class _Sub:
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)


@dataclass
class PushService:
    """``async with PushService() as push: sub = push.subscribe()``."""

    max_body: int = 4096 + 103
    latency_s: float = 0.0
    received: list[ReceivedPush] = field(default_factory=list)
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    requests: int = 0
    base_url: str = ""
    _subs: dict[str, _Sub] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def subscribe(self) -> dict[str, Any]:
        """A new subscription, as ``PushSubscription.toJSON()`` gives it: endpoint and keys."""
        sub_id = secrets.token_urlsafe(16)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        self._subs[sub_id] = _Sub(key, auth)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.base_url}/push/{sub_id}",
            "expirationTime": None,
            "keys": {"p256dh": b64url(public), "auth": b64url(auth)},
        }

    def script(self, endpoint: str, *statuses: int, retry_after: str = "1") -> None:
        """Answer the next pushes to ``endpoint`` with these statuses (201 = accept normally)."""
        sub = self._subs[endpoint.rsplit("/", 1)[-1]]
        for status in statuses:
            sub.script.append((status, {"Retry-After": retry_after} if status == 429 else {}))

    def unsubscribe(self, endpoint: str) -> None:
        """The browser dropped the subscription: further pushes answer 404."""
        self._subs.pop(endpoint.rsplit("/", 1)[-1], None)

    def for_endpoint(self, endpoint: str) -> list[ReceivedPush]:
        sub_id = endpoint.rsplit("/", 1)[-1]
        return [r for r in self.received if r.subscription_id == sub_id]

    async def __aenter__(self) -> PushService:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/push/{sub_id}", self._push)
        self._runner, self.base_url = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _reject(
        self, sub_id: str, status: int, why: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.rejected.append((sub_id, status, why))
        return web.Response(status=status, text=why, headers=headers or {})

    def _check_vapid(self, header: str) -> dict[str, Any]:
        """Parse and verify ``vapid t=..., k=...`` (RFC 8292 section 3); raises ValueError with the reason."""
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("authorization scheme is not vapid")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        token, k = fields.get("t", ""), fields.get("k", "")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(k))
        claims: dict[str, Any] = jwt.decode(token, public, algorithms=["ES256"], audience=self.base_url)
        if claims["exp"] > time.time() + 24 * 3600:
            raise ValueError("exp more than 24 hours ahead")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("sub is not a mailto: or https: URL")
        return claims

    async def _push(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        sub_id = request.match_info["sub_id"]
        body = await request.read()
        sub = self._subs.get(sub_id)
        if sub is None:
            return self._reject(sub_id, 404, "no such subscription")
        ttl = request.headers.get("TTL", "")
        if not ttl.isdigit():
            return self._reject(sub_id, 400, "TTL header required")
        if request.headers.get("Urgency", "normal") not in ("very-low", "low", "normal", "high"):
            return self._reject(sub_id, 400, "bad Urgency")
        topic = request.headers.get("Topic")
        if topic is not None and not _TOPIC.match(topic):
            return self._reject(sub_id, 400, "bad Topic")
        if request.headers.get("Content-Encoding", "").lower() != "aes128gcm":
            return self._reject(sub_id, 415, "Content-Encoding must be aes128gcm")
        try:
            claims = self._check_vapid(request.headers.get("Authorization", ""))
        except (ValueError, KeyError, jwt.PyJWTError) as exc:
            return self._reject(sub_id, 403, f"vapid: {exc}")
        if sub.script:
            status, headers = sub.script.popleft()
            if status != 201:
                return self._reject(sub_id, status, "scripted", headers)
        if len(body) > self.max_body:
            return self._reject(sub_id, 413, "payload too large")
        payload = http_ece.decrypt(body, private_key=sub.key, auth_secret=sub.auth, version="aes128gcm")
        self.received.append(
            ReceivedPush(sub_id, payload, {k.lower(): v for k, v in request.headers.items()}, claims)
        )
        return web.Response(
            status=201, headers={"Location": f"{self.base_url}/message/{secrets.token_hex(8)}", "TTL": ttl}
        )
