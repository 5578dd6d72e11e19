"""Web Push with VAPID through pywebpush (RFC 8030 protocol, RFC 8291 aes128gcm, RFC 8292 VAPID).

Every request carries ``TTL`` (pywebpush's default 0 drops the message when the browser is offline),
``Urgency`` (``high`` for inquiries and replies, ``normal`` otherwise) and ``Topic`` (the first 32 characters
of the dedupe key, so an undelivered duplicate is replaced, RFC 8030 section 5.4).

VAPID (RFC 8292 section 2): the JWT's ``aud`` is the push service's origin and its ``exp`` at most 24 hours
ahead, so one token per origin serves every push to it: it is signed with ``exp`` 12 hours ahead and re-signed
when less than an hour is left, instead of one ECDSA signature per message.

Status handling (RFC 8030 sections 5, 7; reference/notify.md section 3): 201 sent; 404/410 the subscription is
gone: delete it, no retry; 413 resend once with a shorter payload; 429 retry after ``Retry-After``;
400/401/403 configuration: dead-letter and alert; 5xx and transport errors retry.

Endpoints are user-given URLs, so every push goes through :class:`~laifaxin_notify.egress.EgressGuard`: https
only (plain http only for hosts the operator allowlist, ``NOTIFY_PUSH_ALLOWLIST``, names), the endpoint's name
resolved once and every address checked against the shared SSRF rule at connect time, the connection made to the
checked address (TLS SNI and ``Host`` keep the name), and redirects never followed (a 3xx is a permanent
failure). pywebpush encrypts (RFC 8291); the POST is ours, so that its options are. An outcome's detail is the
status (or the status class for codes RFC 8030 gives no meaning), never the endpoint's answer body or an address.
"""

from __future__ import annotations

import base64
import json
import time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher, WebPushException

from ..egress import EgressGuard, EgressRefused, refused
from ..models import DeliveryTask
from ..store import Binding
from .base import Outcome

MAX_PAYLOAD_BYTES = 3993
"""Most plaintext bytes in one aes128gcm record (RFC 8291 section 4)."""
URGENT_CATEGORIES = frozenset({"to_reply", "inquiry"})
VAPID_LIFETIME_S = 12 * 3600
"""``exp`` of a VAPID JWT, seconds ahead (RFC 8292 section 2 allows at most 24 hours; pywebpush uses 12)."""
VAPID_RENEW_BEFORE_S = 3600
"""A cached VAPID JWT is re-signed when less than this many seconds of its validity are left."""
KNOWN_STATUSES = frozenset({200, 201, 202, 400, 401, 403, 404, 410, 413, 429})
"""Statuses with a meaning in RFC 8030 / 8292, shown as they are in an outcome; others show as a class."""
VAPID_CACHE_MAX = 1024
"""Most origins with a cached JWT (endpoints are user-supplied; past this the cache starts over)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_vapid(private_key: str) -> Vapid02:
    """A VAPID key from PEM text or a base64url raw 32-byte P-256 scalar; a new key when empty.

    Raises:
        ValueError: the text is neither form.
    """
    text = private_key.strip()
    if not text:
        vapid = Vapid02()
        vapid.generate_keys()
        return vapid
    if text.startswith("-----BEGIN"):
        return Vapid02.from_pem(text.encode())
    return Vapid02.from_raw(text.encode())


def vapid_public_key(vapid: Vapid02) -> str:
    """The application server key for ``pushManager.subscribe``: base64url uncompressed P-256 point."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(raw)


def vapid_private_raw(vapid: Vapid02) -> str:
    """The private scalar as base64url (for settings / test fixtures)."""
    key = vapid.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return _b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def payload(task: DeliveryTask, *, short: bool = False) -> str:
    """The JSON the service worker shows: title, body, tag (= dedupe key), url; ``short`` drops the body."""
    c = task.content
    data: dict[str, Any] = {"title": c.title, "tag": task.dedupe_key, "url": c.url}
    if not short:
        body = f"{c.sender}: {c.subject}" if c.sender else c.subject
        if c.snippet:
            body += f"\n{c.snippet}"
        data["body"] = body
        data["category"] = c.category
    text = json.dumps(data, ensure_ascii=False)
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        data.pop("body", None)
        text = json.dumps(data, ensure_ascii=False)
    return text


def retry_after_seconds(value: str | None, default: float = 60.0) -> float:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(when.timestamp() - time.time(), 0.0)


