"""send's OpenAPI document holds: schemathesis with every check and its stateful phase against the send service
(API, Kafka consumers and dispatcher) served by uvicorn on the real Kafka and FerretDB."""

from __future__ import annotations

import random

import pytest

from laifaxin_send.app import create_app
from laifaxin_send.auth import issue_token
from tests.integration.contracts.conftest import run_schemathesis
from tests.integration.notify.conftest import serve
from tests.integration.send.conftest import SendEnv
from tests.support.infra import Servers

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
async def test_send_holds_its_openapi_document(real_servers: Servers, topic_prefix: str) -> None:
    env = SendEnv(real_servers, topic_prefix)
    await env.setup()
    try:
        settings = env.settings()
        app = create_app(settings, rng=random.Random(7))
        async with serve(app) as base_url:
            token = issue_token(settings, "tenant-contract", "u_contract")
            code, out, _ = await run_schemathesis("send", base_url, token)
    finally:
        await env.close()
    assert code == 0, out[-6000:]
