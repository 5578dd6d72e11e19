"""A binding app of its own for a test module (its own topic prefix, database and settings, optionally its own
detector), reached through httpx over ASGI like conftest's ``binding_app``; and mail accounts on any domain."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from laifaxin_binding.app import create_app
from laifaxin_binding.detect import Detector
from laifaxin_shared.kafka import ensure_topics
from laifaxin_shared.topics import spec
from tests.conftest import MailAccount, add_account
from tests.integration.binding.conftest import MAILBOX_TOPICS, Api, _wait_for_login, make_settings
from tests.support.infra import Servers


@contextlib.asynccontextmanager
async def own_app(
    servers: Servers, *, detector: Detector | None = None, **settings: Any
) -> AsyncIterator[Api]:
    """The app on a fresh topic prefix and database (dropped afterwards), with ``settings`` overriding
    conftest's :func:`make_settings` and ``detector`` passed to :func:`create_app`."""
    base = make_settings(servers, f"t{uuid.uuid4().hex[:10]}.", f"test_{uuid.uuid4().hex[:12]}")
    binding_settings = base.model_copy(update=settings)
    await ensure_topics(
        binding_settings.kafka_bootstrap_servers,
        [spec(name) for name in MAILBOX_TOPICS],
        prefix=binding_settings.topic_prefix,
        replication_factor=1,
    )
    app = create_app(binding_settings, detector=detector)
    async with app.router.lifespan_context(app):
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://binding", timeout=60
            ) as client:
                yield Api(client, app, binding_settings)
        finally:
            await app.state.mongo.drop_database(binding_settings.mongodb_database)


def account_on(servers: Servers, infra_module: Any, domain: str) -> MailAccount:
    """A fresh account ``u<hex>@<domain>`` on the local Dovecot + SMTP server (they accept any domain), once it
    can log in."""
    return add_account(servers, infra_module, domain=domain, wait=_wait_for_login)
