"""Fixtures for binding's integration tests: a verifier trusting the local CA with loopback allowlisted; the
binding app wired to the real Kafka and FerretDB with a fresh topic prefix and database per test module, and a
fresh tenant per test (tenants isolate tests exactly as they isolate customers); a mail account shared by the
tests of a module that never send it a wrong password (Dovecot delays every login of a user after a failure)."""

from __future__ import annotations

import imaplib
import ipaddress
import ssl
import uuid
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
from tests.conftest import MailAccount, add_account, wait_until_login_works
from tests.integration.binding.kafka_read import read_topic
from tests.support.infra import Servers

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
MAILBOX_TOPICS = ("mailbox.verified", "mailbox.updated", "mailbox.removed", "mailbox.sync_status")


@pytest.fixture
def verifier(tls_context: ssl.SSLContext) -> Verifier:
    """Short timeouts (a silent port costs 2 s plus two 0.5 s probes), loopback allowlisted. The budget per
    protocol is longer than a command: Dovecot delays logins from an address after a failed one (2 s and up)."""
    return Verifier(
        ssl_context=tls_context,
        guard=HostGuard(LOOPBACK),
        timeout=8.0,
        command_timeout=2.0,
        max_connections_per_host=8,
        probe_timeout=0.5,
    )


@pytest.fixture(scope="module")
def shared_account(real_servers: Servers, infra_module: Any) -> MailAccount:
    """One real account for a whole module; only for tests that log in with the right password."""
    return add_account(real_servers, infra_module, local=f"s{uuid.uuid4().hex[:10]}", wait=_wait_for_login)


def _wait_for_login(account: MailAccount, attempts: int = 3) -> None:
    """``wait_until_login_works``, retried: the shared Dovecot can be slow to finish a TLS handshake while
    other engineers' suites load it (its 5 s socket timeout then fails a whole module's setup)."""
    for attempt in range(attempts):
        try:
            wait_until_login_works(account, timeout=10.0)
            return
        except (TimeoutError, OSError, imaplib.IMAP4.error):
            if attempt == attempts - 1:
                raise


def make_settings(servers: Servers, prefix: str, database: str) -> BindingSettings:
    return BindingSettings(
        environment="test",
        kafka_bootstrap_servers=servers.kafka_bootstrap_servers,
        topic_prefix=prefix,
        mongodb_url=servers.mongodb_url,
        mongodb_database=database,
        jwt_secret="binding-test-jwt-secret-0123456789abcdef",
        host_allowlist="127.0.0.0/8,::1",
        ca_file=servers.ca_file,
        verify_timeout_seconds=5,
        command_timeout_seconds=3,
        mailbox_limit_per_tenant=3,
        rate_max_failures_per_address=3,
        log_json=True,
    )


@pytest.fixture
def binding_settings(real_servers: Servers, topic_prefix: str, mongo_db: Any) -> BindingSettings:
    """Settings with this test's own topic prefix and database (for an app the test runs itself)."""
    return make_settings(real_servers, topic_prefix, mongo_db.name)


class Api:
    """An httpx client on the app (ASGI transport), this test's tenant, token and Kafka helpers."""

    def __init__(
        self, client: httpx.AsyncClient, app: Any, settings: BindingSettings, tenant: str = ""
    ) -> None:
        self.client = client
        self.app = app
        self.settings = settings
        self.tenant = tenant

    def for_tenant(self, tenant: str) -> Api:
        return Api(self.client, self.app, self.settings, tenant)

    @property
    def db(self) -> Any:
        """The app's own database (read it to check what was stored)."""
        return self.app.state.mongo[self.settings.mongodb_database]

    def auth(
        self,
        tenant: str | None = None,
        user: str = "u_1",
        mailbox_limit: int | None = None,
        role: str | None = None,
    ) -> dict[str, str]:
        token = issue_token(
            self.settings, tenant or self.tenant, user, mailbox_limit=mailbox_limit, role=role
        )
        return {"Authorization": f"Bearer {token}"}

    async def events(self, name: str, mailbox_id: str, *, expect: int | None = None) -> list[Any]:
        """Records of topic ``name`` keyed by ``mailbox_id`` (all of them when ``expect`` is None)."""
        return await read_topic(
            self.settings.kafka_bootstrap_servers,
            self.settings.topic(name),
            expect=expect,
            key=mailbox_id.encode(),
        )


@pytest.fixture(scope="module")
async def binding_app(real_servers: Servers) -> AsyncIterator[Api]:
    """The app on its own topic prefix and database for a whole module (dropped afterwards)."""
    binding_settings = make_settings(
        real_servers, f"t{uuid.uuid4().hex[:10]}.", f"test_{uuid.uuid4().hex[:12]}"
    )
    await ensure_topics(
        binding_settings.kafka_bootstrap_servers,
        [spec(name) for name in MAILBOX_TOPICS],
        prefix=binding_settings.topic_prefix,
        replication_factor=1,
    )
    app = create_app(binding_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://binding", timeout=30
            ) as client:
                yield Api(client, app, binding_settings)
        finally:
            await app.state.mongo.drop_database(binding_settings.mongodb_database)


@pytest.fixture
def api(binding_app: Api) -> Api:
    """The module's app, seen as a fresh tenant."""
    return binding_app.for_tenant(f"tenant-{uuid.uuid4().hex[:8]}")
