"""The inbox's bearer tokens: :mod:`laifaxin_shared.auth` with the inbox's key (``INBOX_JWT_SECRET``), audience
(``laifaxin-inbox``) and lifetime. Claims: ``sub`` (user id), ``tenant_id``, ``aud``, ``iat``, ``exp``. Every
query is scoped by the token's tenant and user. Errors never echo the token.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from laifaxin_shared import auth
from laifaxin_shared.auth import Principal

from .settings import InboxSettings

__all__ = ["Principal", "issue_token", "principal"]


def issue_token(settings: InboxSettings, tenant_id: str, user_id: str, ttl_s: int = 3600) -> str:
    """A token the inbox accepts (tests and operator tools; production tokens come from the sign-in)."""
    return settings.token_verifier().issue(tenant_id, user_id, ttl_s=ttl_s)


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller from ``Authorization: Bearer <jwt>``.

    Raises:
        HTTPException: 401 with the reason (missing, expired, wrong audience, bad signature, ...).
    """
    settings: InboxSettings = request.app.state.settings
    try:
        who = settings.token_verifier().from_header(request.headers.get("authorization"))
        if "|" in who.tenant_id or "|" in who.user_id:  # the separator of the read model's _id layouts
            raise auth.InvalidTokenError("tenant_id and sub must not contain '|'")
        return who
    except auth.InvalidTokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            {"code": "unauthorized", "message": exc.reason},
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
