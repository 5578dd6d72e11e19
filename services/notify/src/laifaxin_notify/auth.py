"""Notify's bearer tokens: :mod:`laifaxin_shared.auth` with notify's secret, audience and issuer, as FastAPI
errors. A token carries ``sub`` (the user id), ``tenant_id``, ``aud`` and ``exp``; every query the API makes is
scoped by the token's tenant and user. Errors never echo the token.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from laifaxin_shared import auth
from laifaxin_shared.auth import Principal

from .settings import NotifySettings

__all__ = ["Principal", "issue_token", "principal", "verify_token"]


def issue_token(settings: NotifySettings, tenant_id: str, user_id: str, ttl_s: int = 3600) -> str:
    """An HS256 token for ``user_id`` in ``tenant_id`` (tests, local tools; production tokens come from login)."""
    return auth.issue_token(
        settings.jwt_secret.get_secret_value(),
        tenant_id,
        user_id,
        ttl_s=ttl_s,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )


def verify_token(settings: NotifySettings, token: str) -> Principal:
    """The principal of a valid token.

    Raises:
        HTTPException: 401 when the signature, audience, issuer or expiry is wrong or a claim is missing.
    """
    try:
        return auth.decode_token(
            token,
            settings.jwt_secret.get_secret_value(),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
    except auth.InvalidTokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"invalid token: {exc.reason}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller from ``Authorization: Bearer <jwt>``."""
    try:
        token = auth.bearer_token(request.headers.get("authorization"))
    except auth.InvalidTokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, exc.reason, headers={"WWW-Authenticate": "Bearer"}
        ) from None
    settings: NotifySettings = request.app.state.settings
    return verify_token(settings, token)
