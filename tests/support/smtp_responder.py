"""A loopback SMTP submission server (aiosmtpd, implicit TLS with the local test CA's certificate) that answers
what a test tells it to: a provider's reply at AUTH, MAIL, RCPT or DATA, a dropped connection after the message
data, or 250. For the send-time replies the shared local SMTP server never gives (quota, spam, frequency...).

Runs in the test's event loop on a free port; use as ``async with SmtpResponder(cert, key) as server``.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Behaviour:
    """What the server answers. ``None`` = accept. Texts are full reply lines (``"554 MI:STC ..."``); a
    multi-line reply is written with ``\\n`` between its lines."""

    auth: str | None = None
    mail: str | None = None
    rcpt: str | None = None
    data: str | None = None
    drop_after_data: bool = False
    times: int | None = None
    """Answer the configured failure this many times, then accept (None: always)."""


@dataclass
class Recorded:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


class _Handler:
    def __init__(self, owner: SmtpResponder) -> None:
        self.owner = owner

    def _failure(self, reply: str | None) -> str | None:
        behaviour = self.owner.behaviour
        if reply is None:
            return None
        if behaviour.times is not None:
            if behaviour.times <= 0:
                return None
            behaviour.times -= 1
        return reply.replace("\r\n", "\n").replace("\n", "\r\n")

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        failure = self._failure(self.owner.behaviour.mail)
        if failure:
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        failure = self._failure(self.owner.behaviour.rcpt)
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        behaviour = self.owner.behaviour
        if behaviour.drop_after_data:
            self.owner.dropped += 1
            assert server.transport is not None
            server.transport.abort()
            return "250 never seen"
        failure = self._failure(behaviour.data)
        if failure:
            return failure
        self.owner.accepted.append(
            Recorded(str(envelope.mail_from), list(envelope.rcpt_tos), envelope.original_content or b"")
        )
        n = len(self.owner.accepted)
        return f"250 2.0.0 OK <MSG{n:04d}.responder@prod.outlook.example> [Hostname=responder]"


@dataclass
class SmtpResponder:
    certfile: str
    keyfile: str
    behaviour: Behaviour = field(default_factory=Behaviour)
    accepted: list[Recorded] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    dropped: int = 0
    port: int = 0
    _server: Any = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            self.logins.append(data.login.decode())
        if self.behaviour.auth is not None:
            return AuthResult(success=False, handled=False, message=self.behaviour.auth)
        return AuthResult(success=True)

    async def __aenter__(self) -> SmtpResponder:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        handler = _Handler(self)

        def factory() -> SMTP:
            return SMTP(
                handler,
                hostname="responder.laifaxin.test",
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=False,
                ident="Laifaxin test responder",
            )

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()
