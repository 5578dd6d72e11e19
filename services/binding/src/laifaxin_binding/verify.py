"""Verify a mailbox's IMAP and SMTP settings by logging in, and explain every failure.

What one verification does (issue 3 "Verification"; providers.md §5.3-§5.5):

- POP3 is refused before any connection: the ``incoming_protocol`` field
  (:func:`~laifaxin_shared.providers.errors.refuse_pop3`), and a POP3 server typed into the IMAP field, known by
  its host name or port (:func:`pop3_server_error`). A server that greets with POP3's ``+OK`` (RFC 1939 §4) is
  refused as ``pop3_unsupported`` too, at its first line and before anything is sent
  (:class:`~laifaxin_shared.imap.NotImapGreetingError`).
- Every server host is resolved first and refused when it points at a private, loopback, link-local or
  metadata address, unless the operator allowlist names it (:class:`HostGuard`).
- IMAP and SMTP run **concurrently**, each under one time budget:

  - IMAP (RFC 3501/9051): connect over implicit TLS (RFC 8314) or STARTTLS (RFC 3501 §6.2.1) with
    :func:`~laifaxin_shared.imap.connect_imap` (a POP3 ``+OK`` or SMTP ``220`` greeting is refused there), ``LOGIN``, then ``ID`` (RFC 2971) when the server advertises it
    or the catalog says the provider needs it (NetEase refuses ``SELECT`` with "Unsafe Login" otherwise), then
    ``SELECT INBOX`` (163 fails only there), ``LOGOUT``.
  - SMTP submission (RFC 6409): aiosmtplib connects over implicit TLS or STARTTLS (RFC 3207), ``EHLO``,
    ``AUTH`` (RFC 4954), ``QUIT``. No mail is sent.

- The username forms the catalog allows are tried in order on one connection (QQ, iCloud IMAP: full address,
  then the local part), only after ``auth_failed``.
- The catalog's backup servers are tried in order when the preferred one says so (NetEase Enterprise
  ``ERR.LOGIN.DOMAINNOTEXIST``) or cannot be reached (refused, timeout, DNS).
- App passwords shown in groups (Gmail's 16 letters in 4 groups; freescout#5401) lose their inner spaces; any
  other password, a login password or an authorization code, keeps them (only its ends are trimmed).
- A per-host semaphore bounds simultaneous connections to one server (Dovecot allows about 10 per user and
  IP, Gmail 15 per account), so 100 verifications at once never open 100 connections to one host.

Every failure becomes a :class:`~laifaxin_shared.providers.errors.MailError` of the shared taxonomy (the same
codes sync reports), with the password redacted from any server text. When a connection only times out or
returns something that is not the expected protocol, a short probe tells ``tls_mismatch`` (implicit TLS
spoken on a STARTTLS port or the reverse), ``wrong_port`` (an SMTP banner on the IMAP port or the reverse) and
``pop3_unsupported`` (a POP3 greeting on the IMAP port) apart from a plain ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import re
import socket
import ssl
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

import aioimaplib
import aiosmtplib

from laifaxin_shared import sasl
from laifaxin_shared.imap import (
    NotImapGreetingError,
    StartTlsUnsupportedError,
    authenticate_oauth,
    client_tls_context,
    connect_imap,
    greeting_protocol,
)
from laifaxin_shared.logging import get_logger
from laifaxin_shared.netguard import HostAllowlist, Network
from laifaxin_shared.providers.catalog import find_provider, split_email
from laifaxin_shared.providers.errors import (
    ErrorCode,
    MailError,
    MailServerError,
    decode_reply,
    explain,
    explain_exception,
    make_error,
    redact,
    refuse_pop3,
)
from laifaxin_shared.providers.models import Protocol, Provider, QuirkCode, Security, Text

log = get_logger(__name__)


BACKUP_TRIGGERS = frozenset(
    {
        ErrorCode.BACKUP_SERVER_NEEDED,
        ErrorCode.CONNECTION_REFUSED,
        ErrorCode.TIMEOUT,
        ErrorCode.DNS_FAILED,
        ErrorCode.SERVER_UNAVAILABLE,
    }
)
"""Errors after which the next server of the pair is tried (LF 204: "switch to backup if connection fails")."""

MAX_TRACKED_HOSTS = 10_000
"""``peak_connections`` is reset when it tracks more hosts than this."""

IMAP_ID = {"name": "Laifaxin", "version": "1.0", "vendor": "Laifaxin"}
"""What we tell servers in the IMAP ``ID`` command (RFC 2971 field names)."""

POP3_PORTS = frozenset({110, 995})
"""POP3's ports: 110 (RFC 1939 §3) and 995, POP3 over implicit TLS (``pop3s``, RFC 8314)."""

