"""Bearer JWT authentication (PyJWT, HS256) and tenant scoping for the HTTP API.

A token carries ``sub`` (the user id), ``tenant_id``, ``aud`` (settings.jwt_audience) and ``exp``; every query
the API makes is scoped by the token's tenant and user. Errors never echo the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from fastapi import HTTPException, Request, status

from .settings import NotifySettings


@dataclass(frozen=True)
class Principal:
    """Who is calling: tenant and user from the verified token."""

    tenant_id: str
    user_id: str


def issue_token(settings: NotifySettings, tenant_id: str, user_id: str, ttl_s: int = 3600) -> str:
    """An HS256 token for ``user_id`` in ``tenant_id`` (tests, local tools; production tokens come from login)."""
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": user_id,
        "tenant_id": tenant_id,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def verify_token(settings: NotifySettings, token: str) -> Principal:
    """The principal of a valid token.

    Raises:
        HTTPException: 401 when the signature, audience, issuer or expiry is wrong or a claim is missing.
    """
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "tenant_id"]},
        )
    except jwt.PyJWTError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"invalid token: {type(exc).__name__}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    tenant, user = claims.get("tenant_id"), claims.get("sub")
    if not isinstance(tenant, str) or not tenant or not isinstance(user, str) or not user:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token: empty tenant or subject")
    return Principal(tenant, user)


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller from ``Authorization: Bearer <jwt>``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    settings: NotifySettings = request.app.state.settings
    return verify_token(settings, token.strip())
