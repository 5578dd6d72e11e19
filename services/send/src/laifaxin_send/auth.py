"""Send's bearer tokens: :mod:`laifaxin_shared.auth` with send's own key, audience and lifetime."""

from __future__ import annotations

from laifaxin_send.errors import refusal
from laifaxin_send.settings import SendSettings
from laifaxin_shared import auth
from laifaxin_shared.auth import Principal


def decode_token(token: str, settings: SendSettings) -> Principal:
    """The principal of a valid token.

    Raises:
        SendError: 401 ``unauthorized`` (the reason names the problem, never the token).
    """
    try:
        return settings.token_verifier().decode(token)
    except auth.InvalidTokenError as exc:
        raise refusal("unauthorized", reason=exc.reason) from None


def issue_token(settings: SendSettings, tenant_id: str, user_id: str, ttl_seconds: int = 3600) -> str:
    """A signed token (operator tooling and tests; production tokens come from the platform's sign-in)."""
    return settings.token_verifier().issue(tenant_id, user_id, ttl_s=ttl_seconds)