_POP3_HOST_LABEL = re.compile(r"^(?:hw)?pop3?s?$")
"""First labels of POP3 host names: ``pop``, ``pop3``, ``pops``, ``pop3s`` (``pop.163.com``, ``pop.qq.com``,
``pop.gmail.com``) and Tencent Exmail's overseas ``hwpop``."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One server: host name, TCP port and ``ssl`` (implicit TLS) or ``starttls``."""

    host: str
    port: int
    security: Security

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.security.value}"


@dataclass(frozen=True)
class VerifyRequest:
    """What to verify. Build it with :meth:`build` so catalog defaults, backups and username forms apply.

    Attributes:
        email: the mailbox address.
        password: app password / authorization code, already normalised (see :func:`normalise_password`).
        imap, smtp: servers to try in order (preferred first, then backups); at least one each.
        imap_usernames, smtp_usernames: login names to try in order after ``auth_failed``.
        provider_id: catalog id, or None for a custom server (adds the provider's fix texts to errors).
        imap_id_required: send ``ID`` even when the server does not advertise it.
        auth: ``basic`` (LOGIN / AUTH PLAIN-LOGIN), or ``oauth2``: ``password`` is then an OAuth 2.0 access
            token, presented with SASL XOAUTH2 / OAUTHBEARER (:mod:`laifaxin_shared.sasl`) as ``email``.
    """

    email: str
    password: str = field(repr=False)
    imap: tuple[Endpoint, ...]
    smtp: tuple[Endpoint, ...]
    imap_usernames: tuple[str, ...]
    smtp_usernames: tuple[str, ...]
    provider_id: str | None = None
    imap_id_required: bool = False
    auth: str = "basic"

    @classmethod
    def build(
        cls,
        email: str,
        password: str,
        *,
        provider: Provider | None,
        imap: Endpoint | None = None,
        smtp: Endpoint | None = None,
        incoming_protocol: str = "imap",
    ) -> VerifyRequest:
        """Combine user input with the catalog entry.

        User-given servers win; the catalog's backups are kept only when the user's server is the catalog's
        preferred one. Without a user server and without a catalog entry, ``imap.<domain>:993`` and
        ``smtp.<domain>:465`` are used.

        Raises:
            MailServerError: ``pop3_unsupported`` when ``incoming_protocol`` names POP3, or when ``imap`` is a
                POP3 server by port or host name (:func:`pop3_server_error`); both before any connection.
            ValueError: ``email`` is not an address.
        """
        refuse_pop3(incoming_protocol)
        if incoming_protocol.strip().lower() != "imap":
            raise ValueError(f"incoming protocol must be imap, not {incoming_protocol!r}")
        pop3 = pop3_server_error(imap, provider) if imap is not None else None
        if pop3 is not None:
            raise MailServerError.from_error(pop3)
        local, domain = split_email(email)
        email = f"{local}@{domain}"

        def servers(protocol: Protocol, given: Endpoint | None) -> tuple[Endpoint, ...]:
            if provider is None:
                default = (
                    Endpoint(f"imap.{domain}", 993, Security.SSL)
                    if protocol == "imap"
                    else Endpoint(f"smtp.{domain}", 465, Security.SSL)
                )
                return (given or default,)
            catalog = tuple(
                Endpoint(s.host, s.port, Security(s.security)) for s in provider.settings(protocol).servers
            )
            if given is None or given == catalog[0]:
                return catalog
            return (given,)

        def usernames(protocol: Protocol) -> tuple[str, ...]:
            if provider is None:
                return (email,)
            return provider.username.candidates(email, protocol)

        return cls(
            email=email,
            password=normalise_password(password, provider),
            imap=servers("imap", imap),
            smtp=servers("smtp", smtp),
            imap_usernames=usernames("imap"),
            smtp_usernames=usernames("smtp"),
            provider_id=provider.id if provider else None,
            imap_id_required=bool(provider and provider.has_quirk(QuirkCode.IMAP_ID_REQUIRED)),
        )


