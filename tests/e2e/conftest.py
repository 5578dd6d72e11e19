"""End-to-end harness: the four services as separate processes on real servers, driven through their APIs.

Kafka here is the e2e suite's own broker (its own state folder and ports), so a test may restart it without
disturbing anything else; MongoDB, Dovecot and the SMTP server are the session's real servers. WeChat and Web
Push are the loopback services that follow the vendors' contracts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from laifaxin_cli.demo import CORPUS, Observed, alert_emails, dedupe_key, load_corpus, watch_topics
from laifaxin_cli.stack import Stack, StackConfig
from laifaxin_shared.imap import client_tls_context, connect_imap
from laifaxin_shared.kafka import ensure_topics
from tests.conftest import MailAccount
from tests.support.infra import INFRA, Servers
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

ALL_CATEGORIES = ["to_reply", "inquiry", "ooo", "rejection", "bounce", "notification"]
CHANNELS = ("wechat", "email", "webpush")
TENANT = "tenant-e2e"


@dataclass
class OwnKafka:
    """A Kafka broker for the e2e suite alone, which tests may restart."""

    state: Path
    env: dict[str, str]
    bootstrap: str

    def _infra(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, str(INFRA), *args], env=self.env, capture_output=True, text=True, timeout=240
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    def stop(self) -> None:
        """Stop the broker (SIGTERM to its process group, as an orchestrator would) and wait for it."""
        pid = int((self.state / "run" / "kafka.pid").read_text())
        os.killpg(pid, signal.SIGTERM)
        for _ in range(300):
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)

    def start(self) -> None:
        self._infra("up", "--only", "kafka")


@pytest.fixture(scope="session")
def own_kafka(tmp_path_factory: pytest.TempPathFactory, real_servers: Servers) -> Iterator[OwnKafka]:
    state = tmp_path_factory.mktemp("e2e-kafka") / "state"
    port = 39000 + os.getpid() % 500 * 2
    env = dict(
        os.environ,
        LAIFAXIN_STATE_DIR=str(state),
        LAIFAXIN_KAFKA_PORT=str(port),
        LAIFAXIN_KAFKA_CONTROLLER_PORT=str(port + 1),
    )
    kafka = OwnKafka(state, env, f"127.0.0.1:{port}")
    kafka.start()
    try:
        yield kafka
    finally:
        subprocess.run([sys.executable, str(INFRA), "down"], env=env, capture_output=True, timeout=120)


@dataclass
class Platform:
    """One running platform with bound mailboxes and alert channels, and what it has delivered."""

    stack: Stack
    mail: dict[str, Any]
    wechat: WeChatServer
    push: PushService
    http: httpx.AsyncClient
    user_id: str
    started: float = field(default_factory=time.time)
    targets: dict[str, str] = field(default_factory=dict)
    mailboxes: dict[str, MailAccount] = field(default_factory=dict)
    seen: Observed = field(default_factory=Observed)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _watcher: asyncio.Task[None] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.config.token(TENANT, self.user_id)}"}

    async def bind_alerts(self, categories: list[str]) -> None:
        sub = self.push.subscribe()
        for method, path, body in [
            ("PUT", "/v1/preferences", {"categories": categories, "channels": list(CHANNELS)}),
            ("PUT", "/v1/bindings/wechat", {"openid": "o" + secrets.token_hex(13)}),
            ("PUT", "/v1/bindings/email", {"address": f"owner-{uuid.uuid4().hex[:6]}@laifaxin.example"}),
            ("POST", "/v1/bindings/webpush", sub),
        ]:
            r = await self.http.request(method, self.stack.notify_url + path, headers=self.headers, json=body)
            assert r.status_code < 300, (path, r.status_code, r.text)
        bindings = (await self.http.get(self.stack.notify_url + "/v1/bindings", headers=self.headers)).json()
        self.targets = {b["channel"]: b["target_id"] for b in bindings}

    async def bind_mailbox(self, account: MailAccount) -> str:
        r = await self.http.post(
            self.stack.binding_url + "/v1/mailboxes",
            headers=self.headers,
            json={
                "email": account.email,
                "password": account.password,
                "imap": {"host": account.host, "port": account.imaps_port, "security": "ssl"},
                "smtp": {"host": account.host, "port": account.smtps_port, "security": "ssl"},
            },
        )
        assert r.status_code == 201, r.text
        mailbox_id: str = r.json()["id"]
        self.mailboxes[mailbox_id] = account
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            mb = (
                await self.http.get(
                    f"{self.stack.binding_url}/v1/mailboxes/{mailbox_id}", headers=self.headers
                )
            ).json()
            if mb.get("last_synced_at"):
                return mailbox_id
            await asyncio.sleep(0.3)
        raise AssertionError(f"sync never baselined {account.email}: {mb}")

    def watch(self) -> None:
        cfg = self.stack.config
        self._watcher = asyncio.create_task(
            watch_topics(cfg.kafka_bootstrap_servers, cfg.topic_prefix, self.seen, self._stop)
        )

    async def append(self, account: MailAccount, messages: list[bytes]) -> None:
        ctx = client_tls_context(self.mail["ca_file"])
        imap = await connect_imap(account.host, account.imaps_port, "ssl", ssl_context=ctx)
        await imap.login(account.email, account.password)
        for raw in messages:
            assert (await imap.append(raw, mailbox="INBOX")).result == "OK"
        await imap.logout()

    def keys(self, channel: str) -> dict[str, str]:
        """dedupe key -> message natural key, for every classified message whose category alerts."""
        return {
            dedupe_key(str(c.event_id), self.user_id, channel, self.targets[channel]): c.ref.natural_key()
            for c in self.seen.classified.values()
        }

    def delivered(self) -> dict[str, Counter[str]]:
        """Per channel: how many times each dedupe key arrived at the provider."""
        out: dict[str, Counter[str]] = {"wechat": Counter(), "email": Counter(), "webpush": Counter()}
        out["wechat"].update(m.client_msg_id for m in self.wechat.sent)
        out["webpush"].update(p.json().get("tag") for p in self.push.received)
        index = Path(self.mail["smtp_received_index"])
        out["email"].update(key for key, _at in alert_emails(index, self.started))
        return out

    async def wait_for(self, expected_messages: int, timeout_s: float = 180) -> None:
        """Until ``expected_messages`` are classified and each has one alert per channel (or fail)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.seen.classified) >= expected_messages:
                got = self.delivered()
                if all(set(self.keys(ch)) <= set(got[ch]) for ch in CHANNELS):
                    return
            await asyncio.sleep(0.3)
        got = self.delivered()
        missing = {ch: len(set(self.keys(ch)) - set(got[ch])) for ch in CHANNELS}
        raise AssertionError(
            f"classified {len(self.seen.classified)}/{expected_messages}; alerts missing {missing}"
        )

    def assert_exactly_once(self) -> None:
        got = self.delivered()
        for ch in CHANNELS:
            wanted = self.keys(ch)
            dupes = {k: n for k, n in got[ch].items() if k in wanted and n > 1}
            assert not dupes, f"{ch}: alerted more than once: {dupes}"
            assert set(wanted) <= set(got[ch]), f"{ch}: missing alerts"
        # WeChat answers a repeated client_msg_id with the first msgid and records one message (as WeChat does);
        # count the send requests too, so a duplicate send cannot hide behind that.
        assert self.wechat.send_requests == len(self.keys("wechat")), self.wechat.send_requests

    async def close(self) -> None:
        self._stop.set()
        if self._watcher:
            await self._watcher


