"""Drive the whole platform as a user would: used by ``make demo``, the end-to-end tests and the benchmarks.

:func:`running_platform` starts the loopback WeChat and Web Push services and the four services as processes
(:class:`laifaxin_cli.stack.Stack`), binds the alert channels through notify's API as a user does (WeChat by
scanning a QR code, which the loopback WeChat pushes to notify's callback; email by confirming the address with
the code of the confirmation mail the local SMTP server received; a browser push subscription) and follows the
message topics; :class:`Platform` then binds mailboxes through binding's API, delivers mail with IMAP APPEND and tells
what each channel delivered, by notify's dedupe key (WeChat ``client_msg_id``, the push payload's ``tag``, the
alert email's ``Message-ID``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from aiokafka import AIOKafkaConsumer

from laifaxin_cli.stack import Stack, StackConfig
from laifaxin_shared.events import ContactStatus, MailClassified, MailReceived
from laifaxin_shared.imap import client_tls_context, connect_imap
from laifaxin_shared.kafka import delete_topics, ensure_topics
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

CHANNELS = ("wechat", "email", "webpush")
ALL_CATEGORIES = ["to_reply", "inquiry", "ooo", "rejection", "bounce", "notification"]
APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")


class Account(Protocol):
    """A mail account on the local Dovecot + SMTP server (tests' ``MailAccount`` fits)."""

    email: str
    password: str
    host: str
    imaps_port: int
    smtps_port: int


@dataclass
class LocalAccount:
    email: str
    password: str
    host: str
    imaps_port: int
    smtps_port: int


def dedupe_key(event_id: str, user_id: str, channel: str, target_id: str) -> str:
    """notify's delivery key (SHA-256 of ``event_id|user_id|channel|target_id``), to attribute each alert."""
    return hashlib.sha256(f"{event_id}|{user_id}|{channel}|{target_id}".encode()).hexdigest()


CONFIRMATION_CODE = re.compile(r"confirmation code: ([A-Za-z0-9_-]+)")


def find_confirmation_code(index: Path, address: str, since: float) -> str | None:
    """The code of the latest confirmation mail notify sent to ``address`` since ``since`` (epoch seconds), as the
    local SMTP server recorded it (``received.jsonl`` + the message file), or None."""
    records = [json.loads(line) for line in index.read_text().splitlines()] if index.exists() else []
    for rec in reversed(records):
        if rec["received_at"] < since or address not in rec.get("rcpt_tos", []):
            continue
        msg = email.message_from_bytes(Path(rec["file"]).read_bytes(), policy=email.policy.default)
        body = msg.get_body(("plain",))
        found = CONFIRMATION_CODE.search(body.get_content() if body is not None else "")
        if found:
            return found.group(1)
    return None


async def confirmation_code(index: Path, address: str, since: float, timeout_s: float = 30.0) -> str:
    """:func:`find_confirmation_code`, waiting up to ``timeout_s`` for the mail.

    Raises:
        TimeoutError: no such mail arrived.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        code = await asyncio.to_thread(find_confirmation_code, index, address, since)
        if code is not None:
            return code
        if time.monotonic() > deadline:
            raise TimeoutError(f"no confirmation mail to {address}")
        await asyncio.sleep(0.2)


def alert_emails(index: Path, since: float) -> list[tuple[str, float]]:
    """(dedupe key, received time) of every alert email the local SMTP server accepted since ``since``, in
    arrival order; notify's alert emails carry ``Message-ID: <dedupe key@notify.laifaxin>``."""
    out: list[tuple[str, float]] = []
    if not index.exists():
        return out
    for line in index.read_text().splitlines():
        rec = json.loads(line)
        if rec["received_at"] < since:
            continue
        msg = email.message_from_bytes(Path(rec["file"]).read_bytes(), policy=email.policy.default)
        mid = str(msg.get("Message-ID", "")).strip("<>")
        if mid.endswith("@notify.laifaxin"):
            out.append((mid.split("@", 1)[0], rec["received_at"]))
    return out


@dataclass
class Observed:
    """What was seen on the message topics, by message natural key."""

    received: dict[str, MailReceived] = field(default_factory=dict)
    classified: dict[str, MailClassified] = field(default_factory=dict)
    quarantined: list[dict[str, str]] = field(default_factory=list)
    statuses: dict[str, ContactStatus] = field(default_factory=dict)  # by record key (tenant_id:recipient)


async def watch_topics(bootstrap: str, prefix: str, seen: Observed, stop: asyncio.Event) -> None:
    """Follow mail.received, mail.classified, mail.received.dlq and contact.status from the beginning until
    ``stop``."""
    topics = [
        prefix + "mail.received",
        prefix + "mail.classified",
        prefix + "mail.received.dlq",
        prefix + "contact.status",
    ]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    if tp.topic.endswith("mail.received"):
                        ev = MailReceived.model_validate_json(r.value)
                        seen.received[ev.ref.natural_key()] = ev
                    elif tp.topic.endswith(
                        "mail.classified"
                    ):  # a late reply match re-publishes: keep the last
                        c = MailClassified.model_validate_json(r.value)
                        seen.classified[c.ref.natural_key()] = c
                    elif tp.topic.endswith("contact.status"):
                        status = ContactStatus.model_validate_json(r.value)
                        seen.statuses[status.key()] = status
                    else:
                        seen.quarantined.append({k: v.decode(errors="replace") for k, v in r.headers})
    finally:
        await consumer.stop()


@dataclass
class Platform:
    """One running platform with its alert channels bound, and what it has delivered."""

    stack: Stack
    mail: dict[str, Any]
    wechat: WeChatServer
    push: PushService
    http: httpx.AsyncClient
    tenant_id: str
    user_id: str
    categories: list[str]
    callback_token: str = ""
    """notify's ``NOTIFY_WECHAT_CALLBACK_TOKEN``: the loopback WeChat signs the scan events it pushes with it."""
    started: float = field(default_factory=time.time)
    targets: dict[str, str] = field(default_factory=dict)
    mailboxes: dict[str, Account] = field(default_factory=dict)
    appended: dict[tuple[str, int], float] = field(default_factory=dict)  # (email, UID) -> APPEND time
    seen: Observed = field(default_factory=Observed)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _watcher: asyncio.Task[None] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Binding's bearer token (each service has its own key and audience)."""
        return {"Authorization": f"Bearer {self.stack.config.token(self.tenant_id, self.user_id)}"}

    @property
    def notify_headers(self) -> dict[str, str]:
        """Notify's bearer token."""
        token = self.stack.config.token(self.tenant_id, self.user_id, service="notify")
        return {"Authorization": f"Bearer {token}"}

    async def _notify(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        r = await self.http.request(
            method, self.stack.notify_url + path, headers=self.notify_headers if auth else {}, json=body
        )
        if r.status_code >= 300:
            raise RuntimeError(f"notify {method} {path}: {r.status_code} {r.text}")
        return r.json()

    async def bind_alerts(self) -> None:
        """Preferences (categories, all three channels) and one binding per channel, through notify's API as a
        user does: WeChat by scanning a QR code (the loopback WeChat pushes the signed ``subscribe`` event to
        notify's callback), email by confirming the address with the code of its confirmation mail (read from
        the local SMTP server's record), browser push by a subscription."""
        await self._notify(
            "PUT", "/v1/preferences", {"categories": self.categories, "channels": list(CHANNELS)}
        )
        code = await self._notify("POST", "/v1/bindings/wechat/qrcode")
        scanned = await self.wechat.scan(
            self.stack.notify_url + "/wechat/callback",
            self.callback_token,
            "o" + secrets.token_hex(13),
            ticket=code["ticket"],
        )
        if scanned.status != 200:
            raise RuntimeError(f"notify /wechat/callback: {scanned.status} {scanned.text}")
        address = f"owner-{uuid.uuid4().hex[:6]}@laifaxin.example"
        asked = time.time()
        await self._notify("PUT", "/v1/bindings/email", {"address": address})
        confirmation = await confirmation_code(Path(self.mail["smtp_received_index"]), address, asked - 1)
        await self._notify("POST", "/v1/bindings/email/confirm", {"code": confirmation}, auth=False)
        await self._notify("POST", "/v1/bindings/webpush", self.push.subscribe())
        bindings = await self._notify("GET", "/v1/bindings")
        self.targets = {b["channel"]: b["target_id"] for b in bindings if b["active"]}
        missing = set(CHANNELS) - set(self.targets)
        if missing:
            raise RuntimeError(f"alert channels not bound: {sorted(missing)}")

    async def bind_mailbox(self, account: Account, timeout_s: float = 90) -> str:
        """Bind through ``POST /v1/mailboxes`` and wait until sync has baselined it; returns the mailbox id."""
        r = await self.http.post(
            self.stack.binding_url + "/v1/mailboxes",
            headers=self.headers,
            json={
                "email": account.email,
                "password": account.password,
                "nickname": "sales",
                "imap": {"host": account.host, "port": account.imaps_port, "security": "ssl"},
                "smtp": {"host": account.host, "port": account.smtps_port, "security": "ssl"},
            },
        )
        if r.status_code != 201:
            raise RuntimeError(f"binding refused {account.email}: {r.status_code} {r.text}")
        mailbox_id: str = r.json()["id"]
        self.mailboxes[mailbox_id] = account
        deadline = time.monotonic() + timeout_s
        mb: dict[str, Any] = {}
        while time.monotonic() < deadline:
            mb = (
                await self.http.get(
                    f"{self.stack.binding_url}/v1/mailboxes/{mailbox_id}", headers=self.headers
                )
            ).json()
            if mb.get("last_synced_at"):
                return mailbox_id
            await asyncio.sleep(0.3)
        raise RuntimeError(f"sync never baselined {account.email}: {mb}")

    def watch(self) -> None:
        cfg = self.stack.config
        self._watcher = asyncio.create_task(
            watch_topics(cfg.kafka_bootstrap_servers, cfg.topic_prefix, self.seen, self._stop)
        )

    async def append(self, account: Account, messages: list[bytes], *, gap_s: float = 0.0) -> None:
        """APPEND each message to INBOX (``gap_s`` apart), recording its UID (UIDPLUS APPENDUID) and time."""
        ctx = client_tls_context(self.mail["ca_file"])
        imap = await connect_imap(account.host, account.imaps_port, "ssl", ssl_context=ctx)
        await imap.login(account.email, account.password)
        try:
            for raw in messages:
                t = time.time()
                resp = await imap.append(raw, mailbox="INBOX")
                if resp.result != "OK":
                    raise RuntimeError(f"APPEND refused: {resp.lines[-1:]!r}")
                found = APPENDUID.search(b" ".join(x for x in resp.lines if isinstance(x, bytes | bytearray)))
                if found:
                    self.appended[(account.email, int(found.group(2)))] = t
                if gap_s:
                    await asyncio.sleep(gap_s)
        finally:
            await imap.logout()

    def alerting(self) -> dict[str, MailClassified]:
        """Classified messages that alert this platform's user (their category is chosen, and they are the
        user's: a system-mailbox reply is the user's when it matched their campaign), by natural key."""
        return {
            k: c
            for k, c in self.seen.classified.items()
            if c.category in self.categories and (c.tenant_id, c.user_id) == (self.tenant_id, self.user_id)
        }

    def keys(self, channel: str) -> dict[str, str]:
        """dedupe key -> message natural key, for every message that should alert on ``channel``."""
        return {
            dedupe_key(str(c.event_id), self.user_id, channel, self.targets[channel]): k
            for k, c in self.alerting().items()
        }

    def deliveries(self) -> dict[str, list[tuple[str, float]]]:
        """Per channel: (dedupe key, arrival time) of every alert the provider accepted, repeats included."""
        return {
            "wechat": [(m.client_msg_id, m.at) for m in self.wechat.sent],
            "webpush": [(p.json().get("tag"), p.at) for p in self.push.received],
            "email": alert_emails(Path(self.mail["smtp_received_index"]), self.started),
        }

    def delivered(self) -> dict[str, Counter[str]]:
        """Per channel: how many times each dedupe key arrived."""
        return {ch: Counter(k for k, _ in got) for ch, got in self.deliveries().items()}

    def latencies_ms(self) -> list[float]:
        """Arrival in the mailbox (APPEND) to alert delivered, per alert (first arrival), in milliseconds."""
        out = []
        for ch, got in self.deliveries().items():
            first: dict[str, float] = {}
            for key, at in got:
                first.setdefault(key, at)
            for key, natural in self.keys(ch).items():
                c = self.seen.classified[natural]
                account = self.mailboxes.get(c.ref.mailbox_id)
                t0 = self.appended.get((account.email, c.ref.uid)) if account else None
                if key in first and t0 is not None:
                    out.append((first[key] - t0) * 1000)
        return out

    def complete(self, expected_messages: int) -> bool:
        if len(self.seen.classified) < expected_messages:
            return False
        got = self.delivered()
        return all(set(self.keys(ch)) <= set(got[ch]) for ch in CHANNELS)

    async def wait_for(self, expected_messages: int, timeout_s: float = 180) -> None:
        """Until ``expected_messages`` are classified and each alerting one arrived on every channel."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.complete(expected_messages):
                return
            await asyncio.sleep(0.2)
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


@contextlib.asynccontextmanager
async def running_platform(
    *,
    kafka_bootstrap_servers: str,
    mongodb_url: str,
    mail: dict[str, Any],
    log_dir: Path,
    relay: Account,
    categories: list[str] | None = None,
    sync_workers: int = 1,
    extra_env: dict[str, dict[str, str]] | None = None,
    tenant_id: str = "tenant-demo",
    services: str = "processes",
) -> AsyncIterator[Platform]:
    """Loopback WeChat and Web Push, the four services as processes, alerts bound; stops all on exit.

    ``relay`` is the SMTP account notify sends alert emails through. Alerts are never folded into digests
    or rate-limited here, so that every alert can be counted and timed. ``services="pods"`` runs the services
    as the pods of the ``local`` Kubernetes overlay on Podman instead (deploy/podman/local.py ``PodStack``;
    the images from ``make images``).
    """
    if services not in ("processes", "pods"):
        raise ValueError(f"services must be processes or pods, not {services!r}")
    prefix = f"p{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka_bootstrap_servers, prefix=prefix, replication_factor=1)
    appid, app_secret = "wx" + uuid.uuid4().hex[:14], secrets.token_urlsafe(12)
    callback_token = secrets.token_urlsafe(16)
    env = {
        "notify": {
            "NOTIFY_DIGEST_THRESHOLD_PER_MINUTE": "100000",
            "NOTIFY_RATE_LIMIT_PER_HOUR": "100000",
            # the loopback push service is plain http on 127.0.0.1: the operator allowlist for it
            "NOTIFY_PUSH_ALLOWLIST": "127.0.0.0/8",
            "NOTIFY_WECHAT_CALLBACK_TOKEN": callback_token,
        }
    }
    for service, values in (extra_env or {}).items():
        env.setdefault(service, {}).update(values)
    async with WeChatServer(apps={appid: app_secret}) as wechat, PushService() as push:
        config = StackConfig(
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            mongodb_url=mongodb_url,
            mail=mail,
            topic_prefix=prefix,
            db_prefix=f"{prefix.rstrip('.')}_",
            log_dir=log_dir,
            wechat_api_base=wechat.base_url,
            wechat_appid=appid,
            wechat_secret=app_secret,
            smtp_relay_user=relay.email,
            smtp_relay_password=relay.password,
            extra_env=env,
        )
        if services == "pods":
            from deploy.podman.local import PodStack

            stack: Any = PodStack(config)
        else:
            stack = Stack(config)
        async with httpx.AsyncClient(timeout=60) as http:
            platform = Platform(
                stack,
                mail,
                wechat,
                push,
                http,
                tenant_id,
                f"u{uuid.uuid4().hex[:8]}",
                categories or list(ALL_CATEGORIES),
                callback_token,
            )
            try:
                await stack.start(sync_workers=sync_workers)
                await platform.bind_alerts()
                platform.watch()
                yield platform
            finally:
                await platform.close()
                stack.stop()
                await delete_topics(kafka_bootstrap_servers, prefix)
