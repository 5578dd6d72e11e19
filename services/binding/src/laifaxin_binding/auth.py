"""Bearer tokens (RFC 6750) carrying the tenant and the user: HS256 JWTs (RFC 7519) checked with PyJWT.

Claims: ``tenant`` (or ``tenant_id``), ``sub`` (user id), ``exp`` (required), ``aud`` when the deployment
sets ``BINDING_JWT_AUDIENCE``. Only HS256 is accepted (no ``alg: none``, no algorithm confusion).
"""

from __future__ import annotations

import time

import jwt

from laifaxin_binding import errors
from laifaxin_binding.service import Principal
from laifaxin_binding.settings import BindingSettings

ALGORITHM = "HS256"


def decode_token(token: str, settings: BindingSettings) -> Principal:
    """The principal of a valid token.

    Raises:
        BindingError: 401 ``unauthorized`` for a bad signature, an expired token or missing claims (the
            reason names the problem, never the token).
    """
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            options={"require": ["exp", "sub"], "verify_aud": settings.jwt_audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise errors.unauthorized("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise errors.unauthorized(type(exc).__name__) from None
    tenant = claims.get("tenant") or claims.get("tenant_id")
    user = claims.get("sub")
    if not isinstance(tenant, str) or not tenant or not isinstance(user, str) or not user:
        raise errors.unauthorized("tenant or sub claim missing")
    if len(tenant) > 64 or len(user) > 64:
        raise errors.unauthorized("tenant or sub claim too long")
    return Principal(tenant_id=tenant, user_id=user)


def issue_token(settings: BindingSettings, tenant_id: str, user_id: str, ttl_seconds: int = 3600) -> str:
    """A signed token for ``tenant_id`` / ``user_id`` valid for ``ttl_seconds`` (operator tooling and tests;
    production tokens come from the platform's sign-in)."""
    now = int(time.time())
    claims: dict[str, object] = {"tenant": tenant_id, "sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)
