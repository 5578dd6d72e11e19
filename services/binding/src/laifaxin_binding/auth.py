"""Binding's bearer tokens: :mod:`laifaxin_shared.auth` with binding's key, audience and lifetime, and its errors.

Claims: ``sub`` (user id), ``tenant_id``, ``aud`` (``BINDING_JWT_AUDIENCE``, default ``laifaxin-binding``), ``iat``
and ``exp`` (all required; ``exp - iat`` at most ``BINDING_JWT_MAX_LIFETIME_SECONDS``), ``iss`` when
``BINDING_JWT_ISSUER`` is set, optional ``mailbox_limit`` and ``role`` (``admin``). Only HS256 is accepted.
"""

from __future__ import annotations

from laifaxin_binding import errors
from laifaxin_binding.settings import BindingSettings
from laifaxin_shared import auth
from laifaxin_shared.auth import Principal


def decode_token(token: str, settings: BindingSettings) -> Principal:
    """The principal of a valid token.

    Raises:
        BindingError: 401 ``unauthorized`` for a bad signature, an expired or too long-lived token, another
            audience, or missing claims (the reason names the problem, never the token).
    """
    try:
        return settings.token_verifier().decode(token)
    except auth.InvalidTokenError as exc:
        raise errors.unauthorized(exc.reason) from None


def issue_token(
    settings: BindingSettings,
    tenant_id: str,
    user_id: str,
    ttl_seconds: int = 3600,
    mailbox_limit: int | None = None,
    role: str | None = None,
) -> str:
    """A signed token for ``tenant_id`` / ``user_id`` valid for ``ttl_seconds``, with the plan's
    ``mailbox_limit`` and the ``role`` when given (operator tooling and tests; production tokens come from the
    platform's sign-in).

    Raises:
        ValueError: ``ttl_seconds`` over ``BINDING_JWT_MAX_LIFETIME_SECONDS``.
    """
    return settings.token_verifier().issue(
        tenant_id, user_id, ttl_s=ttl_seconds, mailbox_limit=mailbox_limit, role=role
    )