class WebPushSender:
    """Sends encrypted pushes to stored subscriptions with one VAPID key."""

    def __init__(
        self,
        *,
        vapid: Vapid02,
        subject: str,
        ttl_s: int = 86_400,
        timeout_s: float = 10.0,
        guard: EgressGuard | None = None,
    ) -> None:
        self.guard = guard or EgressGuard(timeout_s=timeout_s)
        """Which endpoints may be connected to (default: https to public addresses only)."""
        self.vapid = vapid
        self.subject = subject
        self.ttl_s = ttl_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._vapid_cache: dict[str, tuple[float, dict[str, str]]] = {}
        self.vapid_signatures = 0
        """How many VAPID JWTs were signed (one per origin and ~11 hours)."""

    def __repr__(self) -> str:
        return "WebPushSender()"

    def vapid_headers(self, endpoint: str, now: float | None = None) -> dict[str, str]:
        """``{"Authorization": "vapid t=<ES256 JWT>,k=<public key>"}`` for ``endpoint`` (RFC 8292 section 3).

        The JWT (claims ``aud`` = the endpoint's origin, ``exp``, ``sub``) is cached per origin and re-signed
        when less than :data:`VAPID_RENEW_BEFORE_S` of its :data:`VAPID_LIFETIME_S` are left. ``now`` is epoch
        seconds (default: the clock).
        """
        url = urlsplit(endpoint)
        aud = f"{url.scheme}://{url.netloc}"
        now = time.time() if now is None else now
        cached = self._vapid_cache.get(aud)
        if cached is None or cached[0] - now < VAPID_RENEW_BEFORE_S:
            if len(self._vapid_cache) >= VAPID_CACHE_MAX:
                self._vapid_cache.clear()
            exp = int(now) + VAPID_LIFETIME_S
            cached = (exp, dict(self.vapid.sign({"aud": aud, "exp": exp, "sub": self.subject})))
            self._vapid_cache[aud] = cached
            self.vapid_signatures += 1
        return dict(cached[1])

    @property
    def public_key(self) -> str:
        return vapid_public_key(self.vapid)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=self.guard.connector(limit=200))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _push(
        self, subscription: dict[str, Any], data: str, urgency: str, topic: str
    ) -> tuple[int, dict[str, str]]:
        """One encrypted POST to the endpoint; returns (status, response headers). Redirects are not followed
        and the answer's body is not read. Raises EgressRefused (the endpoint is not allowed) or what aiohttp
        raises."""
        endpoint = str(subscription["endpoint"])
        self.guard.check_url(endpoint)
        body = WebPusher(subscription).encode(data.encode(), "aes128gcm")["body"]
        headers = {
            "TTL": str(self.ttl_s),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Urgency": urgency,
            "Topic": topic,
            **self.vapid_headers(endpoint),  # cached per origin: not one signature per message
        }
        async with self._http().post(
            endpoint, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
        ) as response:
            return response.status, dict(response.headers)

    async def send(self, task: DeliveryTask, binding: Binding) -> Outcome:
        """Push the alert to the subscription stored in ``binding.data`` (endpoint, keys.p256dh, keys.auth)."""
        subscription = {"endpoint": binding.data["endpoint"], "keys": dict(binding.data["keys"])}
        urgency = "high" if task.content.category in URGENT_CATEGORIES else "normal"
        topic = task.dedupe_key[:32]
        short = False
        for _ in range(2):
            try:
                status, headers = await self._push(subscription, payload(task, short=short), urgency, topic)
            except EgressRefused as exc:
                return self._not_allowed(exc)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                why = refused(exc)
                if why is not None:
                    return self._not_allowed(why)
                return Outcome("retry", f"push transport: {type(exc).__name__}")
            except (WebPushException, ValueError, TypeError) as exc:  # keys that do not encrypt
                return Outcome(
                    "failed",
                    f"push subscription keys unusable: {type(exc).__name__}",
                    binding_action="delete",
                )
            if 200 <= status < 300:  # 201 Created (RFC 8030 section 5); any 2xx is an acceptance
                return Outcome("sent", f"push {status}", provider_id=f"push:{status}")
            if status == 413 and not short:
                short = True
                continue
            return self._classify(status, headers)
        return Outcome("failed", "push 413 even for the short payload", dead_letter=True)

    @staticmethod
    def _not_allowed(exc: EgressRefused) -> Outcome:
        """The endpoint may not be connected to (its name now resolves to a non-public address, or the
        allowlist changed): the subscription is removed; the detail names the rule, not the address."""
        return Outcome("failed", f"push endpoint refused: {exc.code}", binding_action="delete")

    @staticmethod
    def _classify(status: int, headers: dict[str, str]) -> Outcome:
        """A push service's refusal by status (RFC 8030 sections 5, 7); codes without a meaning there show as
        their class only (``push 5xx``)."""
        detail = f"push {status}" if status in KNOWN_STATUSES else f"push {status // 100}xx"
        if status in (404, 410):
            return Outcome("skipped", detail + ": subscription gone", binding_action="delete")
        if status == 429:
            retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            return Outcome("retry", detail, retry_after_s=retry_after_seconds(retry_after))
        if status == 413:
            return Outcome("failed", detail, dead_letter=True)
        if status in (400, 401, 403):
            return Outcome("failed", detail, dead_letter=True, alert=True)
        if 300 <= status < 400:
            return Outcome("failed", detail + ": redirect not followed", dead_letter=True)
        return Outcome("retry", detail)
