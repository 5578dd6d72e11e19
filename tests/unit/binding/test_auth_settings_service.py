"""Tokens, settings and the pure rules of the domain service (no network, no database)."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import SecretStr, ValidationError

from laifaxin_binding import errors
from laifaxin_binding.auth import decode_token, issue_token
from laifaxin_binding.models import MailboxPatch, SyncIn
from laifaxin_binding.service import _email, _provider, _sync, new_mailbox_id
from laifaxin_binding.settings import BindingSettings
from laifaxin_shared.crypto import generate_key

SECRET = "unit-test-jwt-secret-0123456789abcdef"
AUD_IAT = {"aud": "laifaxin-binding", "iat": int(time.time())}


def settings(**kw: object) -> BindingSettings:
    return BindingSettings(environment="test", jwt_secret=SecretStr(SECRET), **kw)  # type: ignore[arg-type]


def test_token_round_trip() -> None:
    s = settings()
    who = decode_token(issue_token(s, "tenant-a", "u_1"), s)
    assert (who.tenant_id, who.user_id) == ("tenant-a", "u_1")


@pytest.mark.parametrize(
    ("claims", "key", "reason"),
    [
        ({**AUD_IAT, "tenant": "t", "sub": "u", "exp": int(time.time()) - 10}, SECRET, "expired"),
        (
            {**AUD_IAT, "tenant": "t", "sub": "u", "exp": int(time.time()) + 3600},
            "another-key-0123456789abcdef0123",
            "Signature",
        ),
        ({**AUD_IAT, "sub": "u", "exp": int(time.time()) + 3600}, SECRET, "tenant"),
        ({**AUD_IAT, "tenant": "t", "sub": "u"}, SECRET, "MissingRequiredClaim"),
        # no aud; a hundred-year exp
        (
            {"iat": int(time.time()), "tenant": "t", "sub": "u", "exp": int(time.time()) + 60},
            SECRET,
            "Missing",
        ),
        (
            {**AUD_IAT, "tenant": "t", "sub": "u", "exp": int(time.time()) + 100 * 365 * 86400},
            SECRET,
            "lifetime",
        ),
    ],
)
def test_bad_tokens_are_unauthorized(claims: dict[str, object], key: str, reason: str) -> None:
    token = jwt.encode(claims, key, algorithm="HS256")
    with pytest.raises(errors.BindingError) as info:
        decode_token(token, settings())
    assert info.value.status == 401 and info.value.code == "unauthorized"
    assert reason.lower() in info.value.message.en.lower()


def test_alg_none_is_refused() -> None:
    claims = {**AUD_IAT, "tenant": "t", "sub": "u", "exp": int(time.time()) + 3600}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(errors.BindingError):
        decode_token(token, settings())


def test_placeholder_jwt_secret_is_refused_in_production() -> None:
    keys = f"k1:{generate_key()}"
    with pytest.raises(ValidationError, match="BINDING_JWT_SECRET"):
        BindingSettings(environment="production", credential_keys=keys, credential_active_key_id="k1")  # type: ignore[arg-type]
    ok = BindingSettings(
        environment="production",
        credential_keys=keys,  # type: ignore[arg-type]
        credential_active_key_id="k1",
        jwt_secret=SecretStr("a-real-secret-from-the-vault-0123456789"),
    )
    assert ok.jwt_secret.get_secret_value().startswith("a-real")


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDING_HOST_ALLOWLIST", "127.0.0.0/8, ::1, mail.intranet.example")
    monkeypatch.setenv("BINDING_MAILBOX_LIMIT_PER_TENANT", "7")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    s = BindingSettings()
    networks, names = s.allowlist()
    assert [str(n) for n in networks] == ["127.0.0.0/8", "::1/128"]
    assert names == {"mail.intranet.example"}
    assert s.mailbox_limit_per_tenant == 7 and s.kafka_bootstrap_servers == "kafka:9092"
    assert s.mongodb_database == "binding"


def test_sync_interval_under_three_minutes_is_refused_with_the_reason() -> None:
    with pytest.raises(errors.BindingError) as info:
        _sync(SyncIn(interval_seconds=60))
    error = info.value.to_dict()
    assert error["code"] == "sync_interval_too_short" and error["minimum_seconds"] == 180
    assert "rate-limit" in error["message"] and error["message_zh"] and error["fix_zh"]
    assert _sync(SyncIn()).interval_seconds == 300
    assert _sync(SyncIn(interval_seconds=180)).interval_seconds == 180


def test_provider_choice() -> None:
    assert _provider(None, "a@163.com", None, None) is not None
    with pytest.raises(errors.BindingError) as info:
        _provider(None, "a@hotmail.com", None, None)
    assert info.value.code == "oauth_required"
    with pytest.raises(errors.BindingError) as info:
        _provider(None, "a@corp.example", None, None)
    assert info.value.code == "servers_required"
    with pytest.raises(errors.BindingError) as info:
        _provider("nope", "a@corp.example", None, None)
    assert info.value.code == "unknown_provider"


def test_email_is_normalised_or_refused() -> None:
    assert _email(" Sales@163.COM ") == "sales@163.com"
    with pytest.raises(errors.BindingError) as info:
        _email("not-an-address")
    assert info.value.code == "invalid_email"


def test_only_login_fields_need_verification() -> None:
    assert not MailboxPatch(nickname="x", sync=SyncIn()).needs_verification()
    assert MailboxPatch(password=SecretStr("p")).needs_verification()
    assert MailboxPatch(email="a@b.example").needs_verification()


def test_mailbox_ids_fit_the_event_pattern() -> None:
    import re

    assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", new_mailbox_id())
    assert new_mailbox_id() != new_mailbox_id()


def test_audience_is_always_checked() -> None:
    """``aud`` is required (RFC 7519 section 4.1.3): binding's own by default, or the configured one; a token for
    another service, or without any, is refused."""
    claims = {
        "tenant": "t",
        "sub": "u",
        "aud": "laifaxin",
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
    }
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(errors.BindingError):
        decode_token(token, settings())
    assert decode_token(token, settings(jwt_audience="laifaxin")).user_id == "u"
    with pytest.raises(errors.BindingError):
        decode_token(token, settings(jwt_audience="another-service"))
    del claims["aud"]
    with pytest.raises(errors.BindingError, match="MissingRequiredClaim"):
        decode_token(jwt.encode(claims, SECRET, algorithm="HS256"), settings(jwt_audience="laifaxin"))


def test_a_short_jwt_secret_is_refused_in_production() -> None:
    keys = f"k1:{generate_key()}"
    with pytest.raises(ValidationError, match="BINDING_JWT_SECRET must be a random key of at least 32 bytes"):
        BindingSettings(
            environment="production",
            credential_keys=keys,  # type: ignore[arg-type]
            credential_active_key_id="k1",
            jwt_secret=SecretStr("not-a-placeholder-but-short"),
        )