GROUPED_APP_PASSWORD = re.compile(r"[A-Za-z0-9]{4}(?:[ \t\u00a0\u3000]+[A-Za-z0-9]{4}){3}")
"""An app password as the provider displays it: 16 letters in 4 groups of 4 (Gmail's ``abcd efgh ijkl mnop``)."""


def normalise_password(password: str, provider: Provider | None) -> str:
    """Trim surrounding whitespace; remove the inner spaces only of an app password shown in groups.

    Inner whitespace goes only when both hold: the catalog says the provider displays its app password in groups
    (quirk ``strip_password_whitespace``: Gmail's 16 letters in 4 groups of 4 — the spaces are not part of it,
    and a pasted password with them fails on IMAP, freescout#5401; QQ's 16-letter code likewise, mailcore2#1332)
    and the typed text has that shape (:data:`GROUPED_APP_PASSWORD`). A login password or an authorization code
    with a space in it is sent as typed: spaces are legal in passwords, and removing them made a correct
    password fail.
    """
    trimmed = password.strip()
    if (
        provider is not None
        and provider.has_quirk(QuirkCode.STRIP_PASSWORD_WHITESPACE)
        and GROUPED_APP_PASSWORD.fullmatch(trimmed)
    ):
        return "".join(trimmed.split())
    return trimmed


def pop3_server_error(endpoint: Endpoint, provider: Provider | None = None) -> MailError | None:
    """``pop3_unsupported`` when ``endpoint``, given as the IMAP server, is a POP3 server by its port (110 or
    995: :data:`POP3_PORTS`) or its host name (first label ``pop``, ``pop3``, ``pops``, ``pop3s``, ``hwpop``);
    None otherwise. Decided before any connection.

    Source: RFC 1939 §3 (POP3 listens on TCP port 110), RFC 8314 (POP3 over implicit TLS, port 995); the
    product rule "Selected POP3 protocol -> Not supported".

    Returns:
        The error (protocol ``imap``, rule ``pop3:port`` or ``pop3:host``; its fix says why and, when the catalog
        knows the provider, which IMAP server to use instead: :func:`pop3_error`), or None.
    """
    host = endpoint.host.lower().rstrip(".")
    if endpoint.port in POP3_PORTS:
        reason = Text(en=f"Port {endpoint.port} is a POP3 port.", zh=f"{endpoint.port} 是 POP3 端口。")
        return pop3_error(provider, reason, rule="pop3:port")
    if _POP3_HOST_LABEL.match(host.split(".", 1)[0]):
        reason = Text(en=f"{host} is a POP3 server name.", zh=f"{host} 是 POP3 服务器地址。")
        return pop3_error(provider, reason, rule="pop3:host")
    return None


def pop3_error(
    provider: Provider | None, reason: Text, *, rule: str, server_text: str | None = None
) -> MailError:
    """The taxonomy's ``pop3_unsupported`` error on the IMAP side, with its message and fix; the fix starts with
    ``reason`` and, when the catalog knows the provider, ends with the IMAP server to use instead
    (``imap.163.com``, port 993, SSL). ``server_text`` is what the server said, if it said anything."""
    error = make_error(
        ErrorCode.POP3_UNSUPPORTED,
        protocol="imap",
        provider_id=provider.id if provider else None,
        server_text=server_text,
        rule=rule,
    )
    en, zh = f"{reason.en} {error.fix.en}", f"{reason.zh}{error.fix.zh}"
    if provider is not None:
        imap = provider.imap
        security = "SSL" if imap.security is Security.SSL else "STARTTLS"
        en += f" {provider.name.en}'s IMAP server is {imap.host}, port {imap.port} ({security}): use it instead."
        zh += f"{provider.name.zh}的 IMAP 服务器是 {imap.host}，端口 {imap.port}（{security}），请改用该服务器。"
    return dataclasses.replace(error, fix=Text(en=en, zh=zh))


