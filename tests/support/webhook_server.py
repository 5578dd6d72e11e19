"""A loopback WeCom group robot and a generic webhook receiver, for the Apprise channel's tests.

Implements, on aiohttp:

- ``POST /cgi-bin/webhook/send?key=KEY``: the WeCom group robot (robot doc 91770, reference/notify.md 2.5).
  Unknown key: errcode 93000 ("invalid webhook url"); ``msgtype`` other than text/markdown: 40008; empty
  content: 44004; content over 2048 bytes of UTF-8: 40058; more than ``rate_limit_per_minute`` messages per
  key in 60 s: 45009. Otherwise ``{"errcode":0,"errmsg":"ok"}``. Every answer is HTTP 200 with an errcode body,
  as WeCom does. :meth:`script_errcodes` queues errcodes for the next sends (0 = process normally).
- ``POST /hooks/<name>``: a generic webhook (what Apprise's ``json://`` and ``form://`` post to): records the
  headers and the JSON or form body and answers 200, or the statuses queued by :meth:`script_statuses`;
  ``max_in_flight`` is the most requests it held at once (``latency_s`` delays every answer).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

WECOM_ERRMSG = {
    -1: "system busy",
    40008: "invalid message type",
    40058: "content exceed max length 2048",
    44004: "empty content",
    45009: "api freq out of limit",
    93000: "invalid webhook url, hint: [1700000000_1_abcdef], from ip: 127.0.0.1",
}


@dataclass
class RobotMessage:
    """One message a robot accepted."""

    key: str
    msgtype: str
    content: str


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
    robot_messages: list[RobotMessage] = field(default_factory=list)
    robot_requests: int = 0
    hook_requests: list[HookRequest] = field(default_factory=list)
    base_url: str = ""
    latency_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    _errcodes: deque[int] = field(default_factory=deque)
    _statuses: deque[int] = field(default_factory=deque)
    _sent_at: dict[str, deque[float]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def script_errcodes(self, *errcodes: int) -> None:
        """Answer the next robot sends with these errcodes (0 = process normally)."""
        self._errcodes.extend(errcodes)

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
        app.router.add_route("*", "/hooks/{name}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _robot(self, request: web.Request) -> web.Response:
        self.robot_requests += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        key = request.query.get("key", "")
        scripted = self._errcodes.popleft() if self._errcodes else 0
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
        now = time.monotonic()
        recent = self._sent_at.setdefault(key, deque())
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= self.rate_limit_per_minute:
            return self._errcode(45009)
        recent.append(now)
        self.robot_messages.append(RobotMessage(key, msgtype, content))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _errcode(self, errcode: int) -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": WECOM_ERRMSG.get(errcode, "error")})

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