def corpus_messages() -> list[bytes]:
    """The demo corpus minus the unparseable file: one message per category at least, many languages."""
    return [raw for name, raw in load_corpus(CORPUS) if "garbage" not in name]


@pytest.fixture
async def platform(
    real_servers: Servers,
    own_kafka: OwnKafka,
    new_mail_account: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Platform]:
    """The platform with one sync worker, alerts for every category on all three channels."""
    prefix = f"e{uuid.uuid4().hex[:8]}."
    await ensure_topics(own_kafka.bootstrap, prefix=prefix, replication_factor=1)
    sync_workers = getattr(request, "param", 1)
    appid, app_secret = "wxe2e" + uuid.uuid4().hex[:8], secrets.token_urlsafe(12)
    relay = new_mail_account()
    async with WeChatServer(apps={appid: app_secret}) as wechat, PushService() as push:
        config = StackConfig(
            kafka_bootstrap_servers=own_kafka.bootstrap,
            mongodb_url=real_servers.mongodb_url,
            mail=real_servers.mail,
            topic_prefix=prefix,
            db_prefix=f"e2e{uuid.uuid4().hex[:6]}_",
            log_dir=tmp_path / "logs",
            wechat_api_base=wechat.base_url,
            wechat_appid=appid,
            wechat_secret=app_secret,
            smtp_relay_user=relay.email,
            smtp_relay_password=relay.password,
            extra_env={
                "notify": {
                    "NOTIFY_DIGEST_THRESHOLD_PER_MINUTE": "100000",
                    "NOTIFY_RATE_LIMIT_PER_HOUR": "100000",
                    "NOTIFY_RETRY_DELAYS_S": "[1, 2, 4]",
                },
                "sync": {
                    "SYNC_LEASE_TTL_SECONDS": "10",
                    "SYNC_KAFKA_SESSION_TIMEOUT_MS": "10000",
                    "SYNC_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
                    "SYNC_BACKOFF_MIN_SECONDS": "0.5",
                    "SYNC_BACKOFF_MAX_SECONDS": "3",
                },
            },
        )
        stack = Stack(config)
        async with httpx.AsyncClient(timeout=60) as http:
            plat = Platform(stack, real_servers.mail, wechat, push, http, user_id=f"u{uuid.uuid4().hex[:8]}")
            try:
                await stack.start(sync_workers=sync_workers)
                await plat.bind_alerts(ALL_CATEGORIES)
                plat.watch()
                yield plat
            finally:
                await plat.close()
                stack.stop()
                for p in stack.processes.values():
                    if p.proc is not None and p.proc.returncode not in (0, -15, None):
                        print(f"--- {p.name} exited {p.proc.returncode}:\n{p.tail(2000)}")