@dataclass(frozen=True)
class ProtocolResult:
    """The outcome on one protocol.

    Attributes:
        endpoint: the server that answered last (the one that worked, or the last one tried).
        username: the login name the server accepted (None on failure).
        error: the classified failure (None on success).
        id_sent: whether IMAP ``ID`` was sent (IMAP only).
        attempts: endpoints tried, in order.
        elapsed_s: wall time, seconds.
    """

    protocol: Protocol
    endpoint: Endpoint
    username: str | None = None
    error: MailError | None = None
    id_sent: bool = False
    attempts: tuple[Endpoint, ...] = ()
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Verification:
    """Both protocols' outcomes. ``password`` is the normalised password that was tried (never logged)."""

    imap: ProtocolResult
    smtp: ProtocolResult
    password: str = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.imap.ok and self.smtp.ok

    @property
    def error(self) -> MailError | None:
        """The failure to show first: IMAP's, else SMTP's; None when both succeeded."""
        return self.imap.error or self.smtp.error

    def errors(self) -> list[MailError]:
        """Every failure (IMAP first)."""
        return [e for e in (self.imap.error, self.smtp.error) if e is not None]


_ADDRESS_LIKE = re.compile(
    r"(?<![\w.:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]{0,15}(?![\w:])|\b(?:\d{1,3}\.){3}\d{1,3}\b"
)


def hide_addresses(text: str, host: str) -> str:
    """``text`` with every IP address literal other than ``host`` itself replaced by ``<address of HOST>``.

    Socket errors name the address a host name resolved to (``Connect call failed ('10.0.3.7', 993)``); shown to
    a user, they would map the cluster's internal network through host names such as ``mongodb.default.svc``.
    An address the user typed as the host is theirs and is kept.
    """
    own = host.strip("[]").lower()

    def replace(match: re.Match[str]) -> str:
        literal = match.group(0)
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            return literal  # not an address (a time of day, a version number...)
        return literal if literal.lower() == own else f"<address of {host}>"

    return _ADDRESS_LIKE.sub(replace, text)


