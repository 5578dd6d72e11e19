"""Fixtures for send's integration tests: the send app on the real Kafka and FerretDB with its own topic prefix
and database per test, mailboxes on the local Dovecot + SMTP server registered through ``mailbox.verified``
(credential sealed under the development key ring, as binding does), commands published to ``mail.send``, and
readers of what the SMTP server recorded and what send published."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from laifaxin_send.app import SEND_TOPICS, create_app
from laifaxin_send.auth import issue_token
from laifaxin_send.pacing import Clock
from laifaxin_send.settings import SendSettings
from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.events import Envelope, MailboxVerified, SendCommand
from laifaxin_shared.events.base import ServerEndpoint
from laifaxin_shared.kafka import ensure_topics, event_headers, event_key, serialize, topic_for
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from laifaxin_shared.topics import spec
from tests.conftest import MailAccount
from tests.integration.binding.kafka_read import read_topic
from tests.support.infra import Servers

JWT = "send-test-jwt-secret-0123456789abcdef0123"


class SendEnv:
    """One test's isolated world: topic prefix, database, settings, and helpers around them."""

    def __init__(self, servers: Servers, prefix: str) -> None:
        self.servers = servers
        self.prefix = prefix
        self.db_name = f"test_send_{uuid.uuid4().hex[:12]}"
        self.keyring = KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0")
        self.producer: AIOKafkaProducer | None = None
        self.started = datetime.now(UTC).timestamp()

    def settings(self, **overrides: Any) -> SendSettings:
        values: dict[str, Any] = {
            "environment": "test",
            "kafka_bootstrap_servers": self.servers.kafka_bootstrap_servers,
            "mongodb_url": self.servers.mongodb_url,
            "topic_prefix": self.prefix,
            "mongodb_database": self.db_name,
            "group_id": f"send-{self.prefix}",
            "jwt_secret": JWT,
            "ca_file": self.servers.ca_file,
            "pacing": False,
            "smtp_timeout_seconds": 15,
            "imap_timeout_seconds": 15,
            "poll_seconds": 0.2,
            "rate_limit_retry_seconds": 0.5,
            "log_json": True,
        }
        values.update(overrides)
        return SendSettings(**values)

    def env(self, **overrides: Any) -> dict[str, str]:
        """The environment of a ``python -m laifaxin_send`` process with these settings."""
        s = self.settings(**overrides)
        out = {
            "LAIFAXIN_ENVIRONMENT": "test",
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
            "MONGODB_URL": self.servers.mongodb_url,
            "LAIFAXIN_TOPIC_PREFIX": self.prefix,
        }
        for name, value in s.model_dump().items():
            if name in (
                "environment",
                "kafka_bootstrap_servers",
                "mongodb_url",
                "topic_prefix",
                "credential_keys",
                "credential_active_key_id",
                "reply_token_keys",
                "log_level",
                "log_json",
            ):
                continue
            if value is None:
                continue
            out[f"SEND_{name.upper()}"] = str(
                value.get_secret_value() if hasattr(value, "get_secret_value") else value
            )
        return out

    async def setup(self) -> None:
        await ensure_topics(
            self.servers.kafka_bootstrap_servers,
            [spec(name) for name in SEND_TOPICS],
            prefix=self.prefix,
            replication_factor=1,
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.servers.kafka_bootstrap_servers.split(","),
            acks="all",
            enable_idempotence=True,
        )
        await self.producer.start()

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        client = make_mongo_client(self.servers.mongodb_url)
        await client.drop_database(self.db_name)
        await client.close()

    @contextlib.asynccontextmanager
    async def app(
        self, *, clock: Clock | None = None, run_dispatcher: bool = True, **overrides: Any
    ) -> AsyncIterator[Any]:
        """The send app in this process (lifespan run), with an httpx client at ``app.state.client``."""
        import random

        app = create_app(
            self.settings(**overrides), clock=clock, run_dispatcher=run_dispatcher, rng=random.Random(7)
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://send", timeout=60
            ) as c,
        ):
            app.state.client = c
            yield app

    def auth(self, tenant: str, user: str = "u_1") -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings(), tenant, user)}"}

    async def publish(self, event: Envelope) -> None:
        assert self.producer is not None
        headers = [(k, v.encode()) for k, v in event_headers(event).items()]
        await self.producer.send_and_wait(
            self.prefix + topic_for(event), serialize(event), key=event_key(event), headers=headers
        )

    async def bind(
        self,
        account: MailAccount,
        *,
        tenant: str,
        mailbox_id: str | None = None,
        provider_id: str = "custom",
        smtp_port: int | None = None,
        smtp_security: str = "ssl",
        is_system: bool = False,
        occurred_at: datetime | None = None,
    ) -> str:
        """Publish ``mailbox.verified`` for ``account`` (SMTP implicit TLS by default, IMAP 993-style)."""
        mailbox_id = mailbox_id or f"mbx_{uuid.uuid4().hex[:10]}"
        event = MailboxVerified(
            tenant_id=tenant,
            mailbox_id=mailbox_id,
            user_id="u_1",
            email=account.email,
            provider_id=provider_id,
            username=account.email,
            imap=ServerEndpoint(host=account.host, port=account.imaps_port, security="ssl"),
            smtp=ServerEndpoint(
                host=account.host,
                port=smtp_port or (account.smtps_port if smtp_security == "ssl" else account.smtp_port),
                security=smtp_security,  # type: ignore[arg-type]
            ),
            credential=self.keyring.seal(account.password, tenant_id=tenant, mailbox_id=mailbox_id),
            is_system=is_system,
            **({"occurred_at": occurred_at} if occurred_at else {}),
        )
        await self.publish(event)
        return mailbox_id

    def command(self, tenant: str, mailbox_id: str, recipient: str, **fields: Any) -> SendCommand:
        base: dict[str, Any] = {
            "tenant_id": tenant,
            "user_id": "u_1",
            "command_id": f"cmd-{uuid.uuid4().hex[:12]}",
            "mailbox_id": mailbox_id,
            "to": [{"name": "", "email": recipient}],
            "subject": "Hello",
            "text": "Hello there.",
            "kind": "reply",
        }
        base.update(fields)
        return SendCommand.model_validate(base)

    async def wait_mailbox(self, app: Any, mailbox_id: str, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while await app.state.service.store.mailbox(mailbox_id) is None:  # noqa: ASYNC110  # polls the store
                await asyncio.sleep(0.1)

    async def wait_state(
        self,
        app: Any,
        tenant: str,
        command_id: str,
        states: tuple[str, ...] = ("sent", "failed", "unknown"),
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """The command's document once its state is one of ``states``."""
        store = app.state.service.store
        async with asyncio.timeout(timeout):
            while True:
                doc = await store.command(f"{tenant}/{command_id}")
                if doc is not None and doc["state"] in states:
                    return dict(doc)
                await asyncio.sleep(0.1)

    async def events(
        self, name: str, key: str | None = None, *, expect: int | None = None, wait: float = 10.0
    ) -> list[Any]:
        records = await read_topic(
            self.servers.kafka_bootstrap_servers,
            self.prefix + name,
            expect=expect,
            wait=wait,
            key=key.encode() if key else None,
        )
        return [json.loads(r.value) for r in records]

    def received(self, account: MailAccount) -> list[tuple[dict[str, Any], EmailMessage]]:
        """What the shared SMTP server recorded from ``account`` since this test started: (index record with
        the message's bytes under ``raw``, parsed message)."""
        index = Path(str(self.servers.mail["smtp_received_index"]))
        out: list[tuple[dict[str, Any], EmailMessage]] = []
        if not index.exists():
            return out
        for line in index.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("auth_user") != account.email or record.get("received_at", 0) < self.started - 5:
                continue
            raw = Path(record["file"]).read_bytes()
            record["raw"] = raw
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append((record, msg))
        return out


@pytest.fixture
async def send_env(real_servers: Servers, topic_prefix: str) -> AsyncIterator[SendEnv]:
    env = SendEnv(real_servers, topic_prefix)
    await env.setup()
    try:
        yield env
    finally:
        await env.close()
