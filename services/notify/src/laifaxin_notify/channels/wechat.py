"""WeChat Official Account (服务号) template messages over aiohttp (reference/notify.md section 2).

- Token: ``POST /cgi-bin/stable_token`` (getStableAccessToken) with ``force_refresh: false``; one cached
  token per AppID behind an :class:`asyncio.Lock`, renewed 5 minutes before ``expires_in`` runs out.
- Send: ``POST /cgi-bin/message/template/send?access_token=...`` with ``client_msg_id`` = our dedupe key (the
  platform sends one message per openid + client_msg_id within 10 minutes).
- Template fields: at most 20 characters, no newlines (rules since 2023-05-04).
- errcodes (section 2.4): 40001/40014/42001 drop the token, refetch, retry once inline; -1 retry later;
  43004 the user unfollowed: disable the binding, skipped; 45009 quota: long delay and alert;
  47003/40037/40164 (and 40003 bad openid) permanent: dead-letter and alert.
- QR code for linking (WeChat doc "生成带参数的二维码", account/qrcode create): ``POST
  /cgi-bin/qrcode/create?access_token=...`` with ``{"expire_seconds": N, "action_name": "QR_STR_SCENE",
  "action_info": {"scene": {"scene_str": S}}}`` (temporary code, ``expire_seconds`` at most 2 592 000 = 30 days,
  ``scene_str`` 1..64 characters) answers ``{"ticket", "expire_seconds", "url"}``; the image is
  ``https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=<urlencoded ticket>`` (:meth:`WeChatSender.create_qrcode`).
  The same token handling as the template send (refresh and retry once on 40001/40014/42001).

WeChat answers HTTP 200 with an ``errcode`` body even for errors; the access token travels only in the query
string and is never logged or put in an outcome (a non-2xx status becomes :class:`WeChatHttpError`, which
carries the status only, not the URL).

HTTP: one ``aiohttp.ClientSession`` per sender with a keep-alive pool (``max_connections``), created on first
use. aiohttp rather than httpx here: httpcore's pool scans every pooled connection on each request (encode/
httpcore#1035), which measured ~5 ms of CPU per request at 100 connections against ~0.2 ms for aiohttp.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from laifaxin_shared.providers.errors import redact

from ..models import DeliveryTask
from ..planning import one_line
from ..store import Binding
from .base import Outcome

TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
"""Bad credential, invalid token, token expired: refresh and retry once."""
CONFIG_ERRCODES = frozenset({40037, 40164, 40013, 40125})
"""Invalid template_id, IP not whitelisted, invalid appid/secret: an operator must fix configuration."""
PAYLOAD_ERRCODES = frozenset({47003, 40003})
"""Invalid argument (field too long / wrong type), invalid openid."""
FIELD_LIMIT = 20
"""Most characters in one template field value."""
RENEW_BEFORE_S = 300.0
QRCODE_MAX_EXPIRE_S = 2_592_000
"""Longest life of a temporary QR code, seconds (30 days; "生成带参数的二维码")."""
SCENE_STR_MAX = 64
"""Longest ``scene_str`` of a QR code, characters ("生成带参数的二维码")."""
SHOWQRCODE_URL = "https://mp.weixin.qq.com/cgi-bin/showqrcode"
"""Where a ticket is exchanged for the QR code image (``?ticket=<urlencoded ticket>``)."""


class WeChatHttpError(Exception):
    """A WeChat API call answered a non-2xx HTTP status (the message names the status only, never the URL)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"http {status}")
        self.status = status


async def post_json(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], params: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST ``body`` as JSON and return the JSON answer (any content type; WeChat sometimes says text/plain).

    Raises:
        WeChatHttpError: a non-2xx status.
        aiohttp.ClientError, TimeoutError: transport failure.
        ValueError: the body is not a JSON object.
    """
    async with http.post(url, params=params, json=body) as resp:
        if not 200 <= resp.status < 300:
            raise WeChatHttpError(resp.status)
        data = await resp.json(content_type=None)
    if not isinstance(data, dict):
        raise ValueError("WeChat answered JSON that is not an object")
    return data


class WeChatApiError(Exception):
    """A WeChat API call answered a non-zero ``errcode`` (message carries errcode and errmsg, no token)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class QrCode:
    """A temporary QR code from ``qrcode/create``.

    Attributes:
        ticket: WeChat's ticket (not secret: it only shows the code).
        expire_seconds: the life WeChat granted, seconds.
        url: the code's content URL (``http://weixin.qq.com/q/...``).
        image_url: the image, ``https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=<urlencoded ticket>``.
    """

    ticket: str
    expire_seconds: int
    url: str

    @property
    def image_url(self) -> str:
        return f"{SHOWQRCODE_URL}?ticket={urllib.parse.quote(self.ticket, safe='')}"


