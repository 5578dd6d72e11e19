"""A local SMTP submission server for tests and demos (aiosmtpd).

Listens on implicit TLS (RFC 8314, "submissions") and on a plain port that requires STARTTLS (RFC 3207) before
AUTH (RFC 4954, PLAIN and LOGIN). Accounts are the ones in Dovecot's passwd-file, as at a real provider where
one app password serves IMAP and SMTP; the file is re-read on every AUTH, so tests can add users while it runs.
With ``--introspection-url`` it also offers AUTH XOAUTH2 (Google's and Microsoft's SASL mechanism for OAuth 2.0
access tokens): the token is checked at the local Ory Hydra's introspection endpoint (RFC 7662), and must be
active and issued to the user named in ``user=`` (the token's ``sub``), as Dovecot checks it for IMAP. A refused
token gets the error challenge ``334 <base64 JSON>`` first, then ``535`` after the client's empty reply.
Every accepted message is written to ``<state>/smtp/maildrop/<n>.eml`` and indexed as one JSON line in
``<state>/smtp/received.jsonl`` (envelope, authenticated user, client address, size, file), so tests can read back what arrived.
Passwords are never written anywhere.

Run: ``python deploy/local/smtp_server.py --state DIR --tls-port 10465 --starttls-port 10587``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hmac
import itertools
import json
import signal
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session


def load_users(passwd_file: Path) -> dict[str, str]:
    """Parse a Dovecot passwd-file with ``{PLAIN}`` passwords: ``user:{PLAIN}secret::::::`` per line."""
    users: dict[str, str] = {}
    if not passwd_file.exists():
        return users
    for line in passwd_file.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        user, _, rest = line.partition(":")
        secret = rest.split(":", 1)[0]
        if secret.startswith("{PLAIN}"):
            users[user] = secret[len("{PLAIN}") :]
    return users


class PasswdFileAuthenticator:
    """aiosmtpd authenticator that checks LOGIN/PLAIN credentials against the passwd-file."""

    def __init__(self, passwd_file: Path) -> None:
        self.passwd_file = passwd_file

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        expected = load_users(self.passwd_file).get(user)
        given = auth_data.password.decode("utf-8", "replace")
        if expected is not None and hmac.compare_digest(expected.encode(), given.encode()):
            return AuthResult(success=True, auth_data=user)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Authentication credentials invalid"
        )


def parse_xoauth2(blob: bytes) -> tuple[str, str] | None:
    """``user=<address>^Aauth=Bearer <token>^A^A`` -> (address, token); None when malformed."""
    fields = dict(part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01") if "=" in part)
    user, auth = fields.get("user", ""), fields.get("auth", "")
    if not user or not auth.lower().startswith("bearer "):
        return None
    return user, auth[7:].strip()


OAUTH_ERROR = base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"mail"}').decode()


class RecordingHandler:
    """Stores each message and appends its envelope to the JSONL index; offers AUTH XOAUTH2 when it has an
    introspection URL."""

    introspection_url: str | None = None

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if not self.introspection_url:
            await server.push("504 5.5.4 Unrecognized authentication type")
            return AuthResult(success=False, handled=True)
        if len(args) > 1:
            raw = args[1].encode()
        else:
            reply = await server.challenge_auth("")
            if reply is MISSING:
                return AuthResult(success=False, handled=True)
            raw = base64.b64encode(reply)  # type: ignore[arg-type]
        try:
            parsed = parse_xoauth2(base64.b64decode(raw, validate=True))
        except binascii.Error:
            parsed = None
        if parsed is None:
            await server.push("501 5.5.2 Malformed XOAUTH2 response")
            return AuthResult(success=False, handled=True)
        user, token = parsed
        if await self._token_user(token) == user.lower():
            return AuthResult(success=True, auth_data=user)
        # Google's and Microsoft's order: an error challenge, the client's empty reply, then 535.
        await server.challenge_auth(OAUTH_ERROR, encode_to_b64=False)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Authentication credentials invalid"
        )

    async def _token_user(self, token: str) -> str | None:
        """The ``sub`` of an active token, lower-cased; None when inactive or the check failed."""
        assert self.introspection_url is not None
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                resp = await client.post(self.introspection_url, data={"token": token})
            data = resp.json() if resp.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return None
        if data.get("active") is not True:
            return None
        return str(data.get("sub") or "").lower() or None

    def __init__(self, state: Path, introspection_url: str | None = None) -> None:
        self.introspection_url = introspection_url
        self.drop = state / "smtp" / "maildrop"
        self.drop.mkdir(parents=True, exist_ok=True)
        self.index = state / "smtp" / "received.jsonl"
        self._seq = itertools.count(len(list(self.drop.glob("*.eml"))) + 1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        n = next(self._seq)
        content = envelope.original_content or b""
        path = self.drop / f"{n:08d}.eml"
        path.write_bytes(content)
        record = {
            "seq": n,
            "received_at": time.time(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": session.auth_data if isinstance(session.auth_data, str) else None,
            "peer": list(session.peer)
            if isinstance(session.peer, tuple)
            else session.peer,  # one per connection
            "tls": server.transport is not None and server.transport.get_extra_info("ssl_object") is not None,
            "size": len(content),
            "file": str(path),
        }
        with self.index.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        return f"250 2.0.0 OK queued as {n:08d}"


def tls_context(state: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(state / "tls" / "server.pem", state / "tls" / "server.key")
    return ctx


async def serve(
    state: Path, host: str, tls_port: int, starttls_port: int, introspection_url: str | None = None
) -> None:
    handler = RecordingHandler(state, introspection_url)
    auth = PasswdFileAuthenticator(state / "dovecot" / "users")
    ctx = tls_context(state)
    loop = asyncio.get_running_loop()

    def implicit_tls() -> SMTP:
        # The TLS layer is the socket's own here; aiosmtpd still needs the context to know AUTH is safe.
        return SMTP(
            handler,
            hostname="smtp.laifaxin.test",
            authenticator=auth,
            auth_required=True,
            auth_require_tls=False,
            ident="Laifaxin local SMTP",
        )

    def starttls() -> SMTP:
        return SMTP(
            handler,
            hostname="smtp.laifaxin.test",
            authenticator=auth,
            auth_required=True,
            auth_require_tls=True,
            require_starttls=True,
            tls_context=ctx,
            ident="Laifaxin local SMTP",
        )

    servers = [
        await loop.create_server(implicit_tls, host, tls_port, ssl=ctx),
        await loop.create_server(starttls, host, starttls_port),
    ]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp listening on {host}:{tls_port} (TLS) and {host}:{starttls_port} (STARTTLS)", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
        await s.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-port", type=int, required=True)
    parser.add_argument("--starttls-port", type=int, required=True)
    parser.add_argument(
        "--introspection-url", help="OAuth 2.0 token introspection (RFC 7662) for AUTH XOAUTH2"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.state, args.host, args.tls_port, args.starttls_port, args.introspection_url))


if __name__ == "__main__":
    main()
