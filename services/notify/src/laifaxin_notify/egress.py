"""Connect-time SSRF guard for the URLs users give notify: Web Push endpoints and webhook (Apprise) URLs.

The rule is the shared one of :class:`laifaxin_shared.netguard.HostAllowlist` (a host is refused when any address
it resolves to is private, loopback, link-local incl. the cloud metadata endpoints, shared, reserved, multicast or
unspecified, unless the operator allowlist names the host or holds a network containing the address). This
module applies it *where the connection is made*, so that what was checked is what is connected to:

- **aiohttp** (Web Push): :meth:`EgressGuard.connector` gives a ``TCPConnector`` whose resolver
  (:class:`GuardedResolver`) resolves the name once, checks every address and hands aiohttp only those
  addresses; aiohttp connects to them and keeps the original host name for TLS SNI, certificate verification
  and the ``Host`` header. There is no second lookup, hence no DNS-rebinding window. aiohttp does not call the
  resolver for an IP literal, so :meth:`EgressGuard.check_url` checks literals before each request.
- **requests/urllib3** (Apprise's plugins for ``json://`` / ``form://`` webhooks, run in worker threads):
  inside :meth:`EgressGuard.blocking`, urllib3's ``create_connection`` is given the checked address instead of
  the name (urllib3 still verifies the certificate and sends SNI for the original host name). Outside that
  block urllib3 behaves as usual.

Plain ``http://`` is accepted only for hosts the allowlist names (or IP literals inside an allowlisted
network): what tests and local development use for loopback services. Redirects are never followed by callers
(a redirect could lead anywhere; each caller passes ``allow_redirects=False`` or Apprise's ``redirect=False``).

Errors never carry the address a name resolved to (users see their delivery outcomes), only the host they gave.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import urllib3.util.connection
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from laifaxin_shared.netguard import Address, HostAllowlist


class EgressRefused(OSError):
    """A URL notify may not connect to. ``code``: ``host_not_allowed`` (a non-public address),
    ``https_required`` (plain http to a host the allowlist does not name) or ``invalid_url``. The message names
    the host the user gave, never an address it resolved to."""

    def __init__(self, message: str, code: str = "host_not_allowed") -> None:
        super().__init__(message)
        self.code = code


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class EgressGuard:
    """Checks and pins the addresses notify connects to for user-given URLs.

    Args:
        allowlist: comma-separated CIDRs or host names (:meth:`HostAllowlist.parse`) that may be non-public and
            may use plain http (``NOTIFY_PUSH_ALLOWLIST``, ``NOTIFY_HOST_ALLOWLIST``).
        timeout_s: longest a name resolution may take, seconds.
    """

    def __init__(self, allowlist: str = "", *, timeout_s: float = 5.0) -> None:
        self.allowlist = HostAllowlist.parse(allowlist)
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return "EgressGuard()"

    def _allowlisted_host(self, host: str) -> bool:
        """The host itself is allowlisted: a listed name, or an IP literal inside a listed network."""
        if self.allowlist.allows_name(host):
            return True
        address = _literal(host)
        return address is not None and any(address in net for net in self.allowlist.networks)

    def check_address(self, host: str, address: Address) -> None:
        """Raises :class:`EgressRefused` when ``address`` (one of ``host``'s) may not be connected to."""
        if self.allowlist.allows_name(host) or self.allowlist.allows_address(address):
            return
        raise EgressRefused(f"{host} is not a public address; ask the platform operator to allowlist it")

    def check_url(self, url: str, *, schemes: tuple[str, ...] = ("https",)) -> tuple[str, int]:
        """Check a URL's form before a request: scheme (``schemes``; plain ``http`` only for an allowlisted
        host), a host, no user info, and an IP-literal host's address (names are checked at connect time by the
        resolver). Returns (host, port).

        Raises:
            EgressRefused: ``invalid_url``, ``https_required`` or ``host_not_allowed``.
        """
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            raise EgressRefused("the URL is malformed", "invalid_url") from None
        scheme = parts.scheme.lower()
        if not host or parts.username is not None or parts.password is not None:
            raise EgressRefused("the URL needs a host and no user info", "invalid_url")
        if scheme not in schemes and not (scheme == "http" and self._allowlisted_host(host)):
            raise EgressRefused(f"the URL must use {' or '.join(schemes)}", "https_required")
        address = _literal(host)
        if address is not None:
            self.check_address(host, address)
        return host, port or (443 if scheme == "https" else 80)

    async def check_host(self, host: str) -> None:
        """Resolve ``host`` now and check every address (when a URL is stored; the send checks again).

        Raises:
            EgressRefused: ``host_not_allowed``; OSError / TimeoutError: the name does not resolve.
        """
        if await self.allowlist.refused_address(host, timeout=self.timeout_s) is not None:
            raise EgressRefused(f"{host} is not a public address; ask the platform operator to allowlist it")

    def resolver(self) -> GuardedResolver:
        return GuardedResolver(self)

    def connector(self, **kwargs: Any) -> aiohttp.TCPConnector:
        """A ``TCPConnector`` that connects only to checked addresses (no DNS cache: every new connection
        resolves and checks once, and connects to what it checked)."""
        return aiohttp.TCPConnector(resolver=self.resolver(), use_dns_cache=False, **kwargs)

    @contextlib.contextmanager
    def blocking(self) -> Iterator[list[EgressRefused]]:
        """In this block (this thread's context), urllib3 connects only to checked addresses of each host.
        Yields the list of refusals made in the block (a library may swallow the exception)."""
        _install_urllib3_hook()
        refusals: list[EgressRefused] = []
        token = _blocking_guard.set((self, refusals))
        try:
            yield refusals
        finally:
            _blocking_guard.reset(token)

    def pinned_addresses(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """``getaddrinfo`` for ``host`` once, every address checked (blocking; for urllib3's threads).

        Raises:
            EgressRefused: an address is not allowed; socket.gaierror: the name does not resolve.
        """
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for info in infos:
            self.check_address(host, ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        return infos


class GuardedResolver(AbstractResolver):
    """aiohttp resolver: resolves once with :class:`ThreadedResolver` (the system resolver), refuses the host
    when any address is not allowed (:class:`EgressRefused`; aiohttp raises it as the ``os_error`` of a
    ``ClientConnectorDNSError``) and otherwise returns exactly the checked addresses for aiohttp to connect to."""

    def __init__(self, guard: EgressGuard) -> None:
        self.guard = guard
        self._inner: ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        found = await self._inner.resolve(host, port, family)
        for result in found:
            self.guard.check_address(host, ipaddress.ip_address(result["host"].split("%", 1)[0]))
        return found

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def refused(exc: BaseException) -> EgressRefused | None:
    """The :class:`EgressRefused` behind an aiohttp connection error, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressRefused):
            return current
        seen.add(id(current))
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return None


# urllib3 (Apprise's requests) -------------------------------------------------------------------------------
_blocking_guard: contextvars.ContextVar[tuple[EgressGuard, list[EgressRefused]] | None] = (
    contextvars.ContextVar("notify_egress_guard", default=None)
)
_original_create_connection = urllib3.util.connection.create_connection


def _guarded_create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """urllib3's ``create_connection`` that, inside :meth:`EgressGuard.blocking`, resolves the host once, checks
    every address and connects to the first that answers (urllib3 keeps the host name for SNI and the
    certificate check). Outside such a block it is urllib3's own."""
    active = _blocking_guard.get()
    if active is None:
        return _original_create_connection(address, *args, **kwargs)
    guard, refusals = active
    host, port = address
    try:
        infos = guard.pinned_addresses(host.strip("[]"), port)
    except EgressRefused as exc:
        refusals.append(exc)
        raise
    last: OSError | None = None
    for info in infos:
        try:
            return _original_create_connection((str(info[4][0]), port), *args, **kwargs)
        except OSError as exc:
            last = exc
    raise last or OSError(f"{host} has no address")


def _install_urllib3_hook() -> None:
    """Route urllib3's connections through :func:`_guarded_create_connection` (idempotent; a no-op for every
    connection made outside :meth:`EgressGuard.blocking`)."""
    if urllib3.util.connection.create_connection is not _guarded_create_connection:
        urllib3.util.connection.create_connection = _guarded_create_connection
