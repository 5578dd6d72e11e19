"""Fixtures for sync's integration tests: per-test topics, database and consumer group on the real Kafka and
FerretDB, Dovecot accounts registered through ``mailbox.verified``, a collector of what the worker publishes, and
workers run in-process or as ``python -m laifaxin_sync`` subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aioimaplib
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from laifaxin_shared.crypto import CredentialContext, KeyRing
from laifaxin_shared.events import MailboxVerified, MailReceived
from laifaxin_shared.events.base import ServerEndpoint
from laifaxin_shared.events.mailbox import MailboxSyncStatus, SyncSettings
from laifaxin_shared.imap import connect_imap
from laifaxin_shared.kafka import ensure_topics, serialize
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from laifaxin_shared.topics import spec
from laifaxin_sync.app import SyncWorker
from laifaxin_sync.settings import SyncSettings as WorkerSettings
from tests.conftest import MailAccount
from tests.support.infra import ROOT, Servers

SYNC_TOPICS = (
    "mailbox.verified",
    "mailbox.updated",
    "mailbox.removed",
    "mailbox.sync_status",
    "mail.received",
    "mail.received.dlq",
    "mailbox.verified.dlq",
    "mailbox.updated.dlq",
    "mailbox.removed.dlq",
)


def mail(subject: str, *, message_id: str | None = None, body: str = "Please quote 500 pcs.") -> bytes:
    """A small RFC 5322 message with a unique Message-ID."""
    msg = EmailMessage()
    msg["From"] = "Buyer <buyer@example.com>"
    msg["To"] = "sales@laifaxin.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@example.com>"
    msg.set_content(body)
    return msg.as_bytes()


class Env:
    """One test's isolated world: prefix, database, group, and helpers around them."""

    def __init__(self, servers: Servers, prefix: str, db_name: str) -> None:
        self.servers = servers
        self.prefix = prefix
        self.db_name = db_name
        self.group_id = f"sync-{prefix}"
        self.keyring = KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0")
        self.received: list[MailReceived] = []
        self.statuses: list[MailboxSyncStatus] = []
        self.dlq: list[Any] = []
        self._collector: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self.workers: list[SyncWorker] = []
        self.partitions: dict[str, int] = {}
        self.verified_records: dict[str, tuple[TopicPartition, int]] = {}  # mailbox id -> its last record

    def env(self, **extra: Any) -> dict[str, str]:
        """Environment of a worker for this test (also used for subprocess workers)."""
        base = {
            "LAIFAXIN_ENVIRONMENT": "test",
            "KAFKA_BOOTSTRAP_SERVERS": self.servers.kafka_bootstrap_servers,
            "MONGODB_URL": self.servers.mongodb_url,
            "LAIFAXIN_TOPIC_PREFIX": self.prefix,
            "LAIFAXIN_TLS_CA_FILE": self.servers.ca_file,
            "SYNC_MONGODB_DATABASE": self.db_name,
            "SYNC_GROUP_ID": self.group_id,
            "SYNC_HOST_ALLOWLIST": "127.0.0.0/8,::1",
            "SYNC_HTTP_PORT": "0",
            "SYNC_POLL_INTERVAL_SECONDS": "2",
            "SYNC_LEASE_TTL_SECONDS": "6",
            "SYNC_BACKOFF_MIN_SECONDS": "0.5",
            "SYNC_BACKOFF_MAX_SECONDS": "2",
            "SYNC_THROTTLE_MIN_SECONDS": "1",
            "SYNC_STOP_GRACE_SECONDS": "5",
            "SYNC_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "SYNC_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "SYNC_IMAP_TIMEOUT": "10",
            "LAIFAXIN_LOG_LEVEL": "INFO",
        }
        base.update({k: str(v) for k, v in extra.items()})
        return base

    def settings(self, **extra: Any) -> WorkerSettings:
        """Worker settings built from :meth:`env` (without touching os.environ)."""
        values = self.env(**extra)
        fields = {
            name: values[f"SYNC_{name.upper()}"]
            for name in WorkerSettings.model_fields
            if f"SYNC_{name.upper()}" in values
        }
        return WorkerSettings(
            environment="test",
            kafka_bootstrap_servers=values["KAFKA_BOOTSTRAP_SERVERS"],
            mongodb_url=values["MONGODB_URL"],
            topic_prefix=self.prefix,
            tls_ca_file=values["LAIFAXIN_TLS_CA_FILE"],
            log_json=True,
            **fields,
        )

    async def start_worker(self, **extra: Any) -> SyncWorker:
        worker = SyncWorker(self.settings(**extra))
        await worker.start()
        self.workers.append(worker)
        return worker

    async def stop_worker(self, worker: SyncWorker) -> None:
        await worker.stop()
        self.workers.remove(worker)

    def spawn(self, name: str, log_dir: Path, **extra: Any) -> subprocess.Popen[bytes]:
        """A worker process: ``python -m laifaxin_sync`` with this test's environment; log in ``log_dir``."""
        env = {**os.environ, **self.env(SYNC_WORKER_ID=name, **extra)}
        out = (log_dir / f"{name}.log").open("wb")
        return subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "laifaxin_sync"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )

    # ------------------------------------------------------------------------------------------ Kafka

    async def setup(self) -> None:
        await ensure_topics(
            self.servers.kafka_bootstrap_servers,
            [spec(t) for t in SYNC_TOPICS],
            prefix=self.prefix,
            replication_factor=1,
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.servers.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )
        await self._producer.start()
        consumer = AIOKafkaConsumer(
            self.prefix + "mail.received",
            self.prefix + "mailbox.sync_status",
            self.prefix + "mail.received.dlq",
            bootstrap_servers=self.servers.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        self._collector = asyncio.create_task(self._collect(consumer))

    async def _collect(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        topic = r.topic[len(self.prefix) :]
                        if topic == "mail.received":
                            self.received.append(MailReceived.model_validate_json(r.value))
                        elif topic == "mailbox.sync_status":
                            self.statuses.append(MailboxSyncStatus.model_validate_json(r.value))
                        else:
                            self.dlq.append(r)
        finally:
            await consumer.stop()

    async def teardown(self) -> None:
        for worker in list(self.workers):
            await worker.stop()
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        if self._producer is not None:
            await self._producer.stop()

    async def register(
        self,
        account: MailAccount,
        *,
        mailbox_id: str | None = None,
        password: str | None = None,
        window_days: int = 30,
        security: str = "ssl",
        enabled: bool = True,
        occurred_at: datetime | None = None,
    ) -> str:
        """Publish ``mailbox.verified`` for a Dovecot account (event time ``occurred_at``, default now);
        returns the mailbox id."""
        assert self._producer is not None
        mailbox_id = mailbox_id or f"mbx_{uuid.uuid4().hex[:12]}"
        tenant = "tenant-test"
        port = account.imaps_port if security == "ssl" else account.imap_port
        imap = ServerEndpoint(host=account.host, port=port, security=security)  # type: ignore[arg-type]
        smtp = ServerEndpoint(host=account.host, port=account.smtps_port, security="ssl")
        context = CredentialContext.of(
            {
                "tenant_id": tenant,
                "mailbox_id": mailbox_id,
                "username": account.email,
                "imap": imap.model_dump(),
                "smtp": smtp.model_dump(),
            }
        )
        event = MailboxVerified(
            tenant_id=tenant,
            mailbox_id=mailbox_id,
            user_id="u_test",
            email=account.email,
            provider_id="custom",
            username=account.email,
            imap=imap,
            smtp=smtp,
            credential=self.keyring.seal_mailbox(
                password or account.password, context
            ),  # as binding seals it
            sync=SyncSettings(enabled=enabled, interval_seconds=180, initial_window_days=window_days),
            **({"occurred_at": occurred_at} if occurred_at is not None else {}),
        )
        meta = await self._producer.send_and_wait(
            self.prefix + "mailbox.verified", serialize(event), key=mailbox_id.encode()
        )
        self.partitions[mailbox_id] = meta.partition
        self.verified_records[mailbox_id] = (TopicPartition(meta.topic, meta.partition), meta.offset)
        return mailbox_id

    async def send_raw(self, topic: str, value: bytes, key: bytes) -> tuple[TopicPartition, int]:
        """Publish one record; returns its (topic partition, offset)."""
        assert self._producer is not None
        meta = await self._producer.send_and_wait(self.prefix + topic, value, key=key)
        return TopicPartition(meta.topic, meta.partition), meta.offset

    # ------------------------------------------------------------------------------------------ waiting

    async def wait_applied(
        self, worker: Any, record: tuple[TopicPartition, int], timeout: float = 30.0
    ) -> None:
        """Wait until ``worker``'s registry consumer committed past ``record`` (it commits a registry record only
        once it is applied: loops stopped and the store written)."""
        tp, offset = record
        async with asyncio.timeout(timeout):
            while (await worker.registry.consumer.committed(tp) or 0) <= offset:  # noqa: ASYNC110 (broker state)
                await asyncio.sleep(0.05)

    async def index_docs(self, mailbox_id: str | None = None) -> list[dict[str, Any]]:
        """The sync index entries (``messages``), of one mailbox or of all."""
        query = {} if mailbox_id is None else {"mailbox_id": mailbox_id}
        client = make_mongo_client(self.servers.mongodb_url)
        try:
            return [d async for d in client[self.db_name]["messages"].find(query)]
        finally:
            await client.close()

    async def cursor(self, mailbox_id: str, folder: str = "INBOX") -> dict[str, Any]:
        """The stored cursor document of one folder (it must exist)."""
        client = make_mongo_client(self.servers.mongodb_url)
        try:
            doc = await client[self.db_name]["cursors"].find_one({"_id": f"{mailbox_id}:{folder}"})
        finally:
            await client.close()
        assert doc is not None, f"no cursor for {mailbox_id}:{folder}"
        return doc

    async def committed(self, docs: list[dict[str, Any]]) -> bool:
        """True when every index entry is behind its folder cursor (the cursor is the commit point)."""
        client = make_mongo_client(self.servers.mongodb_url)
        try:
            cursors = {d["_id"]: d async for d in client[self.db_name]["cursors"].find({})}
        finally:
            await client.close()
        return all(
            (c := cursors.get(f"{d['mailbox_id']}:{d['folder']}")) is not None
            and c["uidvalidity"] == d["uidvalidity"]
            and c["last_uid"] >= d["uid"]
            for d in docs
        )

    async def wait_committed(
        self, count: int, mailbox_id: str | None = None, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` index entries exist and all are behind their cursors; return them.

        A worker moves a folder's cursor only after the publish was acknowledged, so an event seen on Kafka
        may still be ahead of its cursor for a moment: poll instead of reading once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            docs = await self.index_docs(mailbox_id)
            if len(docs) >= count and await self.committed(docs):
                return docs
            if loop.time() > deadline:
                raise AssertionError(
                    f"{len(docs)} index entries (wanted {count}), not all behind their cursor"
                )
            await asyncio.sleep(0.1)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            await asyncio.sleep(0.05)

    def received_for(self, mailbox_id: str) -> list[MailReceived]:
        return [e for e in self.received if e.ref.mailbox_id == mailbox_id]

    def subjects(self, mailbox_id: str) -> list[str]:
        return [e.subject for e in self.received_for(mailbox_id)]

    async def wait_subjects(self, mailbox_id: str, subjects: set[str], timeout: float = 20.0) -> None:
        await self.wait_for(
            lambda: subjects <= set(self.subjects(mailbox_id)), timeout, f"subjects {sorted(subjects)}"
        )


@pytest.fixture
async def sync_env(real_servers: Servers, topic_prefix: str) -> AsyncIterator[Env]:
    env = Env(real_servers, topic_prefix, f"sync_{uuid.uuid4().hex[:10]}")
    await env.setup()
    try:
        yield env
    finally:
        await env.teardown()
        from laifaxin_shared.mongo import make_mongo_client

        client = make_mongo_client(real_servers.mongodb_url)
        await client.drop_database(env.db_name)
        await client.close()


class Imap:
    """An authenticated aioimaplib session to append and rearrange folders from the test side."""

    def __init__(self, client: aioimaplib.IMAP4) -> None:
        self.client = client

    async def append(self, raw: bytes, folder: str = "INBOX", date: datetime | None = None) -> None:
        reply = await self.client.append(raw, mailbox=folder, date=date)
        assert reply.result == "OK", reply

    async def command(self, name: str, *args: str) -> aioimaplib.Response:
        method = getattr(self.client, name)
        reply: aioimaplib.Response = await method(*args)
        assert reply.result == "OK", reply
        return reply


@pytest.fixture
async def imap_factory(tls_context: Any) -> AsyncIterator[Callable[[MailAccount], Any]]:
    opened: list[aioimaplib.IMAP4] = []

    async def open_(account: MailAccount) -> Imap:
        client = await connect_imap(account.host, account.imaps_port, "ssl", ssl_context=tls_context)
        reply = await client.login(account.email, account.password)
        assert reply.result == "OK"
        opened.append(client)
        return Imap(client)

    yield open_
    for client in opened:
        with contextlib.suppress(TimeoutError, OSError, aioimaplib.AioImapException):
            await asyncio.wait_for(client.logout(), 5)
