"""Small loopback servers for the verification cases the real Dovecot cannot produce.

- :class:`ImapResponder`: an IMAP server over implicit TLS that replays provider-specific replies (163's
  ``NO SELECT Unsafe Login`` unless ``ID`` was sent, NetEase Enterprise ``ERR.LOGIN.IPDENY`` and
  ``ERR.LOGIN.DOMAINNOTEXIST``, a server that accepts only the local part as username). It speaks just
  enough of RFC 3501 for a client's greeting, CAPABILITY, ID, LOGIN, SELECT and LOGOUT, and records what
  the client sent (commands and usernames, never passwords).
- :class:`SilentServer`: a listening socket that accepts and never says anything (the timeout case).

Texts replayed come from providers.md §3 (offlineimap3#71, LF 204, NetEase error-code map).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')

LoginRule = Callable[[str, str], str | None]
"""(username, password) -> None to accept, or the text after the tag for a refusal (``NO ...``)."""


def accept(username: str, password: str) -> LoginRule:
    """Accept exactly this username and password; refuse others like Dovecot does."""

    def rule(user: str, pw: str) -> str | None:
        if user == username and pw == password:
            return None
        return "NO [AUTHENTICATIONFAILED] Authentication failed."

    return rule


def refuse(text: str) -> LoginRule:
    """Refuse every login with ``text`` (e.g. ``NO ERR.LOGIN.IPDENY``)."""
    return lambda _user, _pw: text


@dataclass
class ImapResponder:
    """A scripted IMAP server on 127.0.0.1 over implicit TLS.

    Args:
        cert_file, key_file: the server certificate (the local CA's ``server.pem`` to be trusted, or
            ``untrusted.pem`` for the certificate_invalid case).
        login: decides each LOGIN.
        capabilities: advertised in the greeting and for CAPABILITY.
        select_needs_id: refuse SELECT with 163's "Unsafe Login" text unless the session sent ID.
        uidvalidity: the UIDVALIDITY SELECT/EXAMINE answers (text: a broken server's ``0`` or 5,000 digits).
    """

    cert_file: str
    key_file: str
    login: LoginRule
    capabilities: str = "IMAP4rev1 AUTH=PLAIN"
    select_needs_id: bool = False
    uidvalidity: str = "1"
    commands: list[str] = field(default_factory=list)
    usernames: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> ImapResponder:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    async def __aenter__(self) -> ImapResponder:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        id_sent = False
        authenticated = False

        def send(*lines: str) -> None:
            writer.write("".join(line + "\r\n" for line in lines).encode())

        try:
            send(f"* OK [CAPABILITY {self.capabilities}] responder ready")
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                tokens = [m.group(1) if m.group(1) is not None else m.group(2) for m in _TOKEN.finditer(text)]
                if len(tokens) < 2:
                    send("* BAD empty command")
                    continue
                tag, command, args = tokens[0], tokens[1].upper(), tokens[2:]
                self.commands.append(command)
                if command == "CAPABILITY":
                    send(f"* CAPABILITY {self.capabilities}", f"{tag} OK CAPABILITY completed")
                elif command == "ID":
                    id_sent = True
                    send('* ID ("name" "responder")', f"{tag} OK ID completed")
                elif command == "LOGIN" and len(args) >= 2:
                    self.usernames.append(args[0])
                    refusal = self.login(args[0], args[1])
                    if refusal is None:
                        authenticated = True
                        send(f"{tag} OK LOGIN completed")
                    else:
                        send(f"{tag} {refusal}")
                elif command in ("SELECT", "EXAMINE"):
                    if not authenticated:
                        send(f"{tag} BAD not authenticated")
                    elif self.select_needs_id and not id_sent:
                        send(f"{tag} NO {command} Unsafe Login. Please contact kefu@188.com for help")
                    else:
                        send(
                            "* 0 EXISTS",
                            f"* OK [UIDVALIDITY {self.uidvalidity}] UIDs valid",
                            f"{tag} OK [READ-WRITE] done",
                        )
                elif command == "LOGOUT":
                    send("* BYE logging out", f"{tag} OK LOGOUT completed")
                    await writer.drain()
                    break
                elif command == "NOOP":
                    send(f"{tag} OK NOOP completed")
                else:
                    send(f"{tag} BAD unknown command")
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            return  # the client went away mid-session (tests close connections abruptly)
        finally:
            writer.close()


@dataclass
class SilentServer:
    """Accepts connections on 127.0.0.1 and never sends a byte (a black-holed port, for timeouts)."""

    port: int = 0
    _server: asyncio.Server | None = None
    _held: list[asyncio.StreamWriter] = field(default_factory=list)

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._held:
            writer.close()
        if self._server is not None:
            self._server.close()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up
