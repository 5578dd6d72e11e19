"""Binding's bearer tokens: :mod:`laifaxin_shared.auth` with binding's secret and audience, and its errors.

Claims: ``sub`` (user id), ``tenant_id``, ``exp`` (required), ``aud`` when the deployment sets
``BINDING_JWT_AUDIENCE``. Only HS256 is accepted.
"""

from __future__ import annotations

from laifaxin_binding import errors
from laifaxin_binding.settings import BindingSettings
from laifaxin_shared import auth
from laifaxin_shared.auth import Principal


def decode_token(token: str, settings: BindingSettings) -> Principal:
    """The principal of a valid token.

    Raises:
        BindingError: 401 ``unauthorized`` for a bad signature, an expired token or missing claims (the
            reason names the problem, never the token).
    """
    try:
        return auth.decode_token(
            token, settings.jwt_secret.get_secret_value(), audience=settings.jwt_audience
        )
    except auth.InvalidTokenError as exc:
        raise errors.unauthorized(exc.reason) from None


def issue_token(
    settings: BindingSettings,
    tenant_id: str,
    user_id: str,
    ttl_seconds: int = 3600,
    mailbox_limit: int | None = None,
) -> str:
    """A signed token for ``tenant_id`` / ``user_id`` valid for ``ttl_seconds``, with the plan's
    ``mailbox_limit`` when given (operator tooling and tests; production tokens come from the platform's
    sign-in)."""
    return auth.issue_token(
        settings.jwt_secret.get_secret_value(),
        tenant_id,
        user_id,
        ttl_s=ttl_seconds,
        audience=settings.jwt_audience,
        mailbox_limit=mailbox_limit,
    )