@dataclass
class _Cached:
    token: str = ""
    expires_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class TokenCache:
    """One access token per AppID, fetched from ``stable_token`` under a per-AppID lock.

    Concurrent callers wait on the lock and reuse the token the first one fetched, so a burst never makes
    more than one token request (stable_token allows 10 000/min but refetching the legacy token invalidates
    the old one; either way one fetch is right).
    """

    def __init__(self, http: Callable[[], aiohttp.ClientSession], base_url: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._cache: dict[str, _Cached] = {}
        self.fetches = 0

    async def get(self, appid: str, secret: str) -> str:
        """A valid access token for ``appid``.

        Raises:
            WeChatApiError: the token endpoint answered an errcode (e.g. 40013 invalid appid, 40164 IP).
            WeChatHttpError: a non-2xx status.
            aiohttp.ClientError, TimeoutError, ValueError: transport failure or a body that is not JSON.
        """
        entry = self._cache.setdefault(appid, _Cached())
        if entry.token and time.monotonic() < entry.expires_at:
            return entry.token
        async with entry.lock:
            if entry.token and time.monotonic() < entry.expires_at:
                return entry.token
            body = await post_json(
                self._http(),
                f"{self._base}/cgi-bin/stable_token",
                {"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": False},
            )
            self.fetches += 1
            if body.get("errcode"):
                raise WeChatApiError(int(body["errcode"]), str(body.get("errmsg", "")))
            expires_in = float(body.get("expires_in", 7200))
            entry.token = str(body["access_token"])
            entry.expires_at = time.monotonic() + max(expires_in - RENEW_BEFORE_S, expires_in / 2)
            return entry.token

    def cached(self) -> list[str]:
        """The tokens held now (to scrub them from text; never to log)."""
        return [e.token for e in self._cache.values() if e.token]

    def invalidate(self, appid: str, token: str) -> None:
        """Forget ``token`` if it is still the cached one (40001/40014/42001)."""
        entry = self._cache.get(appid)
        if entry is not None and entry.token == token:
            entry.token = ""
            entry.expires_at = 0.0


def template_data(task: DeliveryTask) -> dict[str, dict[str, str]]:
    """Template fields for the "new reply" template, each one line of at most 20 characters.

    Keys follow the category template library's typed names: thing (sender, subject), phrase (category),
    time (arrival, Asia/Shanghai is the account's zone but UTC is stated).
    """
    c = task.content
    arrived = c.arrived_at.strftime("%Y-%m-%d %H:%M") if c.arrived_at else ""
    return {
        "thing1": {"value": one_line(c.sender or "-", FIELD_LIMIT)},
        "thing2": {"value": one_line(c.subject or "(no subject)", FIELD_LIMIT)},
        "phrase3": {"value": one_line(c.title, FIELD_LIMIT)},
        "time4": {"value": one_line(arrived or "-", FIELD_LIMIT)},
    }


def classify_errcode(errcode: int, errmsg: str, quota_delay_s: float) -> Outcome:
    """Map a non-zero template/send errcode to an outcome (reference/notify.md 2.4)."""
    detail = f"wechat errcode {errcode}: {errmsg}"[:300]
    if errcode == -1:
        return Outcome("retry", detail)
    if errcode == 43004:
        return Outcome("skipped", detail, binding_action="disable")
    if errcode == 45009:
        return Outcome("retry", detail, retry_after_s=quota_delay_s, alert=True)
    if errcode in TOKEN_ERRCODES:
        return Outcome("retry", detail, alert=True)  # still failing after the inline refresh
    if errcode in CONFIG_ERRCODES or errcode in PAYLOAD_ERRCODES:
        return Outcome("failed", detail, dead_letter=True, alert=True)
    return Outcome("failed", detail, dead_letter=True, alert=True)


class WeChatSender:
    """Sends template messages for one Official Account (AppID) to bound openids."""

    def __init__(
        self,
        *,
        base_url: str,
        appid: str,
        secret: str,
        template_id: str,
        quota_delay_s: float = 6 * 3600.0,
        timeout_s: float = 10.0,
        max_connections: int = 100,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._base = base_url.rstrip("/")
        self.appid = appid
        self._secret = secret
        self.template_id = template_id
        self.quota_delay_s = quota_delay_s
        self.tokens = TokenCache(self._http, base_url)

    def __repr__(self) -> str:
        return f"WeChatSender(appid={self.appid!r})"

    def scrub(self, text: str) -> str:
        """``text`` with the AppSecret and any cached access token replaced by ``***`` (the shared
        :func:`~laifaxin_shared.providers.errors.redact`)."""
        return redact(text, (self._secret, *self.tokens.cached()))

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=self._max_connections
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` with the access token, refreshing it and retrying once on
        40001/40014/42001; returns the answer (errcode 0 or not).

        Raises:
            WeChatApiError: the token endpoint refused.
            WeChatHttpError: a non-2xx status.
            aiohttp.ClientError, TimeoutError, ValueError: transport failure or a body that is not JSON.
        """
        url = f"{self._base}{path}"
        token = await self.tokens.get(self.appid, self._secret)
        result = await post_json(self._http(), url, body, {"access_token": token})
        if int(result.get("errcode", 0)) in TOKEN_ERRCODES:
            self.tokens.invalidate(self.appid, token)
            token = await self.tokens.get(self.appid, self._secret)
            result = await post_json(self._http(), url, body, {"access_token": token})
        return result

    async def create_qrcode(self, scene_str: str, expire_seconds: int) -> QrCode:
        """A temporary string-scene QR code (WeChat doc "生成带参数的二维码", ``QR_STR_SCENE``).

        ``scene_str``: 1..64 characters, comes back in the follow/scan event's ``EventKey``
        (``qrscene_<scene_str>`` on ``subscribe``, ``<scene_str>`` on ``SCAN``). ``expire_seconds``: clamped to
        1..2 592 000 (30 days).

        Raises:
            ValueError: ``scene_str`` empty or longer than 64 characters; or an answer without a ticket.
            WeChatApiError: WeChat answered an errcode (token endpoint or ``qrcode/create``, after one token
                refresh on 40001/40014/42001); the message carries errcode and errmsg only.
            WeChatHttpError: a non-2xx status.
            aiohttp.ClientError, TimeoutError: transport failure.
        """
        if not 1 <= len(scene_str) <= SCENE_STR_MAX:
            raise ValueError(f"scene_str must be 1..{SCENE_STR_MAX} characters")
        expire = min(max(int(expire_seconds), 1), QRCODE_MAX_EXPIRE_S)
        body = {
            "expire_seconds": expire,
            "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene_str}},
        }
        result = await self._call("/cgi-bin/qrcode/create", body)
        errcode = int(result.get("errcode", 0))
        if errcode:
            raise WeChatApiError(errcode, str(result.get("errmsg", "")))
        ticket = str(result.get("ticket", ""))
        if not ticket:
            raise ValueError("qrcode/create answered without a ticket")
        return QrCode(ticket, int(result.get("expire_seconds", expire)), str(result.get("url", "")))

    async def send_template(
        self, openid: str, data: dict[str, dict[str, str]], url: str, client_msg_id: str
    ) -> dict[str, Any]:
        """``template/send`` once, refreshing the token and retrying once on 40001/40014/42001.

        Returns the response body (``errcode`` 0 with ``msgid``, or the error).

        Raises:
            WeChatApiError: the token endpoint refused.
            WeChatHttpError: a non-2xx status.
            aiohttp.ClientError, TimeoutError, ValueError: transport failure or a body that is not JSON.
        """
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": self.template_id,
            "client_msg_id": client_msg_id,
            "data": data,
        }
        if url:
            body["url"] = url
        return await self._call("/cgi-bin/message/template/send", body)

    async def send(self, task: DeliveryTask, binding: Binding) -> Outcome:
        """Send the task's alert to ``binding.target_id`` (an openid)."""
        try:
            result = await self.send_template(
                binding.target_id, template_data(task), task.content.url, task.dedupe_key
            )
        except WeChatApiError as exc:
            return classify_errcode(exc.errcode, exc.errmsg, self.quota_delay_s)
        except WeChatHttpError as exc:
            return Outcome("retry", f"wechat http {exc.status}")
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return Outcome("retry", f"wechat transport: {type(exc).__name__}")
        errcode = int(result.get("errcode", 0))
        if errcode == 0:
            return Outcome("sent", "ok", provider_id=str(result.get("msgid", "")))
        return classify_errcode(errcode, str(result.get("errmsg", "")), self.quota_delay_s)
