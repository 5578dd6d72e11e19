"""A loopback WeChat Official Account API for tests and benchmarks (reference/notify.md sections 2 and 5).

Implements, on aiohttp:

- ``GET /cgi-bin/token?grant_type=client_credential&appid=..&secret=..`` (getAccessToken);
- ``POST /cgi-bin/stable_token`` (getStableAccessToken; ``force_refresh`` false returns the current token);
- ``POST /cgi-bin/message/template/send?access_token=..``: checks the token (40001 unknown, 42001 expired),
  the template id (40037), the fields (47003 when a value is empty, over 20 characters or has a newline),
  then answers ``{"errcode":0,"errmsg":"ok","msgid":N}``. The same (openid, client_msg_id) within 10 minutes
  is sent once (the same msgid comes back and no second message is recorded);
- ``POST /cgi-bin/qrcode/create?access_token=..`` ("生成带参数的二维码"): checks the token as the send does,
  then ``action_name`` (``QR_SCENE``/``QR_STR_SCENE``/``QR_LIMIT_SCENE``/``QR_LIMIT_STR_SCENE``, else 40053), the
  scene (``scene_str`` 1..64 characters, else 40097) and ``expire_seconds`` (temporary codes: at most 2 592 000,
  30 when absent) and answers ``{"ticket": .., "expire_seconds": N, "url": "http://weixin.qq.com/q/.."}``; the
  codes made are in :attr:`WeChatServer.qrcodes`.

The other direction, WeChat pushing an event to the Official Account's server ("接收事件推送"):
:meth:`WeChatServer.scan` plays a user scanning one of the codes made: it POSTs the ``subscribe`` event
(``EventKey`` ``qrscene_<scene>``, ``Ticket``; or ``SCAN`` with ``<scene>`` for a user already following) to the
server's callback URL, signed as WeChat signs it (``signature`` = SHA-1 of the sorted token, ``timestamp`` and
``nonce``; "接入指南"), and returns what it sent and the answer (:class:`CallbackPush`), so tests can replay it.

Every answer is HTTP 200 with an errcode body, as WeChat does. Scripting: :meth:`script` queues errcodes
answered by the next sends (``0`` = normal processing), :meth:`script_qrcode` the same for
``qrcode/create``; :meth:`expire_tokens` makes every issued token answer
42001; ``latency_s`` delays every answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.loopback import serve

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40014: "invalid access_token",
    40037: "invalid template_id",
    40164: "invalid ip, not in whitelist",
    42001: "access_token expired",
    40053: "invalid action info, please check document",
    40097: "invalid args",
    43004: "require subscribe",
    45009: "reach max api daily quota limit",
    47003: "argument invalid! data.thing1.value invalid",
}


@dataclass
class SentMessage:
    """One template message the fake platform accepted."""

    openid: str
    template_id: str
    client_msg_id: str
    data: dict[str, Any]
    url: str
    msgid: int
    at: float


@dataclass
class QrCodeMade:
    """One temporary or permanent QR code the fake platform created."""

    action_name: str
    scene: str
    ticket: str
    expire_seconds: int | None
    at: float


@dataclass
class CallbackPush:
    """One event pushed to an Official Account server: the signed query, the XML body and the answer."""

    params: dict[str, str]
    body: str
    status: int
    text: str


def sign_callback(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's callback ``signature``: SHA-1 hex of the sorted concatenation of token, timestamp and nonce."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324  # WeChat's


async def push_callback(
    url: str, token: str, body: str, *, timestamp: str | None = None, nonce: str | None = None
) -> CallbackPush:
    """POST ``body`` to ``url`` as WeChat pushes events: ``signature``, ``timestamp`` (now unless given) and a
    random ``nonce`` in the query."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    params = {"signature": sign_callback(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    async with aiohttp.ClientSession() as http, http.post(url, params=params, data=body.encode()) as answer:
        return CallbackPush(params, body, answer.status, await answer.text())


