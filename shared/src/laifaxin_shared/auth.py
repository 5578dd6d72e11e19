"""Bearer tokens for every HTTP service: HS256 JWTs (RFC 7519) sent as ``Authorization: Bearer`` (RFC 6750).

Claims: ``sub`` (the user id), ``tenant_id`` (``tenant`` is accepted too, for tokens issued before the two
services shared this module), ``exp`` (required), ``iat``, and ``aud`` / ``iss`` when a deployment sets them.
Optional ``mailbox_limit``: how many mailboxes the tenant's plan allows (the platform's sign-in knows the plan;
binding uses it over its deployment-wide default).
Only HS256 is accepted (no ``alg: none``, no algorithm confusion). Errors name the problem, never the token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
MAX_ID_CHARS = 64
MAX_MAILBOX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a verified token: every query is scoped by ``tenant_id``."""

    tenant_id: str
    user_id: str
    mailbox_limit: int | None = None
    """The ``mailbox_limit`` claim: mailboxes the tenant's plan allows; None when the token has none."""


class InvalidTokenError(Exception):
    """The token is missing, malformed, expired, for another audience or issuer, or lacks a claim.

    ``reason`` is short and safe to show (it never contains the token).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def issue_token(
    secret: str,
    tenant_id: str,
    user_id: str,
    *,
    ttl_s: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
    mailbox_limit: int | None = None,
) -> str:
    """A signed token for ``user_id`` in ``tenant_id``, valid ``ttl_s`` seconds (operator tools and tests;
    production tokens come from the platform's sign-in)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "tenant_id": tenant_id, "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    if mailbox_limit is not None:
        claims["mailbox_limit"] = mailbox_limit
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(
    token: str, secret: str, *, audience: str | None = None, issuer: str | None = None
) -> Principal:
    """The principal of a valid token.

    Raises:
        InvalidTokenError: bad signature, expired, wrong ``aud``/``iss``, a missing or oversized claim, or a
            ``mailbox_limit`` that is not an integer from 1 to ``MAX_MAILBOX_LIMIT``.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "sub"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidTokenError(type(exc).__name__) from None
    tenant = claims.get("tenant_id") or claims.get("tenant")
    user = claims.get("sub")
    if not isinstance(tenant, str) or not tenant or not isinstance(user, str) or not user:
        raise InvalidTokenError("tenant_id or sub claim missing")
    if len(tenant) > MAX_ID_CHARS or len(user) > MAX_ID_CHARS:
        raise InvalidTokenError("tenant_id or sub claim too long")
    limit = claims.get("mailbox_limit")
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_MAILBOX_LIMIT
    ):
        raise InvalidTokenError(f"mailbox_limit claim must be an integer from 1 to {MAX_MAILBOX_LIMIT}")
    return Principal(tenant_id=tenant, user_id=user, mailbox_limit=limit)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value.

    Raises:
        InvalidTokenError: no header, or another scheme.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("missing bearer token")
    return token.strip()