class HostGuard:
    """Refuses server hosts that resolve to non-public addresses unless allowlisted: the shared rule of
    :class:`laifaxin_shared.netguard.HostAllowlist` (private, loopback, link-local incl. metadata endpoints,
    shared, reserved, multicast, unspecified), with binding's errors."""

    def __init__(
        self,
        networks: Iterable[Network] = (),
        names: Iterable[str] = (),
        *,
        timeout: float = 5.0,
    ) -> None:
        self.allowlist = HostAllowlist(tuple(networks), frozenset(n.lower().rstrip(".") for n in names))
        self.timeout = timeout

    def allowed_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether a resolved address may be connected to."""
        return self.allowlist.allows_address(address)

    async def check(self, host: str, protocol: Protocol | None = None) -> None:
        """Resolve ``host`` and check every address.

        Raises:
            MailServerError: ``dns_failed`` (with a typo suggestion from the catalog) when the name does not
                resolve in time; ``host_not_allowed`` when an address is not public and not allowlisted.
        """
        name = host.lower().rstrip(".")
        try:
            address = await self.allowlist.refused_address(name, timeout=self.timeout)
        except (OSError, TimeoutError) as exc:
            gai = exc if isinstance(exc, socket.gaierror) else socket.gaierror(str(exc) or "timed out")
            raise MailServerError.from_error(explain_exception(gai, protocol, host=name)) from None
        if address is not None:
            # The address stays in our log: shown to the user, it would map the cluster's internal network
            # (which addresses our own host names resolve to).
            log.warning("server host refused", host=name, address=str(address))
            raise MailServerError(
                ErrorCode.HOST_NOT_ALLOWED,
                protocol=protocol,
                server_text=f"{name} resolves to a non-public address",
            )


@dataclass
class _ProbeResult:
    speaks_tls: bool = False
    greeting: str | None = None


class Verifier:
    """Runs verifications; one instance per process (it holds the per-host connection limits).

    Args:
        ssl_context: verifying client context (default: system roots); pass
            ``client_tls_context(ca_file)`` to trust an extra CA.
        guard: host check before connecting (None: no check, for callers that checked already).
        timeout: budget per protocol per endpoint, seconds (connect + commands).
        command_timeout: timeout of one connect or one command, seconds.
        max_connections_per_host: simultaneous connections to one host name.
        probe_timeout: seconds each diagnostic probe may take after a timeout.

    ``peak_connections`` maps host -> the most simultaneous connections seen (for benchmarks and tests).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        guard: HostGuard | None = None,
        timeout: float = 20.0,
        command_timeout: float = 10.0,
        max_connections_per_host: int = 8,
        probe_timeout: float = 1.5,
    ) -> None:
        self.ssl_context = ssl_context or client_tls_context()
        self.guard = guard
        self.timeout = timeout
        self.command_timeout = min(command_timeout, timeout)
        self.max_connections_per_host = max_connections_per_host
        self.probe_timeout = probe_timeout
        # Weak values: a host's semaphore lives while someone holds or waits for it, then goes away.
        self._limits: weakref.WeakValueDictionary[str, asyncio.Semaphore] = weakref.WeakValueDictionary()
        self._active: Counter[str] = Counter()
        self.peak_connections: Counter[str] = Counter()

    # ------------------------------------------------------------------ public

    async def verify(self, request: VerifyRequest) -> Verification:
        """Verify IMAP and SMTP concurrently; never raises for server-side failures.

        Returns:
            A :class:`Verification`; ``ok`` only when both protocols logged in (and IMAP selected INBOX).
        """
        imap, smtp = await asyncio.gather(
            self._protocol("imap", request, request.imap), self._protocol("smtp", request, request.smtp)
        )
        outcome = Verification(imap=imap, smtp=smtp, password=request.password)
        log.info(
            "mailbox verification",
            email_domain=request.email.rpartition("@")[2],
            provider=request.provider_id,
            imap=str(imap.endpoint),
            imap_error=imap.error.code.value if imap.error else None,
            smtp=str(smtp.endpoint),
            smtp_error=smtp.error.code.value if smtp.error else None,
            imap_s=round(imap.elapsed_s, 3),
            smtp_s=round(smtp.elapsed_s, 3),
        )
        return outcome

    # ------------------------------------------------------------------ per protocol

    async def _protocol(
        self, protocol: Protocol, request: VerifyRequest, endpoints: Sequence[Endpoint]
    ) -> ProtocolResult:
        started = time.perf_counter()
        tried: list[Endpoint] = []
        result: ProtocolResult | None = None
        for index, endpoint in enumerate(endpoints):
            tried.append(endpoint)
            result = await self._endpoint(protocol, request, endpoint)
            last = index + 1 == len(endpoints)
            if result.ok or last or result.error is None or result.error.code not in BACKUP_TRIGGERS:
                break
        assert result is not None, "a request has at least one endpoint per protocol"
        return ProtocolResult(
            protocol=protocol,
            endpoint=result.endpoint,
            username=result.username,
            error=result.error,
            id_sent=result.id_sent,
            attempts=tuple(tried),
            elapsed_s=time.perf_counter() - started,
        )

    async def _endpoint(
        self, protocol: Protocol, request: VerifyRequest, endpoint: Endpoint
    ) -> ProtocolResult:
        try:
            if self.guard is not None:
                await self.guard.check(endpoint.host, protocol)
            async with self._slot(endpoint.host):
                async with asyncio.timeout(self.timeout):
                    if protocol == "imap":
                        username, id_sent = await self._imap(request, endpoint)
                    else:
                        username, id_sent = await self._smtp(request, endpoint), False
            return ProtocolResult(protocol, endpoint, username=username, id_sent=id_sent)
        except MailServerError as exc:
            return ProtocolResult(protocol, endpoint, error=exc.error)
        except aiosmtplib.SMTPResponseException as exc:
            return ProtocolResult(
                protocol, endpoint, error=await self._smtp_reply_error(exc, request, endpoint)
            )
        except NotImapGreetingError as exc:
            return ProtocolResult(
                protocol, endpoint, error=await self._foreign_greeting(exc, request, endpoint)
            )
        except (TimeoutError, StartTlsUnsupportedError) as exc:
            return ProtocolResult(
                protocol, endpoint, error=await self._diagnose(exc, protocol, request, endpoint)
            )
        except aiosmtplib.SMTPNotSupported as exc:
            return ProtocolResult(protocol, endpoint, error=self._smtp_not_supported(exc, request))
        except (OSError, EOFError, aioimaplib.AioImapException, aiosmtplib.SMTPException) as exc:
            cause = _root_cause(exc)
            if isinstance(cause, TimeoutError):
                error = await self._diagnose(cause, protocol, request, endpoint)
            else:
                error = self._exception_error(cause, protocol, request, endpoint)
            return ProtocolResult(protocol, endpoint, error=error)
        except Exception as exc:  # noqa: BLE001  # any other client failure is still a verification failure the user must see, as "unknown" with its text
            log.warning("unexpected verification failure", protocol=protocol, error_type=type(exc).__name__)
            return ProtocolResult(
                protocol, endpoint, error=self._exception_error(exc, protocol, request, endpoint)
            )

    # ------------------------------------------------------------------ IMAP

    async def _imap(self, request: VerifyRequest, endpoint: Endpoint) -> tuple[str, bool]:
        """LOGIN (username fallback), ID, SELECT INBOX, LOGOUT. Returns (accepted username, ID sent)."""
        client = await connect_imap(
            endpoint.host,
            endpoint.port,
            endpoint.security.value,  # type: ignore[arg-type]  # StrEnum value is the Literal connect_imap takes
            ssl_context=self.ssl_context,
            timeout=self.command_timeout,
        )
        try:
            if request.auth == "oauth2":
                username = await self._imap_oauth(client, request, endpoint)
            else:
                username = await self._imap_login(client, request)
            id_sent = False
            if request.imap_id_required or client.has_capability("ID"):
                response = await asyncio.wait_for(client.protocol.id(**IMAP_ID), self.command_timeout)
                id_sent = response.result == "OK"
            response = await client.select("INBOX")
            if response.result != "OK":
                raise self._imap_reply_error(response, request)
            with contextlib.suppress(TimeoutError, aioimaplib.AioImapException, OSError):
                await client.logout()  # the verdict is in; a slow goodbye does not change it
            return username, id_sent
        finally:
            transport = client.protocol.transport
            if transport is not None:
                transport.close()

    async def _foreign_greeting(
        self, exc: NotImapGreetingError, request: VerifyRequest, endpoint: Endpoint
    ) -> MailError:
        """The error for a server on the IMAP side that greeted in another protocol: ``pop3_unsupported`` for
        POP3's ``+OK``/``-ERR`` (RFC 1939 §4), ``wrong_port`` for an SMTP banner (RFC 5321 §4.2), else what the
        port probe finds (:meth:`_diagnose`)."""
        spoken = greeting_protocol(exc.greeting)
        if spoken == "pop3":
            return self._pop3_greeting(request, endpoint, exc.greeting)
        if spoken == "smtp":
            return self._wrong_port("imap", request, endpoint, exc.greeting)
        return await self._diagnose(exc, "imap", request, endpoint)

    def _pop3_greeting(self, request: VerifyRequest, endpoint: Endpoint, greeting: str) -> MailError:
        """``pop3_unsupported`` for a server on the IMAP side that greeted like POP3 (RFC 1939 §4)."""
        reason = Text(
            en=f"The server at {endpoint.host}:{endpoint.port} greets like a POP3 server.",
            zh=f"{endpoint.host}:{endpoint.port} 上的服务器以 POP3 的方式问候。",
        )
        return pop3_error(
            find_provider(request.provider_id),
            reason,
            rule="probe:pop3_greeting",
            server_text=redact(f"{endpoint}: {greeting}", (request.password,)),
        )

    async def _imap_oauth(self, client: aioimaplib.IMAP4, request: VerifyRequest, endpoint: Endpoint) -> str:
        """AUTHENTICATE XOAUTH2 / OAUTHBEARER with the access token as ``request.email``; returns the address."""
        try:
            await authenticate_oauth(
                client,
                request.email,
                request.password,
                host=endpoint.host,
                port=endpoint.port,
                timeout=self.command_timeout,
            )
        except sasl.OAuthAuthenticationError as exc:
            raise MailServerError.from_error(
                explain("imap", exc.server_text, request.provider_id, secrets=(request.password,))
            ) from None
        except sasl.OAuthMechanismUnsupportedError as exc:
            raise MailServerError.from_error(
                explain("imap", f"NO {exc}", request.provider_id, secrets=(request.password,))
            ) from None
        return request.email

    async def _imap_login(self, client: aioimaplib.IMAP4, request: VerifyRequest) -> str:
        error: MailServerError | None = None
        for username in request.imap_usernames:
            # Bounded by the protocol's whole budget, not the per-command timeout: servers delay failed
            # logins on purpose (Dovecot's auth penalty doubles up to 15 s), and that is not a dead network.
            response = await client.protocol.login(username, request.password)
            if response.result == "OK":
                return username
            error = self._imap_reply_error(response, request)
            if error.code is not ErrorCode.AUTH_FAILED:
                break
        assert error is not None, "a request has at least one IMAP username"
        raise error

    def _imap_reply_error(self, response: aioimaplib.Response, request: VerifyRequest) -> MailServerError:
        text = " ".join(
            decode_reply(bytes(line) if isinstance(line, bytes | bytearray) else line)
            for line in response.lines
        )
        reply = f"{response.result} {text}".strip()
        return MailServerError.from_error(
            explain("imap", reply, request.provider_id, secrets=(request.password,))
        )

    # ------------------------------------------------------------------ SMTP

    async def _smtp(self, request: VerifyRequest, endpoint: Endpoint) -> str:
        """EHLO, TLS or STARTTLS, AUTH (username fallback), QUIT. Returns the accepted username."""
        client = aiosmtplib.SMTP(
            hostname=endpoint.host,
            port=endpoint.port,
            use_tls=endpoint.security is Security.SSL,
            start_tls=endpoint.security is Security.STARTTLS,
            tls_context=self.ssl_context,
            timeout=self.command_timeout,
        )
        await client.connect()
        try:
            if request.auth == "oauth2":
                try:
                    await sasl.smtp_authenticate(client, request.email, request.password)
                except sasl.OAuthAuthenticationError as exc:
                    code, _, text = exc.server_text.partition(" ")
                    raise aiosmtplib.SMTPAuthenticationError(
                        int(code) if code.isdigit() else 535, text
                    ) from None
                except sasl.OAuthMechanismUnsupportedError as exc:
                    raise aiosmtplib.SMTPAuthenticationError(504, str(exc)) from None
                with contextlib.suppress(TimeoutError, aiosmtplib.SMTPException, OSError):
                    await client.quit()
                return request.email
            error: aiosmtplib.SMTPAuthenticationError | None = None
            for username in request.smtp_usernames:
                try:
                    await client.login(username, request.password)
                except aiosmtplib.SMTPAuthenticationError as exc:
                    error = exc
                    explained = explain(
                        "smtp", f"{exc.code} {exc.message}", request.provider_id, secrets=(request.password,)
                    )
                    if explained.code is not ErrorCode.AUTH_FAILED:
                        raise
                    continue
                with contextlib.suppress(TimeoutError, aiosmtplib.SMTPException, OSError):
                    await client.quit()
                return username
            assert error is not None, "a request has at least one SMTP username"
            raise error
        finally:
            client.close()

    async def _smtp_reply_error(
        self, exc: aiosmtplib.SMTPResponseException, request: VerifyRequest, endpoint: Endpoint
    ) -> MailError:
        if exc.code == -1 and greeting_protocol(exc.message.removeprefix("Malformed SMTP response line:")):
            return self._wrong_port("smtp", request, endpoint, exc.message)
        return explain("smtp", f"{exc.code} {exc.message}", request.provider_id, secrets=(request.password,))

    def _smtp_not_supported(self, exc: aiosmtplib.SMTPNotSupported, request: VerifyRequest) -> MailError:
        """The server lacks an extension we need: STARTTLS (RFC 3207) on a port configured for it means the
        encryption setting is wrong; no AUTH (RFC 4954) after TLS means client submission is switched off."""
        text = str(exc)
        code = ErrorCode.TLS_MISMATCH if "STARTTLS" in text.upper() else ErrorCode.PROTOCOL_DISABLED
        return make_error(
            code,
            protocol="smtp",
            provider_id=request.provider_id,
            server_text=redact(text, (request.password,)),
            rule="smtp:extension_missing",
        )

    # ------------------------------------------------------------------ diagnosis

    def _exception_error(
        self, exc: BaseException, protocol: Protocol, request: VerifyRequest, endpoint: Endpoint
    ) -> MailError:
        error = explain_exception(
            exc,
            protocol,
            host=endpoint.host,
            port=endpoint.port,
            security=endpoint.security.value,  # type: ignore[arg-type]  # StrEnum value is the Literal
            provider_id=request.provider_id,
            secrets=(request.password,),
        )
        if error.server_text:  # socket errors name the address the host resolved to: not for the user's eyes
            error = dataclasses.replace(error, server_text=hide_addresses(error.server_text, endpoint.host))
        return error

    def _wrong_port(
        self, protocol: Protocol, request: VerifyRequest, endpoint: Endpoint, text: str
    ) -> MailError:
        return make_error(
            ErrorCode.WRONG_PORT,
            protocol=protocol,
            provider_id=request.provider_id,
            server_text=redact(f"{endpoint}: {text}", (request.password,)),
            rule="probe:greeting",
        )

    async def _diagnose(
        self, exc: BaseException, protocol: Protocol, request: VerifyRequest, endpoint: Endpoint
    ) -> MailError:
        """Tell a mismatched port or TLS mode apart from a real timeout by looking at what the port says."""
        probe = await self._probe(endpoint)
        spoken = greeting_protocol(probe.greeting)
        if spoken == "pop3" and protocol == "imap":
            return self._pop3_greeting(request, endpoint, probe.greeting or "")
        if spoken is not None and spoken != protocol:
            return self._wrong_port(protocol, request, endpoint, probe.greeting or "")
        if spoken == protocol or probe.speaks_tls or isinstance(exc, StartTlsUnsupportedError):
            mismatch = (endpoint.security is Security.STARTTLS and probe.speaks_tls) or isinstance(
                exc, StartTlsUnsupportedError
            )
            if mismatch:
                return make_error(
                    ErrorCode.TLS_MISMATCH,
                    protocol=protocol,
                    provider_id=request.provider_id,
                    server_text=f"{endpoint}: "
                    + ("the port expects TLS from the first byte" if probe.speaks_tls else str(exc)),
                    rule="probe:tls",
                )
        timeout_exc = exc if isinstance(exc, TimeoutError) else TimeoutError(str(exc))
        return self._exception_error(timeout_exc, protocol, request, endpoint)

    async def _probe(self, endpoint: Endpoint) -> _ProbeResult:
        """Read the first line the port sends in plain text; if none, try a TLS handshake and read again.

        The TLS probe does not verify the certificate: it only asks "does this port speak TLS?" and sends no
        credentials.
        """
        result = _ProbeResult()
        result.greeting = await self._read_line(endpoint.host, endpoint.port, None)
        if result.greeting is None:
            insecure = ssl.create_default_context()
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE  # probe only; see docstring
            line = await self._read_line(endpoint.host, endpoint.port, insecure)
            if line is not None:
                result.speaks_tls = True
                result.greeting = line or None
        return result

    async def _read_line(self, host: str, port: int, tls: ssl.SSLContext | None) -> str | None:
        """The first line within :attr:`probe_timeout`; ``""`` when TLS worked but nothing was said, None on
        no answer at all."""
        writer: asyncio.StreamWriter | None = None
        connected = False
        try:
            async with asyncio.timeout(self.probe_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None
                )
                connected = True
                line = await reader.readline()
                return line.decode("utf-8", "replace").strip() if line else None
        except (OSError, TimeoutError, EOFError):
            return "" if (tls is not None and connected) else None
        finally:
            if writer is not None:
                writer.close()

    # ------------------------------------------------------------------ connection bound

    @contextlib.asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[None]:
        key = host.lower().rstrip(".")
        semaphore = self._limits.get(key)
        if semaphore is None:
            semaphore = asyncio.Semaphore(self.max_connections_per_host)
            self._limits[key] = semaphore
        if len(self.peak_connections) > MAX_TRACKED_HOSTS:
            self.peak_connections.clear()  # a metric, not state: keep a long-running process bounded
        async with semaphore:
            self._active[key] += 1
            self.peak_connections[key] = max(self.peak_connections[key], self._active[key])
            try:
                yield
            finally:
                self._active[key] -= 1
                if not self._active[key]:
                    del self._active[key]


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost ``__cause__`` (aiosmtplib wraps OSError/SSLError in SMTPConnectError)."""
    seen = 0
    while exc.__cause__ is not None and seen < 5:
        exc, seen = exc.__cause__, seen + 1
    return exc
