"""notify's OpenAPI document holds: schemathesis with every check and its stateful phase against the whole notify
service (API and Kafka consumers) served by uvicorn on the real Kafka and FerretDB, with the loopback WeChat and
Web Push services."""

from __future__ import annotations

import pytest

from laifaxin_notify.auth import issue_token
from tests.integration.contracts.conftest import run_schemathesis
from tests.integration.notify.test_service import make_settings, run_service
from tests.support.infra import Servers
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
async def test_notify_holds_its_openapi_document(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer, push: PushService
) -> None:
    settings = make_settings(real_servers, topic_prefix, wechat)
    async with run_service(settings, topic_prefix) as running:
        token = issue_token(settings, "tenant-contract", "u_contract")
        code, out, _ = await run_schemathesis("notify", running["base_url"], token)
    assert code == 0, out[-6000:]
