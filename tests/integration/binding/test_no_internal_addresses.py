"""Errors shown to users do not name the addresses our host names resolve to (security review: error texts
mapped the cluster's internal network). Through the binding API with the real verifier: ``localhost`` stands in
for a cluster host name (``mongodb.default.svc``...) that resolves to an internal address."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from laifaxin_binding.app import create_app
from laifaxin_binding.settings import BindingSettings
from tests.integration.binding.conftest import Api

pytestmark = pytest.mark.integration

INTERNAL = ("127.0.0.1", "::1")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def bind(host: str, port: int) -> dict[str, object]:
    return {
        "email": "someone@laifaxin.test",
        "password": "irrelevant-password",
        "imap": {"host": host, "port": port, "security": "ssl"},
        "smtp": {"host": host, "port": port, "security": "ssl"},
    }


async def test_a_connect_error_does_not_show_the_resolved_address(api: Api) -> None:
    answer = await api.client.post("/v1/mailboxes", json=bind("localhost", closed_port()), headers=api.auth())
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["code"] in ("connection_refused", "timeout"), error
    for address in INTERNAL:
        assert address not in answer.text, answer.text
    assert "localhost" in json.dumps(error)  # the user's own host name is said instead


@pytest.fixture
async def guarded(
    binding_settings: BindingSettings,
) -> AsyncIterator[tuple[httpx.AsyncClient, BindingSettings]]:
    settings = binding_settings.model_copy(update={"host_allowlist": ""})  # production: nothing private
    app = create_app(settings, start_broker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://binding") as http:
            yield http, settings


async def test_a_netguard_refusal_does_not_show_the_resolved_address(
    guarded: tuple[httpx.AsyncClient, BindingSettings],
) -> None:
    from laifaxin_binding.auth import issue_token

    http, settings = guarded
    headers = {"Authorization": f"Bearer {issue_token(settings, 'tenant-ip', 'u')}"}
    answer = await http.post("/v1/mailboxes", json=bind("localhost", 993), headers=headers)
    assert answer.status_code == 422 and answer.json()["code"] == "host_not_allowed", answer.text
    assert "localhost resolves to a non-public address" in answer.text
    for address in INTERNAL:
        assert address not in answer.text, answer.text


def test_hide_addresses_keeps_the_users_own_literal() -> None:
    from laifaxin_binding.verify import hide_addresses

    text = "ConnectionRefusedError: Multiple exceptions: Connect call failed ('10.0.3.7', 993), ('fd00::1', 993, 0, 0)"
    hidden = hide_addresses(text, "mail.svc")
    assert "10.0.3.7" not in hidden and "fd00::1" not in hidden and "<address of mail.svc>" in hidden
    assert hide_addresses("Connect call failed ('203.0.113.9', 993)", "203.0.113.9").count("203.0.113.9") == 1
    assert hide_addresses("at 10:22:33, version 1.2.3", "h") == "at 10:22:33, version 1.2.3"
