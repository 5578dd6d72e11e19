"""Fixtures shared by every test layer: the real servers, and per-test isolation (topics, databases, users)."""

from __future__ import annotations

import imaplib
import importlib.util
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from laifaxin_shared.imap import client_tls_context
from laifaxin_shared.kafka import delete_topics
from laifaxin_shared.mongo import Document, make_mongo_client
from tests.support.infra import INFRA, Servers, ServersUnavailable, servers

REAL_MAIL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-mail"
"""The real public emails beside the repository (../shared/data/real-mail); read in place, never copied."""


def require_corpus(path: Path) -> Path:
    """``path`` if it is a folder; otherwise fail under ``CI`` (where ../shared is always beside the repository)
    and skip elsewhere."""
    if path.is_dir():
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{path} is required in CI")
    pytest.skip(f"{path} is not present")


@pytest.fixture(scope="session")
def real_servers() -> Iterator[Servers]:
    """Kafka, a MongoDB-wire server, Dovecot and the SMTP server; fails in CI when they cannot be had."""
    try:
        with servers() as found:
            yield found
    except ServersUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"real servers are required in CI: {exc}")
        pytest.skip(f"real servers unavailable: {exc}")


@pytest.fixture
async def topic_prefix(real_servers: Servers) -> AsyncIterator[str]:
    """A fresh topic prefix per test, so tests never read each other's records; the test's topics are
    deleted afterwards, so a whole run does not pile tens of thousands of partitions on one broker."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield prefix
    await delete_topics(real_servers.kafka_bootstrap_servers, prefix)


@pytest.fixture
async def mongo_db(real_servers: Servers) -> AsyncIterator[Any]:
    """A fresh database per test on the real MongoDB-wire server, dropped afterwards."""
    client = make_mongo_client(real_servers.mongodb_url, appname="laifaxin-tests")
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def _infra_module() -> Any:
    spec = importlib.util.spec_from_file_location("laifaxin_local_infra", INFRA)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def infra_module() -> Any:
    """deploy/local/infra.py loaded as a module (for add_user)."""
    return _infra_module()


class MailAccount:
    """A real account on the local Dovecot + SMTP server."""

    def __init__(self, email: str, password: str, servers: Servers) -> None:
        self.email = email
        self.password = password
        self.servers = servers
        self.host = str(servers.mail["imap_host"])
        self.imap_port = int(servers.mail["imap_port"])
        self.imaps_port = int(servers.mail["imaps_port"])
        self.smtp_port = int(servers.mail["smtp_port"])
        self.smtps_port = int(servers.mail["smtps_port"])

    def __repr__(self) -> str:
        return f"MailAccount({self.email!r})"


def wait_until_login_works(account: MailAccount, timeout: float = 5.0) -> None:
    """Dovecot re-reads its passwd-file at most once a second: wait until the new user can log in."""
    ctx = client_tls_context(account.servers.ca_file)
    # The passwd-file is re-checked when the clock has moved to a new second since the last check.
    time.sleep(1.02 - (time.time() % 1.0))
    # A login can take seconds on a busy machine (Dovecot's auth process also asks the local Hydra's token
    # introspection for a password the passwd-file does not know yet): a read that times out is retried, and the
    # wait lasts at least 30 s.
    deadline = time.monotonic() + max(timeout, 30.0)
    while True:
        try:
            with imaplib.IMAP4_SSL(account.host, account.imaps_port, ssl_context=ctx, timeout=15) as conn:
                try:
                    conn.login(account.email, account.password)
                except imaplib.IMAP4.error:
                    if time.monotonic() > deadline:
                        raise
                else:
                    conn.logout()
                    return
        except (TimeoutError, ConnectionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def add_account(
    servers: Servers,
    infra_module: Any,
    *,
    local: str | None = None,
    domain: str | None = None,
    wait: Callable[[MailAccount], None] = wait_until_login_works,
) -> MailAccount:
    """A fresh user ``<local>@<domain>`` (default ``u<hex>`` at the test mail domain; the local Dovecot and SMTP
    server accept any domain) with a random password, added to the running Dovecot; returned once ``wait``
    saw it log in."""
    email = f"{local or 'u' + uuid.uuid4().hex[:10]}@{domain or servers.mail['mail_domain']}"
    password = "pw-" + secrets.token_urlsafe(12)
    infra_module.add_user(email, password, Path(servers.mail["passwd_file"]))
    account = MailAccount(email, password, servers)
    wait(account)
    return account


@pytest.fixture
def new_mail_account(real_servers: Servers, infra_module: Any) -> Any:
    """Factory: ``new_mail_account()`` adds a fresh user to the running Dovecot and returns it."""

    def make(local: str | None = None) -> MailAccount:
        return add_account(real_servers, infra_module, local=local)

    return make


@pytest.fixture
def mail_account(new_mail_account: Any) -> MailAccount:
    """A fresh account on the local mail servers."""
    account: MailAccount = new_mail_account()
    return account


@pytest.fixture
def tls_context(real_servers: Servers) -> Any:
    """A verifying client TLS context that trusts the local test CA."""
    return client_tls_context(real_servers.ca_file)


__all__ = ["REAL_MAIL", "Document", "MailAccount"]
