"""Notify's API refuses before reading a body (security review: memory exhaustion without a token): the real app
(API only, real FerretDB) over real HTTP. A body over the limit is 413; a write under ``/v1/`` without a valid
token is 401 whatever its body (malformed JSON included, which used to be 422); the unauthenticated WeChat
callback has a small limit of its own (16 KiB)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from laifaxin_notify.app import create_app
from laifaxin_notify.auth import issue_token
from laifaxin_notify.settings import NotifySettings
from laifaxin_shared.auth import issue_token as shared_issue
from tests.integration.notify.conftest import serve
from tests.support.infra import Servers

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(real_servers: Servers) -> AsyncIterator[tuple[httpx.AsyncClient, NotifySettings]]:
    settings = NotifySettings(
        mongodb_url=SecretStr(real_servers.mongodb_url),
        mongodb_database=f"notify_{uuid.uuid4().hex[:10]}",
        environment="test",
        jwt_secret=SecretStr("guard-test-jwt-secret-0123456789abcdef"),
        log_json=False,
        log_level="WARNING",
    )
    app = create_app(settings, consume=False)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client, settings
        await app.state.runtime.mongo.drop_database(settings.mongodb_database)


async def test_writes_without_a_valid_token_are_401_whatever_the_body(
    http: tuple[httpx.AsyncClient, NotifySettings],
) -> None:
    client, settings = http
    malformed = b'{"categories": ['
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}):
        answer = await client.put(
            "/v1/preferences", content=malformed, headers={**headers, "Content-Type": "application/json"}
        )
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["detail"]["code"] == "unauthorized" and "not.a.jwt" not in answer.text
    # A token binding accepts (binding's audience) opens nothing here, even signed with notify's key.
    for_binding = shared_issue(settings.jwt_secret.get_secret_value(), "t", "u", audience="laifaxin-binding")
    refused = await client.put(
        "/v1/preferences", content=malformed, headers={"Authorization": f"Bearer {for_binding}"}
    )
    assert refused.status_code == 401
    token = issue_token(settings, "t", "u")
    accepted = await client.put(
        "/v1/preferences",
        content=malformed,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert accepted.status_code == 422  # with a token, the body is read and its error reported


async def test_big_bodies_are_413_before_they_are_read(
    http: tuple[httpx.AsyncClient, NotifySettings],
) -> None:
    client, settings = http
    token = issue_token(settings, "t", "u")
    big = await client.put(
        "/v1/preferences",
        content=b"[" + b"0," * 100_000 + b"0]",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["detail"]["code"] == "request_too_large"

    # The unauthenticated callback (its signature is checked before the body is read) takes 16 KiB at most.
    callback = await client.post(
        "/wechat/callback?signature=x&timestamp=1&nonce=1", content=b"<xml>" + b"a" * 20_000 + b"</xml>"
    )
    assert callback.status_code == 413
    detail: dict[str, Any] = callback.json()["detail"]
    assert "16384" in detail["message"] and detail["fix_zh"]
