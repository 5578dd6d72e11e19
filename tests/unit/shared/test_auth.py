from __future__ import annotations

import time

import jwt
import pytest

from laifaxin_shared.auth import (
    InvalidTokenError,
    TokenVerifier,
    bearer_token,
    check_secret,
    decode_token,
    issue_token,
)

SECRET = "a-test-secret-that-is-long-enough-0123456789"
AUD = "laifaxin-binding"
NOW = int(
    time.time()
)  # tokens below are built at collection time: exp leaves room for a long test run (max lifetime 24 h)


def test_round_trip_with_audience_and_issuer() -> None:
    token = issue_token(SECRET, "tenant-a", "u1", audience="laifaxin", issuer="auth.laifaxin")
    p = decode_token(token, SECRET, audience="laifaxin", issuer="auth.laifaxin")
    assert (p.tenant_id, p.user_id) == ("tenant-a", "u1")
    assert not p.is_admin


@pytest.mark.parametrize(
    ("token", "kwargs", "reason"),
    [
        (issue_token(SECRET, "t", "u", audience=AUD, ttl_s=-10), {}, "token expired"),
        (
            issue_token("another-secret-0123456789-0123456789", "t", "u", audience=AUD),
            {},
            "InvalidSignatureError",
        ),
        (issue_token(SECRET, "t", "u", audience="other"), {"audience": "laifaxin"}, "InvalidAudienceError"),
        (
            jwt.encode({"sub": "u", "aud": AUD, "iat": NOW, "exp": NOW + 80_000}, SECRET, algorithm="HS256"),
            {},
            "tenant_id or sub claim missing",
        ),
        (
            jwt.encode({"sub": "u", "tenant_id": "t", "aud": AUD, "iat": NOW}, SECRET, algorithm="HS256"),
            {},
            "MissingRequiredClaimError",
        ),
        (
            jwt.encode(
                {"sub": "u", "tenant_id": "t", "aud": AUD, "iat": NOW, "exp": NOW + 80_000},
                SECRET,
                algorithm="HS512",
            ),
            {},
            "InvalidAlgorithmError",
        ),
        # The attacks of the security review: no aud, a hundred-year exp, no iat, an iat in the future.
        (
            jwt.encode({"sub": "u", "tenant_id": "t", "iat": NOW, "exp": NOW + 80_000}, SECRET),
            {},
            "MissingRequiredClaimError",
        ),
        (
            jwt.encode(
                {"sub": "u", "tenant_id": "t", "aud": AUD, "iat": NOW, "exp": NOW + 100 * 365 * 86400}, SECRET
            ),
            {},
            "token lifetime over 86400 s",
        ),
        (
            jwt.encode({"sub": "u", "tenant_id": "t", "aud": AUD, "exp": NOW + 80_000}, SECRET),
            {},
            "MissingRequiredClaimError",
        ),
        (
            jwt.encode(
                {"sub": "u", "tenant_id": "t", "aud": AUD, "iat": NOW + 3600, "exp": NOW + 4000}, SECRET
            ),
            {},
            "token issued in the future",
        ),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str, kwargs: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidTokenError) as info:
        decode_token(token, SECRET, **{"audience": AUD, **kwargs})
    assert info.value.reason == reason
    assert token not in str(info.value)


def test_the_plans_mailbox_limit_claim() -> None:
    assert (
        decode_token(issue_token(SECRET, "t", "u", audience=AUD), SECRET, audience=AUD).mailbox_limit is None
    )
    token = issue_token(SECRET, "t", "u", audience=AUD, mailbox_limit=50)
    assert decode_token(token, SECRET, audience=AUD).mailbox_limit == 50


@pytest.mark.parametrize("limit", [0, -1, 10_001, "20", 2.5, True])
def test_a_bad_mailbox_limit_claim_is_refused(limit: object) -> None:
    claims = {
        "sub": "u",
        "tenant_id": "t",
        "aud": AUD,
        "iat": NOW,
        "exp": NOW + 80_000,
        "mailbox_limit": limit,
    }
    token = jwt.encode(claims, SECRET)
    with pytest.raises(InvalidTokenError, match="mailbox_limit claim must be an integer from 1 to 10000"):
        decode_token(token, SECRET, audience=AUD)


def test_legacy_tenant_claim_is_accepted() -> None:
    claims = {"sub": "u", "tenant": "t", "aud": AUD, "iat": NOW, "exp": NOW + 80_000}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert decode_token(token, SECRET, audience=AUD).tenant_id == "t"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "bearer"])
def test_bearer_header_required(header: str | None) -> None:
    with pytest.raises(InvalidTokenError, match="missing bearer token"):
        bearer_token(header)


def test_one_services_key_opens_no_door_at_the_other() -> None:
    """Binding and notify each have a key and an audience: a token minted with binding's key (or for binding's
    audience) is refused by notify."""
    binding = TokenVerifier("binding-key-0123456789abcdef0123456789", "laifaxin-binding")
    notify = TokenVerifier("notify-key-0123456789abcdef01234567890", "laifaxin-notify")
    assert binding.decode(binding.issue("t", "u")).tenant_id == "t"
    with pytest.raises(InvalidTokenError, match="InvalidSignatureError"):
        notify.decode(binding.issue("t", "u"))
    for_binding_with_notifys_key = issue_token(notify.secret, "t", "u", audience="laifaxin-binding")
    with pytest.raises(InvalidTokenError, match="InvalidAudienceError"):
        notify.decode(for_binding_with_notifys_key)


def test_the_maximum_lifetime_is_the_services() -> None:
    short = TokenVerifier(SECRET, AUD, max_lifetime_s=600)
    with pytest.raises(InvalidTokenError, match="token lifetime over 600 s"):
        short.decode(issue_token(SECRET, "t", "u", audience=AUD, ttl_s=3600))
    with pytest.raises(ValueError, match="over the maximum lifetime"):
        short.issue("t", "u", ttl_s=3600)
    assert short.issue("t", "u", ttl_s=600)


def test_the_admin_role() -> None:
    verifier = TokenVerifier(SECRET, AUD)
    assert verifier.decode(verifier.issue("t", "u", role="admin")).is_admin
    assert not verifier.decode(verifier.issue("t", "u", role="user")).is_admin


@pytest.mark.parametrize("secret", ["change-me", "short-but-not-a-placeholder", ""])
def test_weak_secrets_are_refused_in_production_only(secret: str) -> None:
    with pytest.raises(ValueError, match="NOTIFY_JWT_SECRET must be a random key of at least 32 bytes"):
        check_secret("NOTIFY_JWT_SECRET", secret, "production")
    check_secret("NOTIFY_JWT_SECRET", secret, "development")
    check_secret("NOTIFY_JWT_SECRET", "x" * 32, "production")
