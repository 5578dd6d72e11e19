"""Notify's egress rules for user-given URLs (laifaxin_notify.egress) and its production secret checks."""

from __future__ import annotations

import secrets

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError

from laifaxin_notify.egress import EgressGuard, EgressRefused, refused
from laifaxin_notify.settings import NotifySettings, jwt_secret_weakness
from laifaxin_shared.crypto import generate_key
from tests.support.loopback import serve


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://fcm.googleapis.com/fcm/send/x", "https_required"),
        ("ftp://example.com/x", "https_required"),
        ("https://169.254.169.254/latest/meta-data/", "host_not_allowed"),
        ("https://[fd00:ec2::254]/", "host_not_allowed"),
        ("https://[::ffff:10.0.0.1]/", "host_not_allowed"),
        ("https://100.64.0.1/", "host_not_allowed"),
        ("https://0.0.0.0/", "host_not_allowed"),
        ("https://user:pass@example.com/", "invalid_url"),
        ("https:///nohost", "invalid_url"),
        ("https://[::1/", "invalid_url"),
    ],
)
def test_check_url_refuses(url: str, code: str) -> None:
    with pytest.raises(EgressRefused) as info:
        EgressGuard().check_url(url)
    assert info.value.code == code


def test_check_url_accepts_public_https_and_allowlisted_http() -> None:
    assert EgressGuard().check_url("https://fcm.googleapis.com/fcm/send/x") == ("fcm.googleapis.com", 443)
    assert EgressGuard().check_url("https://8.8.8.8:8443/x") == ("8.8.8.8", 8443)
    loopback = EgressGuard("127.0.0.1/32")
    assert loopback.check_url("http://127.0.0.1:9/push/x") == ("127.0.0.1", 9)
    with pytest.raises(EgressRefused):
        loopback.check_url("http://127.0.0.2:9/push/x")
    named = EgressGuard("push.internal.example")
    assert named.check_url("http://push.internal.example/x") == ("push.internal.example", 80)


async def test_a_name_connects_to_the_checked_address_with_its_own_host_header() -> None:
    """The guarded connector resolves ``localhost`` once, checks 127.0.0.1 against the allowlist and connects
    there; the request still names ``localhost`` (Host header). Without the allowlist it connects nowhere."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", record)
    runner, base = await serve(app)
    port = base.rsplit(":", 1)[1]
    try:
        allowed = EgressGuard("127.0.0.0/8")
        async with (
            aiohttp.ClientSession(connector=allowed.connector()) as http,
            http.get(f"http://localhost:{port}/") as answer,
        ):
            assert answer.status == 200
        assert seen == [f"localhost:{port}"]
        strict = EgressGuard()
        async with aiohttp.ClientSession(connector=strict.connector()) as http:
            with pytest.raises(aiohttp.ClientError) as info:
                await http.get(f"https://localhost:{port}/")
        why = refused(info.value)
        assert why is not None and why.code == "host_not_allowed" and "127.0.0.1" not in str(why)
        assert seen == [f"localhost:{port}"]
    finally:
        await runner.cleanup()


def test_blocking_guard_pins_urllib3_connections() -> None:
    import requests

    with EgressGuard().blocking() as refusals, pytest.raises(requests.ConnectionError):
        requests.get("http://localhost:9/", timeout=2)
    assert len(refusals) == 1 and refusals[0].code == "host_not_allowed"


@pytest.mark.parametrize(
    "weak",
    ["short", "a" * 64, "ab" * 32, "laifaxin" * 5, secrets.token_hex(16)],
)
def test_weak_jwt_secrets_are_named(weak: str) -> None:
    assert jwt_secret_weakness(weak) is not None


def test_strong_jwt_secrets_pass() -> None:
    assert jwt_secret_weakness(secrets.token_urlsafe(48)) is None
    assert jwt_secret_weakness(secrets.token_hex(32)) is None


def production(**kw: object) -> NotifySettings:
    base: dict[str, object] = {
        "environment": "production",
        "jwt_secret": SecretStr(secrets.token_urlsafe(48)),
        "secrets_keys": SecretStr(f"n1:{generate_key()}"),
        "secrets_active_key_id": "n1",
        "vapid_private_key": SecretStr("x" * 43),
    }
    return NotifySettings(**{**base, **kw})  # type: ignore[arg-type]


def test_production_settings_refuse_weak_jwt_and_the_development_ring_without_quoting_them() -> None:
    production()  # no LAIFAXIN_CREDENTIAL_KEYS needed: notify does not take the credential ring
    weak = "laifaxin-2026-laifaxin-2026-laifaxin"
    with pytest.raises(ValidationError) as info:
        production(jwt_secret=SecretStr(weak))
    assert "NOTIFY_JWT_SECRET is too weak" in str(info.value) and weak not in str(info.value)
    with pytest.raises(ValidationError, match="NOTIFY_SECRETS_KEYS is the development key ring"):
        production(secrets_keys=NotifySettings().secrets_keys, secrets_active_key_id="notify-dev-0")
    with pytest.raises(ValidationError, match="NOTIFY_SECRETS_KEYS"):
        production(secrets_keys=SecretStr("n1:not-a-key"))
    NotifySettings(environment="test", jwt_secret=SecretStr("short"))  # development and tests: anything
