"""binding's OpenAPI document holds: schemathesis with every check and its stateful phase against binding served
by uvicorn on the real Kafka and FerretDB (the mailbox id from ``POST /v1/mailboxes`` feeds the ``/{mailbox_id}``
operations through the document's links)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from laifaxin_binding.app import create_app
from laifaxin_binding.auth import issue_token
from laifaxin_shared.kafka import ensure_topics
from laifaxin_shared.topics import spec
from tests.conftest import MailAccount
from tests.integration.binding.conftest import MAILBOX_TOPICS, make_settings
from tests.integration.binding.test_api import body
from tests.integration.contracts.conftest import run_schemathesis
from tests.integration.notify.conftest import serve
from tests.support.infra import Servers

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
async def test_binding_holds_its_openapi_document(
    real_servers: Servers, topic_prefix: str, mail_account: MailAccount
) -> None:
    """A mailbox bound first on a real Dovecot account is the ``mailbox_id`` of the GET / PATCH / verify
    operations (schemathesis.toml), so they reach the real logic (a generated id is a 404); generated binds fail
    verification (422) and so cannot feed the links."""
    settings = make_settings(real_servers, topic_prefix, f"test_{uuid.uuid4().hex[:12]}").model_copy(
        update={"mailbox_limit_per_tenant": 1000, "rate_max_failures_per_address": 1000}
    )
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [spec(name) for name in MAILBOX_TOPICS],
        prefix=topic_prefix,
        replication_factor=1,
    )
    app = create_app(settings)
    token = issue_token(settings, f"tenant-{uuid.uuid4().hex[:8]}", "u_contract")
    async with serve(app) as base_url:
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
                bound = await http.post(
                    "/v1/mailboxes",
                    json=body(mail_account),
                    headers={"Authorization": f"Bearer {token}"},
                )
            assert bound.status_code == 201, bound.text
            code, out, _ = await run_schemathesis(
                "binding", base_url, token, env={"CONTRACT_MAILBOX_ID": bound.json()["id"]}
            )
        finally:
            await app.state.mongo.drop_database(settings.mongodb_database)
    assert code == 0, out[-6000:]
