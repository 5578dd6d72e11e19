"""Opening verified TLS connections to IMAP servers with aioimaplib, over implicit TLS or STARTTLS.

aioimaplib 2.x speaks implicit TLS (``IMAP4_SSL``) but has no STARTTLS call; :func:`connect_imap` issues
``STARTTLS`` (RFC 3501 section 6.2.1) through the protocol's own command machinery and upgrades the same socket
with ``loop.start_tls``, then asks for CAPABILITY again, as the RFC requires (capabilities learned before TLS
must be discarded). Certificates are always verified: against the system roots, plus an extra CA file when one
is configured (local runs and tests trust the CA that deploy/local generates). Nothing here disables
verification.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import ssl
from typing import Any, Literal

import aioimaplib

from laifaxin_shared import sasl

Security = Literal["ssl", "starttls"]


class StartTlsUnsupportedError(ConnectionError):
    """The server did not advertise STARTTLS on a port configured for it (never fall back to plaintext)."""


Greeting = Literal["imap", "smtp", "pop3"]


def greeting_protocol(line: str | None) -> Greeting | None:
    """Which protocol a server's first line belongs to: ``* OK`` / ``* PREAUTH`` / ``* BYE`` is IMAP (RFC 3501
    7.1), ``220`` / ``421`` / ``554`` is SMTP (RFC 5321 4.2, 3.1), ``+OK`` / ``-ERR`` is POP3 (RFC 1939 section
    4: the greeting is a status indicator, and section 3: status indicators are ``+OK`` and ``-ERR``); None for
    anything else."""
    if not line:
        return None
    text = line.lstrip()
    if text.startswith(("* OK", "* PREAUTH", "* BYE")):
        return "imap"
    if text[:3] in ("220", "421", "554"):
        return "smtp"
    if text.startswith(("+OK", "-ERR")):
        return "pop3"
    return None


class NotImapGreetingError(ConnectionError):
    """The server's first line is not an IMAP greeting (``* OK``, ``* PREAUTH`` or ``* BYE``, RFC 3501 7.1):
    e.g. a POP3 server's ``+OK`` (RFC 1939 section 4) or an SMTP ``220`` banner on the port given as IMAP.
    ``greeting``: that line (at most 200 characters); ``protocol``: which one answered (:func:`greeting_protocol`)."""

    def __init__(self, greeting: str) -> None:
        super().__init__(f"not an IMAP greeting: {greeting!r}")
        self.greeting = greeting
        self.protocol = greeting_protocol(greeting)


class ImapConnectionClosedError(ConnectionError):
    """The server closed the connection while a command was running or before one was sent.

    ``bye``: the text of the server's untagged ``BYE`` (RFC 3501 7.1.5: "the server is about to close the
    connection"), e.g. Dovecot's ``IMAP session state is inconsistent, please relogin.`` after the selected
    folder was renamed by another session, or a provider's idle-session or maintenance notice; None when the
    connection dropped without one."""

    def __init__(self, bye: str | None) -> None:
        super().__init__(f"server closed the connection: {bye}" if bye else "server closed the connection")
        self.bye = bye


_EXISTS = re.compile(rb"^(?:\* )?(\d+) EXISTS")
_BYE = re.compile(rb"^(?:\* )?BYE ?(.*)", re.DOTALL)
_STATUS = re.compile(rb'^(?:\* )?STATUS (?P<name>"(?:[^"\\]|\\.)*"|[^ "]+) \(', re.IGNORECASE)


def status_mailbox(line: bytes | bytearray) -> str | None:
    """The mailbox an untagged ``STATUS`` line names (RFC 3501 7.2.4), as on the wire (modified UTF-7, quotes
    removed); None for any other line or a name sent as a literal."""
    match = _STATUS.match(bytes(line))
    if match is None:
        return None
    name = match.group("name").decode("ascii", "replace")
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def _instrument(client: aioimaplib.IMAP4) -> None:
    """Watch the connection for what aioimaplib drops.

    - Every untagged ``EXISTS`` (RFC 3501 7.3.1) is counted whatever command is running: aioimaplib hands
      untagged responses only to IDLE, NOOP or the command they name, and drops the rest; an ``EXISTS`` sent
      during a FETCH is then lost, and a client that goes back to IDLE waits for a notification the server has
      already given. :func:`exists_notifications` exposes the count.
    - An untagged ``STATUS`` (RFC 3501 7.2.4) that no STATUS command asked for, as NOTIFY (RFC 5465 5.2) sends
      when another folder changes, is noted (:func:`take_notified_folders`) and kept out of the running
      command's reply: aioimaplib appends every untagged line to the command under way, where a foreign
      ``UIDVALIDITY`` / ``UIDNEXT`` in an EXAMINE reply would be read as the examined folder's. Under IDLE it
      reaches the IDLE queue as usual (``wait_server_push``).
    - A closed connection fails the running commands at once with :class:`ImapConnectionClosedError` (carrying
      the server's ``BYE`` text), and any later command too. aioimaplib (2.0.3, iroco-co/aioimaplib#110) only
      logs the loss, so a command in flight, IDLE included, waited for its full timeout and then looked like a
      slow server.
    """
    protocol: Any = client.protocol
    untagged = protocol._untagged_response
    lost = protocol.connection_lost
    execute = protocol.execute
    protocol.laifaxin_exists_seen = 0
    protocol.laifaxin_notified = set()
    protocol.laifaxin_bye = None
    protocol.laifaxin_closed = None
    protocol.laifaxin_lost = asyncio.Event()

    def tracking(line: bytes) -> Any:
        if _EXISTS.match(line):
            protocol.laifaxin_exists_seen += 1
        elif bye := _BYE.match(line):
            protocol.laifaxin_bye = bye.group(1).decode("utf-8", "replace").strip()[:300] or None
        elif (name := status_mailbox(line)) is not None and not _status_expected(protocol):
            protocol.laifaxin_notified.add(name)
            return None  # as aioimaplib's own "ignored untagged response"
        return untagged(line)

    def connection_lost(exc: Exception | None) -> None:
        error = ImapConnectionClosedError(protocol.laifaxin_bye)
        protocol.laifaxin_closed = error
        protocol.laifaxin_lost.set()
        lost(exc)
        running = [protocol.pending_sync_command, *protocol.pending_async_commands.values()]
        for command in running:
            if command is not None and not command._event.is_set():
                command._exception = error  # Command.wait() raises it (aioimaplib's own timeout path)
                command.close(str(error).encode(), "NO")

    async def checked_execute(command: Any, *args: Any, **kwargs: Any) -> Any:
        if protocol.laifaxin_closed is not None:
            raise ImapConnectionClosedError(protocol.laifaxin_closed.bye)
        return await execute(command, *args, **kwargs)

    protocol._untagged_response = tracking
    protocol.connection_lost = connection_lost
    protocol.execute = checked_execute


def _status_expected(protocol: Any) -> bool:
    """Whether an untagged STATUS now belongs to the command under way: IDLE (it is queued for the caller) or
    a STATUS command (aioimaplib runs STATUS as an async command, with no sync command pending)."""
    pending = protocol.pending_sync_command
    if pending is not None:
        return bool(pending.name == "IDLE")
    return "STATUS" in protocol.pending_async_commands


def take_notified_folders(client: aioimaplib.IMAP4) -> set[str]:
    """The folders (wire names: :func:`status_mailbox`) that untagged ``STATUS`` responses named since the last
    call, outside IDLE and outside a STATUS command (NOTIFY events, RFC 5465 5.2; see :func:`_instrument`)."""
    protocol: Any = client.protocol
    names: set[str] = getattr(protocol, "laifaxin_notified", set())
    protocol.laifaxin_notified = set()
    return names


def exists_notifications(client: aioimaplib.IMAP4) -> int:
    """How many untagged ``EXISTS`` responses the server has sent on this connection (see
    :func:`_instrument`): compare before and after a command to learn whether mail arrived meanwhile."""
    return int(getattr(client.protocol, "laifaxin_exists_seen", 0))


def client_tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A client context that verifies server certificates and host names (TLS 1.2+).

    Args:
        ca_file: an extra PEM CA bundle to trust besides the system roots (for the local test CA).
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def connect_imap(
    host: str,
    port: int,
    security: Security,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
    keepalive: float | None = None,
) -> aioimaplib.IMAP4:
    """Connect, read the greeting, and secure the session; returns a client in the NONAUTH state.

    Args:
        host, port: the server.
        security: ``ssl`` for implicit TLS (RFC 8314), ``starttls`` for an upgrade on a plain port.
        ssl_context: a verifying context (default: :func:`client_tls_context`).
        timeout: seconds for connecting and for each command.
        keepalive: seconds of silence before TCP keepalive probes (:func:`set_keepalive`); None: the system's
            default (no probes on Linux). For long-lived connections (IDLE).

    Raises:
        OSError: refused, unreachable, or name resolution failed (``socket.gaierror``).
        ssl.SSLError: handshake failed; ``ssl.SSLCertVerificationError`` for an untrusted certificate.
        TimeoutError: no greeting within ``timeout``.
        NotImapGreetingError: the server greeted in another protocol (POP3, SMTP...); nothing was sent to it.
        ImapConnectionClosedError: the server refused the connection with a ``* BYE`` greeting, or closed it
            before greeting.
        StartTlsUnsupportedError: ``starttls`` was asked but the server does not offer it.
        aioimaplib.AioImapException: protocol errors.
    """
    ctx = ssl_context or client_tls_context()
    pending: list[aioimaplib.IMAP4] = []
    try:
        client = await _connect(host, port, security, ctx, timeout, pending)
        if keepalive is not None:
            set_keepalive(client, keepalive)
        return client
    except BaseException:
        # A failed or cancelled connect must not leave its socket open (aioimaplib keeps the transport).
        for client in pending:
            _abort(client)
        raise


def _abort(client: aioimaplib.IMAP4) -> None:
    task = client._client_task  # aioimaplib exposes no other handle on the connect task
    if not task.done():
        task.cancel()
    transport = client.protocol.transport if client.protocol is not None else None
    if transport is not None:
        transport.close()


async def _connect(
    host: str,
    port: int,
    security: Security,
    ctx: ssl.SSLContext,
    timeout: float,
    pending: list[aioimaplib.IMAP4],
) -> aioimaplib.IMAP4:
    if security == "ssl":
        client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
            host=host, port=port, timeout=timeout, ssl_context=ctx
        )
        pending.append(client)
        _instrument(client)
        await _greeting(client, timeout)
        return client
    client = aioimaplib.IMAP4(host=host, port=port, timeout=timeout)
    pending.append(client)
    _instrument(client)
    await _greeting(client, timeout)
    if not client.has_capability("STARTTLS"):
        await asyncio.wait_for(client.protocol.capability(), timeout)
    if not client.has_capability("STARTTLS"):
        await client.logout()
        raise StartTlsUnsupportedError(f"{host}:{port} does not offer STARTTLS")
    protocol = client.protocol
    # simple_command() refuses STARTTLS; the command table allows it in NONAUTH, so execute it directly.
    command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    response = await asyncio.wait_for(protocol.execute(command), timeout)
    if response.result != "OK":
        raise StartTlsUnsupportedError(f"{host}:{port} refused STARTTLS: {response.lines[-1:]!r}")
    loop = asyncio.get_running_loop()
    tls_transport = await asyncio.wait_for(
        loop.start_tls(protocol.transport, protocol, ctx, server_hostname=host), timeout
    )
    protocol.transport = tls_transport
    protocol.capabilities = set()
    await asyncio.wait_for(protocol.capability(), timeout)
    return client


async def _greeting(client: aioimaplib.IMAP4, timeout: float) -> None:
    """aioimaplib's ``wait_hello_from_server``, bounded by ``timeout`` for real, and refusing what is not IMAP.

    aioimaplib takes any first line containing ``OK`` for IMAP's greeting (POP3's ``+OK`` too) and then sends
    CAPABILITY in a task of its own that holds the protocol's state lock, with no timeout; the wait for the
    greeting needs that lock, so such a server kept the connect waiting forever, its own timeout included (a
    cancelled wait must take the lock again before it ends). So the first line is checked here before
    aioimaplib acts on it (nothing is sent to a server that is not IMAP), and when ``timeout`` runs out the
    greeting task is cancelled too. A ``* BYE`` greeting (RFC 3501 7.1.5: the server refuses the connection,
    e.g. too many connections from this address) and a close before any greeting end the wait at once.

    Must be called before the connection delivers its first line (right after the client is made).

    Raises:
        NotImapGreetingError: the first line is not ``* OK`` / ``* PREAUTH`` / ``* BYE`` (RFC 3501 7.1).
        ImapConnectionClosedError: a ``* BYE`` greeting (its text in ``bye``), or the server closed the
            connection before greeting.
        TimeoutError: no greeting and CAPABILITY answer within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    protocol = client.protocol
    refused: asyncio.Future[bytes] = loop.create_future()  # a foreign first line, or IMAP's BYE greeting
    welcome = protocol.welcome

    async def checked_welcome(line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if greeting_protocol(text) == "imap" and not _BYE.match(line):
            await welcome(line)
        elif not refused.done():
            refused.set_result(line)

    protocol.welcome = checked_welcome  # aioimaplib calls it with the first line

    def expire() -> None:
        for task in list(protocol.tasks):
            task.cancel()

    watchdog = loop.call_later(timeout, expire)
    hello = asyncio.ensure_future(client.wait_hello_from_server())
    closed = asyncio.ensure_future(protocol.laifaxin_lost.wait())
    try:
        await asyncio.wait({hello, refused, closed}, return_when=asyncio.FIRST_COMPLETED)
        if refused.done():
            line = refused.result()
            if bye := _BYE.match(line):
                raise ImapConnectionClosedError(bye.group(1).decode("utf-8", "replace").strip()[:300] or None)
            raise NotImapGreetingError(line.decode("utf-8", "replace").strip()[:200])
        if closed.done() and not hello.done():
            raise ImapConnectionClosedError(None)
        await hello
    finally:
        watchdog.cancel()
        closed.cancel()
        if not hello.done():
            hello.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await hello


aioimaplib.Commands.setdefault(  # RFC 5465 NOTIFY, which aioimaplib 2.0.3 does not know: see notify_set()
    "NOTIFY", aioimaplib.Cmd("NOTIFY", (aioimaplib.AUTH, aioimaplib.SELECTED), aioimaplib.Exec.is_sync)
)

NOTIFY_EVENTS = "(selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))"
"""What :func:`notify_set` asks for (RFC 5465 5.1, 5.2): ``EXISTS`` / ``EXPUNGE`` for the selected folder, as
without NOTIFY, and an untagged ``STATUS`` (``MESSAGES``, ``UIDNEXT``, ``UIDVALIDITY``) when mail arrives in or
leaves any other personal folder."""


async def notify_set(client: aioimaplib.IMAP4, timeout: float) -> aioimaplib.Response:
    """``NOTIFY SET`` :data:`NOTIFY_EVENTS` (RFC 5465 3.1) on an authenticated connection whose server
    advertises ``NOTIFY``: then other folders' changes are pushed as untagged ``STATUS`` during IDLE (and counted
    by :func:`take_notified_folders` outside it) instead of being found by polling.

    aioimaplib has no NOTIFY command; this module adds it to aioimaplib's command table once, at import (valid
    when authenticated or selected, run like other sync commands), and it is executed through the protocol, as
    STARTTLS is above.

    Returns the tagged reply (``NO`` / ``BAD``: the server refused; nothing changed on the connection).

    Raises:
        TimeoutError, aioimaplib.AioImapException, ImapConnectionClosedError: the connection failed.
    """
    protocol = client.protocol
    command = aioimaplib.Command("NOTIFY", protocol.new_tag(), "SET", NOTIFY_EVENTS, loop=protocol.loop)
    response: aioimaplib.Response = await asyncio.wait_for(protocol.execute(command), timeout)
    return response


KEEPALIVE_PROBES = 4
"""Unanswered TCP keepalive probes before the kernel declares the peer dead."""


def set_keepalive(client: aioimaplib.IMAP4, idle_s: float) -> None:
    """Turn on TCP keepalive (``SO_KEEPALIVE``; Linux ``TCP_KEEPIDLE`` = ``idle_s``, ``TCP_KEEPINTVL`` =
    ``idle_s`` / 4, ``TCP_KEEPCNT`` = :data:`KEEPALIVE_PROBES`) on the client's socket.

    An IMAP connection in IDLE may carry nothing for many minutes (RFC 2177 lets it last 29). A NAT or firewall
    on the way forgets such a flow (AWS NAT gateways after 350 s of silence) and the server's ``EXISTS`` never
    arrives, while nothing tells the client. With probes every ``idle_s`` of silence the flow stays known, and
    a dead peer closes the socket after about ``idle_s`` * 2 seconds: :func:`connect_imap`'s clients then fail
    the running command, IDLE included, with :class:`ImapConnectionClosedError`, and the caller reconnects.
    Options the platform lacks are skipped.
    """
    transport = client.protocol.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(1, int(idle_s))
    for name, value in (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", max(1, idle // 4)),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def is_tls(client: aioimaplib.IMAP4) -> bool:
    """True when the client's transport is encrypted."""
    transport = client.protocol.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


_AUTH_CONTINUATION = "laifaxin_sasl"


def _sasl_continuation(protocol: Any) -> Any:
    """Wrap aioimaplib's continuation handler so AUTHENTICATE never waits for its timeout.

    aioimaplib 2.0.3 appends a ``+`` continuation during AUTHENTICATE to the pending command and never answers
    it; a server that refuses a token sends its error as such a continuation (RFC 7628 3.2.2, Google's and
    Microsoft's XOAUTH2) and waits for the client's reply, so the login hung until the timeout. Here an empty
    ``+`` (no SASL-IR) gets the initial response, and an error challenge is kept on the command and answered
    with :func:`laifaxin_shared.sasl.error_ack`, after which the server sends its tagged ``NO``.
    """
    original = protocol._continuation

    def continuation(line: bytes) -> None:
        command = protocol.pending_sync_command
        state = getattr(command, _AUTH_CONTINUATION, None) if command is not None else None
        if state is None:
            original(line)
            return
        payload = line[1:].strip()
        if not payload and not state["sent"]:
            state["sent"] = True
            protocol.transport.write(state["initial"].encode("ascii") + b"\r\n")
            return
        state["challenge"] = payload.decode("ascii", "replace")
        protocol.transport.write(base64.b64encode(sasl.error_ack(state["mechanism"])) + b"\r\n")

    return continuation


async def authenticate_oauth(
    client: aioimaplib.IMAP4,
    user: str,
    token: str,
    *,
    host: str,
    port: int,
    mechanism: sasl.Mechanism | None = None,
    timeout: float = 10.0,
) -> aioimaplib.Response:
    """``AUTHENTICATE`` with an OAuth 2.0 access token (RFC 3501 6.2.2) on a client from :func:`connect_imap`.

    The mechanism is ``mechanism`` or the first of :data:`laifaxin_shared.sasl.MECHANISM_PREFERENCE` that the
    server advertises (``AUTH=XOAUTH2`` / ``AUTH=OAUTHBEARER``). The initial response goes on the command line
    when the server offers ``SASL-IR`` (RFC 4959), else after the server's empty ``+``. A refusal never hangs:
    see :func:`_sasl_continuation`. The token is scrubbed from aioimaplib's debug log.

    Args:
        client: connected, not yet authenticated.
        user: the mailbox address (XOAUTH2 ``user=``, OAUTHBEARER ``a=``).
        token: the access token.
        host, port: the server (OAUTHBEARER's ``host`` / ``port`` keys).
        timeout: seconds for the whole exchange.

    Returns:
        the tagged ``OK`` response; the client is then in the AUTH state.

    Raises:
        sasl.OAuthMechanismUnsupportedError: the server offers neither mechanism.
        sasl.OAuthAuthenticationError: ``NO`` / ``BAD``; ``status`` from the server's JSON error challenge.
        TimeoutError, ImapConnectionClosedError, aioimaplib.AioImapException: the connection failed.
    """
    protocol: Any = client.protocol
    offered = {c[5:].upper() for c in protocol.capabilities if c.upper().startswith("AUTH=")}
    mech: sasl.Mechanism = mechanism or sasl.choose_mechanism(offered)
    if mechanism is not None and mechanism not in offered:
        raise sasl.OAuthMechanismUnsupportedError(sorted(offered))
    initial = sasl.initial_response(mech, user, token, host, port)
    if not getattr(protocol, "laifaxin_sasl_wrapped", False):
        protocol._continuation = _sasl_continuation(protocol)
        protocol.laifaxin_sasl_wrapped = True
    sasl_ir = "SASL-IR" in {c.upper() for c in protocol.capabilities}
    args = (mech, initial) if sasl_ir else (mech,)
    command = aioimaplib.Command("AUTHENTICATE", protocol.new_tag(), *args, loop=protocol.loop)
    state: dict[str, Any] = {"mechanism": mech, "initial": initial, "sent": sasl_ir, "challenge": None}
    setattr(command, _AUTH_CONTINUATION, state)

    async def run() -> aioimaplib.Response:
        async with protocol.state_condition:  # as aioimaplib's own login (its change_state decorator)
            response: aioimaplib.Response = await protocol.execute(command, scrub=initial)
            if response.result == "OK":
                protocol.state = aioimaplib.AUTH
                for line in response.lines:  # RFC 3501 7.1: a CAPABILITY response code may follow login
                    text = bytes(line).decode("utf-8", "replace")
                    if "CAPABILITY" in text:
                        caps = text.split("CAPABILITY", 1)[1].strip(" ]").split()
                        protocol.capabilities = protocol.capabilities.union(caps)
            protocol.state_condition.notify_all()
            return response

    response = await asyncio.wait_for(run(), timeout)
    if response.result != "OK":
        text = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace").strip()
        details = sasl.parse_error_challenge(state["challenge"] or "")
        status = details.get("status")
        raise sasl.OAuthAuthenticationError(
            mech, f"{response.result} {text}".strip(), str(status) if status is not None else None
        )
    return response
