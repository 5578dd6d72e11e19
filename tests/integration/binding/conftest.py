"""Fixtures for binding's integration tests: a verifier trusting the local CA with loopback allowlisted, and
the binding app wired to the real Kafka and FerretDB with a fresh topic prefix and database per test."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from laifaxin_binding.app import create_app
from laifaxin_binding.auth import issue_token
from laifaxin_binding.settings import BindingSettings
from laifaxin_binding.verify import HostGuard, Verifier
from laifaxin_shared.kafka import ensure_topics
from laifaxin_shared.topics import spec
from tests.support.infra import Servers

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
MAILBOX_TOPICS = ("mailbox.verified", "mailbox.updated", "mailbox.removed", "mailbox.sync_status")


@pytest.fixture
def verifier(tls_context: ssl.SSLContext) -> Verifier:
    """Short timeouts (the timeout case waits 2 s), loopback allowlisted."""
    return Verifier(
        ssl_context=tls_context,
        guard=HostGuard(LOOPBACK),
        timeout=2.0,
        command_timeout=2.0,
        max_connections_per_host=8,
        probe_timeout=0.5,
    )


@pytest.fixture
def binding_settings(real_servers: Servers, topic_prefix: str, mongo_db: Any) -> BindingSettings:
    return BindingSettings(
        environment="test",
        kafka_bootstrap_servers=real_servers.kafka_bootstrap_servers,
        topic_prefix=topic_prefix,
        mongodb_url=real_servers.mongodb_url,
        mongodb_database=mongo_db.name,
        jwt_secret="binding-test-jwt-secret-0123456789abcdef",
        host_allowlist="127.0.0.0/8,::1",
        ca_file=real_servers.ca_file,
        verify_timeout_seconds=5,
        command_timeout_seconds=3,
        mailbox_limit_per_tenant=3,
        rate_max_failures_per_address=3,
        log_json=True,
    )


class Api:
    """An httpx client on the app (ASGI transport) plus token helpers."""

    def __init__(self, client: httpx.AsyncClient, app: Any, settings: BindingSettings) -> None:
        self.client = client
        self.app = app
        self.settings = settings

    def auth(self, tenant: str = "tenant-a", user: str = "u_1") -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings, tenant, user)}"}


@pytest.fixture
async def api(binding_settings: BindingSettings) -> AsyncIterator[Api]:
    await ensure_topics(
        binding_settings.kafka_bootstrap_servers,
        [spec(name) for name in MAILBOX_TOPICS],
        prefix=binding_settings.topic_prefix,
        replication_factor=1,
    )
    app = create_app(binding_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://binding", timeout=30) as client:
            yield Api(client, app, binding_settings)
