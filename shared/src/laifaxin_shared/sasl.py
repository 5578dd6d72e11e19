"""SASL for OAuth 2.0 access tokens: XOAUTH2 (Google, Microsoft) and OAUTHBEARER (RFC 7628), for IMAP and SMTP.

- **XOAUTH2** initial client response: ``user=<address>^Aauth=Bearer <token>^A^A`` (``^A`` = byte 0x01),
  base64 (RFC 4648) on the wire. Source: Google, "OAuth 2.0 Mechanism" (developers.google.com/workspace/gmail/
  imap/xoauth2-protocol); Microsoft, "Authenticate an IMAP, POP or SMTP connection using OAuth" (same format).
- **OAUTHBEARER** initial client response (RFC 7628 section 3.1): the GS2 header ``n,a=<address>,`` (``,``
  and ``=`` in the address escaped as ``=2C`` / ``=3D``, RFC 5801 section 4), then ``^A``-separated
  ``host=``, ``port=`` and ``auth=Bearer <token>``, ending with ``^A^A``.
- **Failure**: the server answers with a challenge carrying a JSON error (``{"status": "401", "schemes":
  "bearer", "scope": ...}``), and the client must answer it (XOAUTH2: an empty response; OAUTHBEARER: a single
  ``^A``, RFC 7628 section 3.2.3) before the server sends its final ``NO`` (IMAP) or ``535`` (SMTP).

:func:`smtp_authenticate` wraps aiosmtplib's ``auth_xoauth2`` (which answers the error challenge itself);
IMAP's AUTHENTICATE is in :func:`laifaxin_shared.imap.authenticate_oauth`. Tokens are never logged here.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal

Mechanism = Literal["XOAUTH2", "OAUTHBEARER"]

MECHANISM_PREFERENCE: tuple[Mechanism, ...] = ("XOAUTH2", "OAUTHBEARER")
"""Order in which a mechanism the server offers is chosen: XOAUTH2 first, the one Microsoft documents (its
servers offer no other) and Google accepts; OAUTHBEARER (RFC 7628) where only it is offered."""


class OAuthAuthenticationError(Exception):
    """The server refused the access token.

    ``status``: the ``status`` field of the server's JSON error challenge (``"401"`` at Dovecot and Google for
    an invalid or expired token, ``"invalid_request"`` at Gmail for OAUTHBEARER...), None when the server
    answered ``NO`` / ``535`` without a challenge; ``server_text``: the server's final reply text (at most 300
    characters; it never contains the token); ``mechanism``: the SASL mechanism used.
    """

    def __init__(self, mechanism: str, server_text: str, status: str | None = None) -> None:
        super().__init__(f"{mechanism} refused: {server_text}" + (f" (status {status})" if status else ""))
        self.mechanism = mechanism
        self.server_text = server_text[:300]
        self.status = status


class OAuthMechanismUnsupportedError(Exception):
    """The server offers neither XOAUTH2 nor OAUTHBEARER (``offered``: the ``AUTH=`` / ``AUTH`` mechanisms it
    does list, upper case)."""

    def __init__(self, offered: list[str]) -> None:
        super().__init__(f"server offers no OAuth SASL mechanism (offers: {', '.join(offered) or 'none'})")
        self.offered = offered


def xoauth2_response(user: str, token: str) -> bytes:
    """The raw XOAUTH2 initial client response (not yet base64): ``user=...^Aauth=Bearer ...^A^A``.

    Raises:
        ValueError: ``user`` or ``token`` contains a control character (0x01 would split the fields).
    """
    _check(user, token)
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def _gs2_escape(value: str) -> str:
    # RFC 5801 section 4: saslname = "=2C" for "," and "=3D" for "=".
    return value.replace("=", "=3D").replace(",", "=2C")


def oauthbearer_response(user: str, token: str, host: str, port: int) -> bytes:
    """The raw OAUTHBEARER initial client response (RFC 7628 section 3.1), not yet base64.

    ``host`` / ``port``: the server the client connected to (RFC 7628 section 3.1 ``host`` and ``port`` keys).

    Raises:
        ValueError: a control character in ``user`` or ``token``.
    """
    _check(user, token)
    return f"n,a={_gs2_escape(user)},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def _check(user: str, token: str) -> None:
    if any(ord(c) < 0x20 for c in user + token):
        raise ValueError("user and token may not contain control characters")


def initial_response(mechanism: Mechanism, user: str, token: str, host: str, port: int) -> str:
    """The base64 initial response for ``mechanism`` (as sent after ``AUTHENTICATE <mech>`` / ``AUTH <mech>``)."""
    raw = (
        xoauth2_response(user, token)
        if mechanism == "XOAUTH2"
        else oauthbearer_response(user, token, host, port)
    )
    return base64.b64encode(raw).decode("ascii")


def error_ack(mechanism: str) -> bytes:
    """What the client sends back to an error challenge, unencoded: nothing for XOAUTH2 (Google's and
    Microsoft's documents; Dovecot's ``mech-oauth2.c``), a single ``^A`` for OAUTHBEARER (RFC 7628 3.2.3)."""
    return b"\x01" if mechanism == "OAUTHBEARER" else b""


def parse_error_challenge(challenge: str | bytes) -> dict[str, Any]:
    """Decode a server's error challenge (base64 JSON, RFC 7628 section 3.2.2); ``{}`` when it is not one."""
    data = challenge.encode() if isinstance(challenge, str) else challenge
    data = data.strip()
    try:
        decoded = json.loads(base64.b64decode(data, validate=True)) if data else {}
    except (binascii.Error, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def choose_mechanism(offered: set[str]) -> Mechanism:
    """The first of :data:`MECHANISM_PREFERENCE` in ``offered`` (upper-case mechanism names).

    Raises:
        OAuthMechanismUnsupportedError: neither is offered.
    """
    for mech in MECHANISM_PREFERENCE:
        if mech in offered:
            return mech
    raise OAuthMechanismUnsupportedError(sorted(offered))


async def smtp_authenticate(client: Any, user: str, token: str) -> None:
    """AUTH XOAUTH2 on a connected aiosmtplib ``SMTP`` client (after STARTTLS, when used; EHLO is sent first
    when the client has not sent it yet).

    aiosmtplib (5.1+) ``auth_xoauth2`` sends the initial response, acknowledges a ``334`` error challenge with
    an empty line and then reads the final reply. No OAUTHBEARER here: aiosmtplib does not implement it, and
    Microsoft's and Google's SMTP servers both offer XOAUTH2.

    Raises:
        OAuthMechanismUnsupportedError: the server's EHLO lists no ``AUTH XOAUTH2``.
        OAuthAuthenticationError: the server refused the token (``535`` and the like; ``status`` is None, as
            aiosmtplib does not hand back the challenge).
        aiosmtplib.SMTPException, OSError, TimeoutError: the connection failed.
    """
    import aiosmtplib

    if getattr(client, "last_ehlo_response", None) is None:
        await client.ehlo()
    offered = {m.upper() for m in getattr(client, "server_auth_methods", [])}
    if "XOAUTH2" not in offered:
        raise OAuthMechanismUnsupportedError(sorted(offered))
    try:
        await client.auth_xoauth2(user, token)
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise OAuthAuthenticationError("XOAUTH2", f"{exc.code} {exc.message}") from None
