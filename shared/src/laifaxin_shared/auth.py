"""Bearer tokens for every HTTP service: HS256 JWTs (RFC 7519) sent as ``Authorization: Bearer`` (RFC 6750).

Each service has its own key and its own audience (binding: ``BINDING_JWT_SECRET`` with ``aud``
``laifaxin-binding``; notify: ``NOTIFY_JWT_SECRET`` with ``aud`` ``laifaxin-notify``), so a service that holds
its key can mint tokens for itself only: binding's key opens no door at notify and the other way round. The
platform's sign-in, which holds both keys, issues one token per service.

Claims, all checked (RFC 7519 section 4.1):

- ``sub`` (the user id) and ``tenant_id`` (``tenant`` is accepted too, for tokens issued before the two services
  shared this module), each at most :data:`MAX_ID_CHARS` characters;
- ``aud``: required, and must name the service (section 4.1.3: a token without it, or for another service, is
  refused);
- ``exp``: required; ``iat``: required, not in the future (beyond :data:`LEEWAY_S`), and ``exp - iat`` at most the
  service's maximum lifetime (``*_JWT_MAX_LIFETIME_SECONDS``, default 24 h): a token minted for a hundred years
  is refused even with a valid signature;
- ``iss`` when a deployment sets one;
- optional ``mailbox_limit``: how many mailboxes the tenant's plan allows (the platform's sign-in knows the plan;
  binding uses it over its deployment-wide default), an integer from 1 to :data:`MAX_MAILBOX_LIMIT`;
- optional ``role``: ``admin`` lets a tenant's administrator see and manage every mailbox of the tenant (binding),
  any other value or none is an ordinary user who sees only their own.

Only HS256 is accepted (no ``alg: none``, no algorithm confusion; RFC 8725 section 3.1). In production a key must
be at least 32 bytes (RFC 7518 section 3.2: an HMAC key at least as long as the hash) and not a placeholder
(:func:`check_secret`). Errors name the problem, never the token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
MAX_ID_CHARS = 64
MAX_MAILBOX_LIMIT = 10_000
DEFAULT_MAX_LIFETIME_S = 24 * 3600
"""Longest ``exp - iat`` a service accepts unless configured otherwise, seconds (24 h)."""
LEEWAY_S = 60
"""Clock skew tolerated on ``iat`` (a token issued by a clock slightly ahead), seconds."""
MIN_SECRET_BYTES = 32
"""Shortest HS256 key accepted in production (RFC 7518 section 3.2)."""
ADMIN_ROLE = "admin"
WEAK_SECRETS = frozenset({"", "change-me", "changeme", "changethis", "secret", "dev", "placeholder"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a verified token: every query is scoped by ``tenant_id`` (and, for users who are
    not admins, by ``user_id``)."""

    tenant_id: str
    user_id: str
    mailbox_limit: int | None = None
    """The ``mailbox_limit`` claim: mailboxes the tenant's plan allows; None when the token has none."""
    is_admin: bool = False
    """The ``role`` claim is ``admin``: the tenant's administrator."""


class InvalidTokenError(Exception):
    """The token is missing, malformed, expired, for another audience or issuer, lives too long, or lacks a
    claim.

    ``reason`` is short and safe to show (it never contains the token).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_secret(name: str, secret: str, environment: str) -> None:
    """Refuse a weak HS256 key outside development and test.

    Raises:
        ValueError: ``secret`` is a placeholder or shorter than :data:`MIN_SECRET_BYTES` bytes while
            ``environment`` is neither ``development`` nor ``test``; the message names ``name``, never the value.
    """
    if environment in ("development", "test"):
        return
    if secret.strip().lower() in WEAK_SECRETS or len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{name} must be a random key of at least {MIN_SECRET_BYTES} bytes for HS256 "
            f"(RFC 7518 section 3.2) in environment={environment}"
        )


def issue_token(
    secret: str,
    tenant_id: str,
    user_id: str,
    *,
    audience: str,
    ttl_s: int = 3600,
    issuer: str | None = None,
    mailbox_limit: int | None = None,
    role: str | None = None,
) -> str:
    """A signed token for ``user_id`` in ``tenant_id`` for the service ``audience``, valid ``ttl_s`` seconds
    (operator tools and tests; production tokens come from the platform's sign-in)."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "tenant_id": tenant_id,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    if issuer:
        claims["iss"] = issuer
    if mailbox_limit is not None:
        claims["mailbox_limit"] = mailbox_limit
    if role:
        claims["role"] = role
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(
    token: str,
    secret: str,
    *,
    audience: str,
    issuer: str | None = None,
    max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S,
) -> Principal:
    """The principal of a valid token for the service ``audience``.

    Raises:
        InvalidTokenError: bad signature, expired, no or wrong ``aud``, wrong ``iss``, no ``iat`` or one in the
            future, ``exp - iat`` over ``max_lifetime_s``, a missing or oversized claim, or a ``mailbox_limit``
            that is not an integer from 1 to :data:`MAX_MAILBOX_LIMIT`.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "aud", "sub"], "verify_aud": True, "verify_iat": False},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidTokenError(type(exc).__name__) from None
    issued, expires = claims["iat"], claims["exp"]
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):  # PyJWT checked both
        raise InvalidTokenError("iat and exp must be numbers")
    if issued > time.time() + LEEWAY_S:
        raise InvalidTokenError("token issued in the future")
    if expires - issued > max_lifetime_s:
        raise InvalidTokenError(f"token lifetime over {max_lifetime_s} s")
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
    return Principal(
        tenant_id=tenant, user_id=user, mailbox_limit=limit, is_admin=claims.get("role") == ADMIN_ROLE
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value.

    Raises:
        InvalidTokenError: no header, or another scheme.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("missing bearer token")
    return token.strip()


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    """One service's token rules: its key, its audience, its issuer (optional) and the longest lifetime it
    accepts. Built once from the service's settings; used by the request gate
    (:class:`laifaxin_shared.http.RequestGuard`) before any body is read, and by the route dependencies."""

    secret: str
    audience: str
    issuer: str | None = None
    max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S

    def decode(self, token: str) -> Principal:
        """:func:`decode_token` with this service's rules.

        Raises:
            InvalidTokenError: as :func:`decode_token`.
        """
        return decode_token(
            token, self.secret, audience=self.audience, issuer=self.issuer, max_lifetime_s=self.max_lifetime_s
        )

    def from_header(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value.

        Raises:
            InvalidTokenError: no bearer token, or one :meth:`decode` refuses.
        """
        return self.decode(bearer_token(authorization))

    def issue(
        self,
        tenant_id: str,
        user_id: str,
        *,
        ttl_s: int = 3600,
        mailbox_limit: int | None = None,
        role: str | None = None,
    ) -> str:
        """A token this verifier accepts (tests and operator tools).

        Raises:
            ValueError: ``ttl_s`` over the maximum lifetime (the token would be refused).
        """
        if ttl_s > self.max_lifetime_s:
            raise ValueError(f"ttl_s {ttl_s} is over the maximum lifetime of {self.max_lifetime_s} s")
        return issue_token(
            self.secret,
            tenant_id,
            user_id,
            audience=self.audience,
            ttl_s=ttl_s,
            issuer=self.issuer,
            mailbox_limit=mailbox_limit,
            role=role,
        )
