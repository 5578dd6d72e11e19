from __future__ import annotations

import jwt
import pytest

from laifaxin_shared.auth import InvalidTokenError, bearer_token, decode_token, issue_token

SECRET = "a-test-secret-that-is-long-enough-0123456789"


def test_round_trip_with_audience_and_issuer() -> None:
    token = issue_token(SECRET, "tenant-a", "u1", audience="laifaxin", issuer="auth.laifaxin")
    p = decode_token(token, SECRET, audience="laifaxin", issuer="auth.laifaxin")
    assert (p.tenant_id, p.user_id) == ("tenant-a", "u1")


@pytest.mark.parametrize(
    ("token", "kwargs", "reason"),
    [
        (issue_token(SECRET, "t", "u", ttl_s=-10), {}, "token expired"),
        (issue_token("another-secret-0123456789-0123456789", "t", "u"), {}, "InvalidSignatureError"),
        (issue_token(SECRET, "t", "u", audience="other"), {"audience": "laifaxin"}, "InvalidAudienceError"),
        (
            jwt.encode({"sub": "u", "exp": 9999999999}, SECRET, algorithm="HS256"),
            {},
            "tenant_id or sub claim missing",
        ),
        (
            jwt.encode({"sub": "u", "tenant_id": "t"}, SECRET, algorithm="HS256"),
            {},
            "MissingRequiredClaimError",
        ),
        (
            jwt.encode({"sub": "u", "tenant_id": "t", "exp": 9999999999}, SECRET, algorithm="HS512"),
            {},
            "InvalidAlgorithmError",
        ),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str, kwargs: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidTokenError) as info:
        decode_token(token, SECRET, **kwargs)
    assert info.value.reason == reason
    assert token not in str(info.value)


def test_the_plans_mailbox_limit_claim() -> None:
    assert decode_token(issue_token(SECRET, "t", "u"), SECRET).mailbox_limit is None
    assert decode_token(issue_token(SECRET, "t", "u", mailbox_limit=50), SECRET).mailbox_limit == 50


@pytest.mark.parametrize("limit", [0, -1, 10_001, "20", 2.5, True])
def test_a_bad_mailbox_limit_claim_is_refused(limit: object) -> None:
    token = jwt.encode({"sub": "u", "tenant_id": "t", "exp": 9999999999, "mailbox_limit": limit}, SECRET)
    with pytest.raises(InvalidTokenError, match="mailbox_limit claim must be an integer from 1 to 10000"):
        decode_token(token, SECRET)


def test_legacy_tenant_claim_is_accepted() -> None:
    token = jwt.encode({"sub": "u", "tenant": "t", "exp": 9999999999}, SECRET, algorithm="HS256")
    assert decode_token(token, SECRET).tenant_id == "t"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "bearer"])
def test_bearer_header_required(header: str | None) -> None:
    with pytest.raises(InvalidTokenError, match="missing bearer token"):
        bearer_token(header)
