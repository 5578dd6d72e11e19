"""Loopback chat robots (WeCom, DingTalk, Feishu/Lark) and a generic webhook receiver, for the Apprise channel's
tests.

Implements, on aiohttp:

- ``POST /cgi-bin/webhook/send?key=KEY``: the WeCom group robot (robot doc 91770, reference/notify.md 2.5).
  Unknown key: errcode 93000 ("invalid webhook url"); ``msgtype`` other than text/markdown: 40008; empty
  content: 44004; content over 2048 bytes of UTF-8: 40058; more than ``rate_limit_per_minute`` messages per
  key in 60 s: 45009. Otherwise ``{"errcode":0,"errmsg":"ok"}``. Every answer is HTTP 200 with an errcode body,
  as WeCom does.
- ``POST /robot/send?access_token=TOKEN[&timestamp=MS&sign=S]``: a DingTalk custom robot. ``dingtalk_robots``
  maps each token to its signing secret (None: signing off). Unknown token: 300001 "token is not exist"; a
  robot with a secret checks ``timestamp`` (milliseconds, within an hour) and ``sign`` = base64(HMAC-SHA256(key
  = secret, msg = "timestamp\\nsecret")), else 310000 "sign not match"; msgtype other than text/markdown:
  400105; empty content: 40035; more than ``dingtalk_rate_limit_per_minute`` messages per token in 60 s:
  130101. Otherwise ``{"errcode":0,"errmsg":"ok"}``; every answer is HTTP 200.
- ``POST /open-apis/bot/v2/hook/TOKEN``: a Feishu/Lark custom bot. ``feishu_bots`` maps each token to its
  secret. Unknown token: 19001 "param invalid: incoming webhook access token invalid"; with a secret the body's
  ``timestamp`` (seconds, within an hour) and ``sign`` = base64(HMAC-SHA256(key = "timestamp\\nsecret", msg =
  "")) are checked, else 19021; a body over 20 KB, not JSON or not a text message: 9499 "Bad Request"; more than
  ``feishu_rate_limit_per_minute`` per token in 60 s: 9499 "too many request". 9499 is answered with HTTP 400
  (as Feishu does), the rest with HTTP 200: ``{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},
  "msg":"success"}``, or only the legacy ``{"StatusCode":0,...}`` when ``feishu_legacy_answers``.
- ``POST /hooks/<name>``: a generic webhook (what Apprise's ``json://`` and ``form://`` post to): records the
  headers and the JSON or form body and answers 200, or the statuses queued by :meth:`script_statuses`;
  ``max_in_flight`` is the most requests it held at once (``latency_s`` delays every answer).

:meth:`script_codes` queues codes a robot answers to its next sends (0 = process normally).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.loopback import serve


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


WECOM_ERRMSG = {
    -1: "system busy",
    40008: "invalid message type",
    40058: "content exceed max length 2048",
    44004: "empty content",
    45009: "api freq out of limit",
    93000: "invalid webhook url, hint: [1700000000_1_abcdef], from ip: 127.0.0.1",
}


DINGTALK_ERRMSG = {
    -1: "system busy",
    40035: "缺少参数 content",
    130101: "send too fast, exceed 20 times per minute",
    300001: "token is not exist",
    310000: "keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
    400102: "机器人已停用",
    400105: "不支持的消息类型",
    410100: "发送速度太快而限流",
}
FEISHU_MSG = {
    9499: "too many request",
    11232: "frequency limited",
    19001: "param invalid: incoming webhook access token invalid",
    19021: "sign match fail or timestamp is not within one hour from current time",
    19022: "Ip Not Allowed",
    19024: "Key Words Not Found",
}
FEISHU_MAX_BODY = 20 * 1024


@dataclass
class RobotMessage:
    """One message a robot accepted."""

    key: str
    msgtype: str
    content: str
    vendor: str = "wecom"
    signed: bool = False
    body_bytes: int = 0
    at_mobiles: list[str] = field(default_factory=list)


@dataclass
class HookRequest:
    """One request the generic webhook received."""

    path: str
    method: str
    content_type: str
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass
class WebhookServer:
    """``async with WebhookServer(robot_keys={"KEY"}) as hooks: hooks.base_url``."""

    robot_keys: set[str] = field(default_factory=set)
    rate_limit_per_minute: int = 20
    dingtalk_robots: dict[str, str | None] = field(default_factory=dict)
    dingtalk_rate_limit_per_minute: int = 20
    feishu_bots: dict[str, str | None] = field(default_factory=dict)
    feishu_rate_limit_per_minute: int = 100
    feishu_legacy_answers: bool = False
    robot_messages: list[RobotMessage] = field(default_factory=list)
    robot_requests: int = 0
    """WeCom requests received."""
    robot_calls: dict[str, int] = field(default_factory=dict)
    """Requests received per vendor (``wecom``, ``dingtalk``, ``feishu``)."""
    robot_queries: list[dict[str, str]] = field(default_factory=list)
    """The query string of every robot request (to check what went over the wire)."""
    hook_requests: list[HookRequest] = field(default_factory=list)
    base_url: str = ""
    latency_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    _scripted: dict[str, deque[int]] = field(default_factory=dict)
    _statuses: deque[int] = field(default_factory=deque)
    _sent_at: dict[str, deque[float]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def script_codes(self, vendor: str, *codes: int) -> None:
        """Answer the next sends to a ``wecom``, ``dingtalk`` or ``feishu`` robot with these codes (0 = process
        normally)."""
        self._scripted.setdefault(vendor, deque()).extend(codes)

    def script_errcodes(self, *errcodes: int) -> None:
        """Answer the next WeCom robot sends with these errcodes (0 = process normally)."""
        self.script_codes("wecom", *errcodes)

    def messages(self, vendor: str) -> list[RobotMessage]:
        """Messages a vendor's robots accepted."""
        return [m for m in self.robot_messages if m.vendor == vendor]

    def _next_scripted(self, vendor: str) -> int:
        self.robot_calls[vendor] = self.robot_calls.get(vendor, 0) + 1
        queue = self._scripted.get(vendor)
        return queue.popleft() if queue else 0

    def _over_rate(self, key: str, per_minute: int) -> bool:
        """Counts a send to ``key``; True when it is over ``per_minute`` in the last 60 s (not counted)."""
        now = time.monotonic()
        recent = self._sent_at.setdefault(key, deque())
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= per_minute:
            return True
        recent.append(now)
        return False

    def script_statuses(self, *statuses: int) -> None:
        """Answer the next generic webhook requests with these HTTP statuses (200 = accept)."""
        self._statuses.extend(statuses)

    def accepted_hooks(self, name: str | None = None) -> list[HookRequest]:
        """Webhook requests answered 2xx (of one ``/hooks/<name>`` when given)."""
        return [
            r
            for r in self.hook_requests
            if 200 <= r.status < 300 and (name is None or r.path == f"/hooks/{name}")
        ]

    async def __aenter__(self) -> WebhookServer:
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self._robot)
        app.router.add_post("/robot/send", self._dingtalk)
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self._feishu)
        app.router.add_route("*", "/hooks/{name}", self._hook)
        self._runner, self.base_url = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _robot(self, request: web.Request) -> web.Response:
        self.robot_requests += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        key = request.query.get("key", "")
        self.robot_queries.append(dict(request.query))
        scripted = self._next_scripted("wecom")
        if scripted:
            return self._errcode(scripted)
        if key not in self.robot_keys:
            return self._errcode(93000)
        try:
            body = await request.json()
        except ValueError:
            return self._errcode(40058)
        msgtype = str(body.get("msgtype", ""))
        if msgtype not in ("text", "markdown"):
            return self._errcode(40008)
        content = str((body.get(msgtype) or {}).get("content", ""))
        if not content:
            return self._errcode(44004)
        if len(content.encode()) > 2048:
            return self._errcode(40058)
        if self._over_rate(f"wecom:{key}", self.rate_limit_per_minute):
            return self._errcode(45009)
        self.robot_messages.append(RobotMessage(key, msgtype, content))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _errcode(self, errcode: int, messages: dict[int, str] = WECOM_ERRMSG) -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": messages.get(errcode, "error")})

    async def _dingtalk(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.robot_queries.append(query)
        raw = await request.read()
        scripted = self._next_scripted("dingtalk")
        if scripted:
            return self._errcode(scripted, DINGTALK_ERRMSG)
        token = query.get("access_token", "")
        if token not in self.dingtalk_robots:
            return self._errcode(300001, DINGTALK_ERRMSG)
        secret = self.dingtalk_robots[token]
        signed = "sign" in query
        if secret is not None:
            stamp = query.get("timestamp", "")
            want = _b64_hmac(secret.encode(), f"{stamp}\n{secret}".encode())
            fresh = stamp.isdigit() and abs(time.time() * 1000 - int(stamp)) < 3_600_000
            if not fresh or not hmac.compare_digest(query.get("sign", ""), want):
                return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._errcode(40035, DINGTALK_ERRMSG)
        msgtype = str(body.get("msgtype", ""))
        if msgtype not in ("text", "markdown"):
            return self._errcode(400105, DINGTALK_ERRMSG)
        part = body.get(msgtype) or {}
        content = str(part.get("content") or part.get("text") or "")
        if not content:
            return self._errcode(40035, DINGTALK_ERRMSG)
        if self._over_rate(f"dingtalk:{token}", self.dingtalk_rate_limit_per_minute):
            return self._errcode(130101, DINGTALK_ERRMSG)
        mobiles = [str(m) for m in (body.get("at") or {}).get("atMobiles") or []]
        self.robot_messages.append(
            RobotMessage(token, msgtype, content, "dingtalk", signed, len(raw), mobiles)
        )
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _feishu(self, request: web.Request) -> web.Response:
        self.robot_queries.append(dict(request.query))
        raw = await request.read()
        scripted = self._next_scripted("feishu")
        if scripted:
            return self._feishu_code(scripted)
        token = request.match_info["token"]
        if token not in self.feishu_bots:
            return self._feishu_code(19001)
        if len(raw) > FEISHU_MAX_BODY:
            return self._feishu_code(9499, "Bad Request")
        try:
            body = json.loads(raw)
            text = str(body["content"]["text"]) if body.get("msg_type") == "text" else ""
        except (ValueError, KeyError, TypeError, AttributeError):
            text = ""
        if not text:
            return self._feishu_code(9499, "Bad Request")
        secret = self.feishu_bots[token]
        if secret is not None:
            stamp = str(body.get("timestamp", ""))
            want = _b64_hmac(f"{stamp}\n{secret}".encode(), b"")
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 3600
            if not fresh or not hmac.compare_digest(str(body.get("sign", "")), want):
                return self._feishu_code(19021)
        if self._over_rate(f"feishu:{token}", self.feishu_rate_limit_per_minute):
            return self._feishu_code(9499)
        self.robot_messages.append(RobotMessage(token, "text", text, "feishu", "sign" in body, len(raw)))
        if self.feishu_legacy_answers:
            return web.json_response({"StatusCode": 0, "StatusMessage": "success"})
        return web.json_response(
            {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
        )

    def _feishu_code(self, code: int, msg: str | None = None) -> web.Response:
        answer = {"code": code, "msg": msg or FEISHU_MSG.get(code, "error"), "data": {}}
        return web.json_response(answer, status=400 if code == 9499 else 200)

    async def _hook(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._hook_answer(request)
        finally:
            self.in_flight -= 1

    async def _hook_answer(self, request: web.Request) -> web.Response:
        status = self._statuses.popleft() if self._statuses else 200
        content_type = request.content_type
        record = HookRequest(
            path=request.path,
            method=request.method,
            content_type=content_type,
            headers=dict(request.headers),
            query=dict(request.query),
            status=status,
        )
        if content_type == "application/json":
            record.json = await request.json()
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            record.form = {k: str(v) for k, v in (await request.post()).items()}
        self.hook_requests.append(record)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return web.json_response({"ok": 200 <= status < 300}, status=status)
