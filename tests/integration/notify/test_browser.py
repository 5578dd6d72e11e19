"""Headless Debian chromium driven over the DevTools protocol (CDP, aiohttp websocket) against notify's page.

What it shows: the page served by notify registers the service worker; notification permission is granted via
``Browser.grantPermissions``; the page stores a push subscription through the API (a generated one: the browser
cannot complete ``pushManager.subscribe`` without a reachable push service, reference/notify.md section 0.2);
notify sends the alert to the loopback push service, which decrypts it (RFC 8291); that plaintext is handed to
the browser with ``ServiceWorker.deliverPushMessage`` and the service worker shows a notification whose tag is
the dedupe key; the same push again replaces it rather than stacking.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from pydantic import SecretStr

from laifaxin_notify.app import create_app
from laifaxin_notify.auth import issue_token
from laifaxin_notify.channels.webpush import WebPushSender, load_vapid
from laifaxin_notify.egress import EgressGuard
from laifaxin_notify.settings import NotifySettings
from tests.integration.notify.conftest import classified, serve
from tests.support.infra import Servers
from tests.support.push_service import PushService

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]


class CDP:
    """A minimal DevTools protocol client on one browser websocket (flattened target sessions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                fut = self._pending.pop(data["id"])
                if "error" in data:
                    fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                else:
                    fut.set_result(data.get("result", {}))
            else:
                self.events.append(data)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        body: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            body["sessionId"] = session
        await self.ws.send_str(json.dumps(body))
        return await asyncio.wait_for(fut, 20)

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[CDP]:
    """Start headless chromium with a fresh profile and connect to its browser target."""
    profile = tempfile.mkdtemp(prefix="notify-chromium-")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        url = ""
        async with asyncio.timeout(30):
            while not url:
                line = (await proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("chromium exited before DevTools listened")
                found = re.search(r"DevTools listening on (ws://\S+)", line)
                url = found.group(1) if found else ""
        async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
            cdp = CDP(ws)
            try:
                yield cdp
            finally:
                await cdp.close()
    finally:
        proc.kill()
        await proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def wait_value(cdp: CDP, session: str, expression: str, predicate: Any, timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = await cdp.evaluate(session, expression)
            if predicate(value):
                return value
            await asyncio.sleep(0.2)


NOTIFICATIONS_JS = (
    "navigator.serviceWorker.ready.then(r => r.getNotifications())"
    ".then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data})))"
)


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium not installed (deploy/local/install_chromium.sh)"
)
async def test_page_service_worker_and_push_notification(real_servers: Servers, push: PushService) -> None:
    vapid = load_vapid("")
    settings = NotifySettings(
        mongodb_url=SecretStr(real_servers.mongodb_url),
        mongodb_database=f"notify_{uuid.uuid4().hex[:10]}",
        environment="test",
        jwt_secret=SecretStr("browser-test-jwt-secret-0123456789abcdef"),
        log_json=False,
        log_level="WARNING",
    )
    sender = WebPushSender(
        vapid=vapid, subject="mailto:ops@laifa.xin", ttl_s=600, guard=EgressGuard("127.0.0.0/8")
    )
    app = create_app(settings, consume=False, senders={"webpush": sender})
    ev = classified()
    token = issue_token(settings, ev.tenant_id, ev.user_id)
    async with serve(app) as base_url, chromium() as cdp:
        origin = base_url
        await cdp.send("Browser.grantPermissions", {"origin": origin, "permissions": ["notifications"]})
        target = await cdp.send("Target.createTarget", {"url": "about:blank"})
        session = (
            await cdp.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        )["sessionId"]
        await cdp.send("ServiceWorker.enable", {}, session)
        await cdp.send("Page.enable", {}, session)
        await cdp.send("Page.navigate", {"url": f"{base_url}/#token={token}"}, session)

        scope = await wait_value(
            cdp, session, "window.laifaxinReady ? window.laifaxinReady.then(r => r.scope) : null", bool
        )
        assert scope == f"{base_url}/"
        assert await cdp.evaluate(session, "Notification.permission") == "granted"
        status_text = await cdp.evaluate(session, "document.getElementById('status').textContent")
        assert "Service worker ready" in status_text

        # the page stores a (generated) subscription through the API with the user's token
        subscription = push.subscribe()
        stored = await cdp.evaluate(
            session, f"window.laifaxinNotify.storeSubscription({json.dumps(subscription)})"
        )
        assert stored["channel"] == "webpush"
        key = await cdp.evaluate(
            session, "window.laifaxinNotify.api('/v1/vapid-public-key').then(r => r.publicKey)"
        )
        assert key == sender.public_key

        # push events go only to an activated worker: wait for the version to reach "activated"
        registration_id = ""
        async with asyncio.timeout(15):
            while not registration_id:
                for e in cdp.events:
                    if e.get("method") == "ServiceWorker.workerVersionUpdated":
                        for version in e["params"]["versions"]:
                            if (
                                version["scriptURL"] == f"{base_url}/sw.js"
                                and version["status"] == "activated"
                            ):
                                registration_id = version["registrationId"]
                await asyncio.sleep(0.1)

        # notify delivers the alert to the push service, which decrypts it
        results = await app.state.runtime.notifier.handle_classified(ev)
        [(task, outcome)] = results
        assert outcome == "sent"
        [pushed] = push.for_endpoint(subscription["endpoint"])
        plaintext = pushed.payload.decode()
        assert json.loads(plaintext)["tag"] == task.dedupe_key

        async def deliver(data: str, expect: int) -> list[dict[str, Any]]:
            # Right after activation chromium sometimes drops the first DevTools push; tags make a repeat
            # harmless (it replaces), so deliver again until the notification shows, at most 4 times.
            for _ in range(4):
                await cdp.send(
                    "ServiceWorker.deliverPushMessage",
                    {"origin": origin, "registrationId": registration_id, "data": data},
                    session,
                )
                with contextlib.suppress(TimeoutError):
                    shown: list[dict[str, Any]] = await wait_value(
                        cdp, session, NOTIFICATIONS_JS, lambda v: len(v) >= expect, timeout=2
                    )
                    return shown
            raise AssertionError("the service worker showed no notification")

        [note] = await deliver(plaintext, 1)
        assert note["tag"] == task.dedupe_key
        assert note["title"] == task.content.title and task.content.subject in note["body"]
        assert note["data"]["url"] == task.content.url

        # the same push again replaces the notification (same tag) instead of stacking
        await cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": origin, "registrationId": registration_id, "data": plaintext},
            session,
        )
        await asyncio.sleep(1.0)
        assert [n["tag"] for n in await cdp.evaluate(session, NOTIFICATIONS_JS)] == [task.dedupe_key]

        # a different alert (another dedupe key) does stack: the check above can fail
        ev2 = classified(2)
        [(task2, outcome2)] = await app.state.runtime.notifier.handle_classified(ev2)
        assert outcome2 == "sent"
        plaintext2 = push.for_endpoint(subscription["endpoint"])[-1].payload.decode()
        shown = await deliver(plaintext2, 2)
        assert sorted(n["tag"] for n in shown) == sorted([task.dedupe_key, task2.dedupe_key])

        async with httpx.AsyncClient(base_url=base_url) as http:
            rows = (await http.get("/v1/deliveries", headers={"Authorization": f"Bearer {token}"})).json()
        assert [(r["channel"], r["status"]) for r in rows] == [("webpush", "sent"), ("webpush", "sent")]
        await app.state.runtime.mongo.drop_database(settings.mongodb_database)