@dataclass
class WeChatServer:
    """The fake API; ``async with WeChatServer(apps={"wxAPP": "secret"}) as wx: wx.base_url``."""

    apps: dict[str, str] = field(default_factory=lambda: {"wx-test-app": "test-app-secret"})
    templates: set[str] = field(default_factory=lambda: {"TPL_NEW_REPLY"})
    latency_s: float = 0.0
    token_ttl_s: int = 7200
    sent: list[SentMessage] = field(default_factory=list)
    send_requests: int = 0
    token_requests: int = 0
    stable_token_requests: int = 0
    qrcode_requests: int = 0
    qrcodes: list[QrCodeMade] = field(default_factory=list)
    base_url: str = ""
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _expired: set[str] = field(default_factory=set)
    _script: deque[int] = field(default_factory=deque)
    _qr_script: deque[int] = field(default_factory=deque)
    _dedupe: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    _msgids: Any = field(default_factory=lambda: itertools.count(200228332))
    _runner: web.AppRunner | None = None

    def script(self, *errcodes: int) -> None:
        """Answer the next template sends with these errcodes (0 = process normally)."""
        self._script.extend(errcodes)

    def script_qrcode(self, *errcodes: int) -> None:
        """Answer the next ``qrcode/create`` calls (with a valid token) with these errcodes (0 = normally)."""
        self._qr_script.extend(errcodes)

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001."""
        self._expired.update(tok for tok, _ in self._tokens.values())
        self._tokens.clear()

    def messages_for(self, openid: str) -> list[SentMessage]:
        return [m for m in self.sent if m.openid == openid]

    async def scan(
        self,
        callback_url: str,
        token: str,
        openid: str,
        *,
        ticket: str | None = None,
        following: bool = False,
        account: str = "gh_laifaxin",
    ) -> CallbackPush:
        """``openid`` scans the code of ``ticket`` (default: the last one made): WeChat pushes ``subscribe``
        (``qrscene_<scene>``), or ``SCAN`` (``<scene>``) when ``following``, to ``callback_url``, signed with
        ``token``."""
        code = next(c for c in reversed(self.qrcodes) if ticket is None or c.ticket == ticket)
        event, key = ("SCAN", code.scene) if following else ("subscribe", f"qrscene_{code.scene}")
        body = (
            f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
            f"<Ticket><![CDATA[{code.ticket}]]></Ticket></xml>"
        )
        return await push_callback(callback_url, token, body)

    async def __aenter__(self) -> WeChatServer:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_post("/cgi-bin/message/template/send", self._send)
        app.router.add_post("/cgi-bin/qrcode/create", self._qrcode)
        self._runner, self.base_url = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, body: dict[str, Any]) -> web.Response:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return web.json_response(body)

    def _issue(self, appid: str, fresh: bool) -> dict[str, Any]:
        current = self._tokens.get(appid)
        if current and not fresh and current[1] > time.monotonic():
            token, exp = current
        else:
            token, exp = "AT_" + secrets.token_urlsafe(48), time.monotonic() + self.token_ttl_s
            self._tokens[appid] = (token, exp)
        return {"access_token": token, "expires_in": max(int(exp - time.monotonic()), 0)}

    def _check_app(self, appid: str, secret: str) -> dict[str, Any] | None:
        if self.apps.get(appid) != secret:
            return {
                "errcode": 40013 if appid not in self.apps else 40125,
                "errmsg": "invalid appid or appsecret",
            }
        return None

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        q = request.query
        error = self._check_app(q.get("appid", ""), q.get("secret", ""))
        # getAccessToken: a new token every call (the old one stays valid 5 minutes; not modelled)
        return await self._answer(error or self._issue(q.get("appid", ""), fresh=True))

    async def _stable_token(self, request: web.Request) -> web.Response:
        self.stable_token_requests += 1
        body = await request.json()
        if body.get("grant_type") != "client_credential":
            return await self._answer({"errcode": 40002, "errmsg": "invalid grant_type"})
        error = self._check_app(str(body.get("appid", "")), str(body.get("secret", "")))
        return await self._answer(
            error or self._issue(str(body["appid"]), fresh=bool(body.get("force_refresh")))
        )

    def _token_ok(self, token: str) -> int:
        if token in self._expired:
            return 42001
        if not any(token == t and exp > time.monotonic() for t, exp in self._tokens.values()):
            return 40001
        return 0

    async def _send(self, request: web.Request) -> web.Response:
        self.send_requests += 1
        token_err = self._token_ok(request.query.get("access_token", ""))
        if token_err:
            return await self._answer({"errcode": token_err, "errmsg": ERRMSG[token_err]})
        body = await request.json()
        if self._script:
            code = self._script.popleft()
            if code:
                return await self._answer({"errcode": code, "errmsg": ERRMSG.get(code, "scripted")})
        if body.get("template_id") not in self.templates:
            return await self._answer({"errcode": 40037, "errmsg": ERRMSG[40037]})
        data = body.get("data") or {}
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, str) or not value or len(value) > 20 or "\n" in value or "\r" in value:
                return await self._answer(
                    {"errcode": 47003, "errmsg": f"argument invalid! data.{key}.value invalid"}
                )
        openid = str(body.get("touser", ""))
        client_msg_id = str(body.get("client_msg_id", ""))
        now = time.monotonic()
        if client_msg_id:
            seen = self._dedupe.get((openid, client_msg_id))
            if seen and now - seen[1] < 600:
                return await self._answer({"errcode": 0, "errmsg": "ok", "msgid": seen[0]})
        msgid = next(self._msgids)
        if client_msg_id:
            self._dedupe[(openid, client_msg_id)] = (msgid, now)
        self.sent.append(
            SentMessage(
                openid, str(body["template_id"]), client_msg_id, data, str(body.get("url", "")), msgid, now
            )
        )
        return await self._answer({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    async def _qrcode(self, request: web.Request) -> web.Response:
        self.qrcode_requests += 1
        token_err = self._token_ok(request.query.get("access_token", ""))
        if token_err:
            return await self._answer({"errcode": token_err, "errmsg": ERRMSG[token_err]})
        body = await request.json()
        if self._qr_script:
            code = self._qr_script.popleft()
            if code:
                return await self._answer({"errcode": code, "errmsg": ERRMSG.get(code, "scripted")})
        action = str(body.get("action_name", ""))
        if action not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"):
            return await self._answer({"errcode": 40053, "errmsg": ERRMSG[40053]})
        scene = (body.get("action_info") or {}).get("scene") or {}
        value = scene.get("scene_str") if action.endswith("STR_SCENE") else scene.get("scene_id")
        if action.endswith("STR_SCENE"):
            if not isinstance(value, str) or not 1 <= len(value) <= 64:
                return await self._answer({"errcode": 40097, "errmsg": ERRMSG[40097]})
        elif not isinstance(value, int) or value <= 0:
            return await self._answer({"errcode": 40097, "errmsg": ERRMSG[40097]})
        expire: int | None = None
        if action in ("QR_SCENE", "QR_STR_SCENE"):
            expire = int(body.get("expire_seconds", 30))
            if not 0 < expire <= 2_592_000:
                return await self._answer({"errcode": 40097, "errmsg": ERRMSG[40097]})
        ticket = "gQ" + secrets.token_urlsafe(40) + "=="
        self.qrcodes.append(QrCodeMade(action, str(value), ticket, expire, time.monotonic()))
        answer: dict[str, Any] = {
            "ticket": ticket,
            "url": "http://weixin.qq.com/q/" + secrets.token_urlsafe(16),
        }
        if expire is not None:
            answer["expire_seconds"] = expire
        return await self._answer(answer)
