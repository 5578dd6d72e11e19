"""Signed, short-lived grants to read one raw message from sync's store (service to service).

Sync owns the raw RFC 5322 bytes of every message it indexed (``mail.received.raw_ref`` points at them); no other
service reads sync's database. A service that needs the bytes (the inbox, to show HTML and attachments) asks
sync's ``GET /v1/raw`` with a grant: ``raw_ref``, an expiry (Unix seconds) and an HMAC-SHA256 (RFC 2104) over
both, keyed with a secret the two services share (``SYNC_CONTENT_TOKEN_SECRET`` on sync, the same value as
``INBOX_SYNC_CONTENT_SECRET`` on the inbox). A grant names one message and lives seconds, so a leaked one opens
nothing else and not for long. The signature is compared in constant time (:func:`hmac.compare_digest`).

Headers of the request: ``X-Laifaxin-Raw-Ref``, ``X-Laifaxin-Expires``, ``X-Laifaxin-Signature`` (hex).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER_REF = "x-laifaxin-raw-ref"
HEADER_EXPIRES = "x-laifaxin-expires"
HEADER_SIGNATURE = "x-laifaxin-signature"
MAX_TTL_S = 300
"""Longest a grant may live, seconds: sync refuses an expiry further in the future."""
MIN_SECRET_BYTES = 32


class GrantError(Exception):
    """The grant is missing, malformed, expired, too long-lived or wrongly signed; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mac(secret: str, raw_ref: str, expires: int) -> str:
    msg = f"laifaxin-raw-v1\n{raw_ref}\n{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def sign(secret: str, raw_ref: str, *, ttl_s: int = 60, now: float | None = None) -> dict[str, str]:
    """The request headers granting a read of ``raw_ref`` for ``ttl_s`` seconds.

    Raises:
        ValueError: empty secret, or ``ttl_s`` outside 1..:data:`MAX_TTL_S`.
    """
    if not secret:
        raise ValueError("no content secret configured")
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be 1..{MAX_TTL_S}")
    expires = int((time.time() if now is None else now) + ttl_s)
    return {
        HEADER_REF: raw_ref,
        HEADER_EXPIRES: str(expires),
        HEADER_SIGNATURE: _mac(secret, raw_ref, expires),
    }


def verify(secret: str, raw_ref: str | None, expires: str | None, signature: str | None) -> str:
    """The ``raw_ref`` a valid grant names.

    Raises:
        GrantError: a part is missing, the expiry is past or more than :data:`MAX_TTL_S` ahead, or the
            signature does not match (the reason never quotes the signature or the secret).
    """
    if not secret:
        raise GrantError("content reads are disabled (no secret configured)")
    if not raw_ref or not expires or not signature:
        raise GrantError("grant headers missing")
    if not expires.isdigit():
        raise GrantError("expiry is not a number")
    exp = int(expires)
    now = time.time()
    if exp < now:
        raise GrantError("grant expired")
    if exp > now + MAX_TTL_S + 5:
        raise GrantError("grant lives too long")
    if not hmac.compare_digest(_mac(secret, raw_ref, exp), signature.lower()):
        raise GrantError("bad signature")
    return raw_ref
