"""A local SMTP submission server for tests and demos (aiosmtpd).

Listens on implicit TLS (RFC 8314, "submissions") and on a plain port that requires STARTTLS (RFC 3207) before
AUTH (RFC 4954, PLAIN and LOGIN). Accounts are the ones in Dovecot's passwd-file, as at a real provider where
one app password serves IMAP and SMTP; the file is re-read on every AUTH, so tests can add users while it runs.
Every accepted message is written to ``<state>/smtp/maildrop/<n>.eml`` and indexed as one JSON line in
``<state>/smtp/received.jsonl`` (envelope, authenticated user, client address, size, file), so tests can read back what arrived.
Passwords are never written anywhere.

Run: ``python deploy/local/smtp_server.py --state DIR --tls-port 10465 --starttls-port 10587``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import itertools
import json
import signal
import ssl
import time
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


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


class RecordingHandler:
    """Stores each message and appends its envelope to the JSONL index."""

    def __init__(self, state: Path) -> None:
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


async def serve(state: Path, host: str, tls_port: int, starttls_port: int) -> None:
    handler = RecordingHandler(state)
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
    args = parser.parse_args()
    asyncio.run(serve(args.state, args.host, args.tls_port, args.starttls_port))


if __name__ == "__main__":
    main()
