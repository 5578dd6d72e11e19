"""Provider autodetection: from an email address to IMAP and SMTP settings, naming the source that decided.

Order (issue 3 "Autodetection"; providers.md §1 and §5.1, Thunderbird's FindConfig/FetchConfig):

1. ``catalog``: the email domain is in the bundled catalog (exact, or a ``domain_suffixes`` parent).
2. ``mx``: the domain's MX hosts (lowest preference first) match a catalog MX pattern on label boundaries
   (``mx.qiye.163.com`` → NetEase Enterprise; ``evilqq.com.example`` is not QQ).
3. ``autoconfig``: Thunderbird autoconfig XML (clientConfig v1.1) from
   ``https://autoconfig.<domain>/mail/config-v1.1.xml`` then
   ``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml`` (HTTPS only: Thunderbird's ``sslOnly``).
4. ``srv``: RFC 6186 SRV records ``_imaps._tcp`` (993, implicit TLS), ``_imap._tcp`` (STARTTLS), and for
   submission RFC 8314 ``_submissions._tcp`` (465) then RFC 6186 ``_submission._tcp`` (587); target ``.``
   means "not offered".
5. ``guess``: ``imap.<domain>`` / ``mail.<domain>`` (and ``smtp.`` / ``mail.``), preferring names that resolve.

DNS is unauthenticated and autoconfig can be served by anyone who controls the domain's web host: servers learned
from DNS or autoconfig that are neither inside the user's domain nor catalog hosts are returned with
``needs_confirmation=True`` (Thunderbird asks the user too); callers must not send a password there silently.

Autoconfig hosts are fetched only when our resolver maps them to public addresses (ARCHITECTURE.md: no requests
to private, loopback, link-local or metadata addresses). All network steps share one time budget; when it runs
out the answer is an unchecked ``guess``. Offline mode (``offline=True``) consults the catalog only and never
touches DNS or HTTP; an unknown domain then gets the unchecked ``guess`` too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.resolver
import httpx
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from pydantic import BaseModel, ConfigDict, Field

from laifaxin_shared.logging import get_logger
from laifaxin_shared.providers.catalog import (
    is_same_or_subdomain,
    known_server_hosts,
    load_catalog,
    provider_for_domain,
    provider_for_mx,
    split_email,
)
from laifaxin_shared.providers.models import (
    AuthMethod,
    Catalog,
    Protocol,
    Provider,
    Security,
    Text,
    UsernameForm,
)

Source = Literal["catalog", "mx", "autoconfig", "srv", "guess"]

AUTOCONFIG_MAX_BYTES = 64 * 1024
"""Autoconfig documents larger than this are ignored (real ones are a few KiB)."""

DEFAULT_DNS_LIFETIME = 4.0
"""Seconds a DNS query may take in total (dnspython ``lifetime``)."""

DEFAULT_HTTP_TIMEOUT = 5.0
"""Seconds per autoconfig HTTP request."""

DEFAULT_BUDGET = 15.0
"""Seconds the network part of one detection may take in total."""

log = get_logger(__name__)


class ServerOut(BaseModel):
    """One endpoint in the detection result."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int
    security: Security


class PasswordHelpOut(BaseModel):
    """What the user types as password, and where they make it (catalog entries only)."""

    model_config = ConfigDict(frozen=True)

    label: Text
    where: Text


class QuirkOut(BaseModel):
    """A provider quirk: machine code plus explanation."""

    model_config = ConfigDict(frozen=True)

    code: str
    en: str
    zh: str


class Attempt(BaseModel):
    """What one lookup step found, for operators and support (``"skipped"``, ``"no match"``, an error…)."""

    model_config = ConfigDict(frozen=True)

    source: str
    outcome: str


class Detection(BaseModel):
    """The settings detected for one email address.

    ``provider`` is the catalog id (``None`` when settings came from autoconfig, SRV or a guess without a
    catalog match). ``username`` is the login name to try first and ``username_fallback`` the other form where
    the catalog allows it. ``auth`` is ``oauth2`` when either protocol requires OAuth2. ``needs_confirmation``
    is true when ``unconfirmed_hosts`` is non-empty: hosts outside the user's domain and outside the catalog.
    """

    model_config = ConfigDict(frozen=True)

    email: str
    domain: str
    provider: str | None
    provider_name: Text | None = None
    kind: Literal["personal", "business"] | None = None
    imap: ServerOut
    smtp: ServerOut
    imap_backups: list[ServerOut] = Field(default_factory=list)
    smtp_backups: list[ServerOut] = Field(default_factory=list)
    username: str
    username_fallback: dict[str, str] = Field(default_factory=dict)
    """Per protocol, the other username form to try once after ``auth_failed``."""
    password_type: str
    """``app_password``, ``login_password``, ``oauth2``, or ``unknown`` outside the catalog."""
    password_help: PasswordHelpOut | None = None
    auth: AuthMethod
    imap_auth: AuthMethod
    smtp_auth: AuthMethod
    oauth2_available: bool = False
    source: Source
    needs_confirmation: bool = False
    unconfirmed_hosts: list[str] = Field(default_factory=list)
    quirks: list[QuirkOut] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Found:
    """Servers found by a non-catalog step."""

    imap: ServerOut
    smtp: ServerOut
    imap_backups: tuple[ServerOut, ...] = ()
    smtp_backups: tuple[ServerOut, ...] = ()
    username_form: UsernameForm = UsernameForm.EMAIL
    imap_auth: AuthMethod = AuthMethod.PASSWORD
    smtp_auth: AuthMethod = AuthMethod.PASSWORD
    notes: tuple[str, ...] = ()


@dataclass
class Detector:
    """Runs the lookup chain with injectable network access.

    Args:
        resolver: a dnspython async resolver (e.g. ``Resolver(configure=False)`` with ``nameservers`` and
            ``port`` pointing at a test server); ``None`` builds one from the system configuration on demand.
        http: an ``httpx.AsyncClient`` for autoconfig; ``None`` opens a short-lived one per call.
        autoconfig_base_url: if set (tests, or an operator's internal mirror), autoconfig requests go to this
            base URL with the original host name in the ``Host`` header, instead of to ``https://<host>``, and
            the public-address check is skipped (the operator chose the target).
        catalog: the provider catalog; defaults to the bundled one.
    """

    resolver: dns.asyncresolver.Resolver | None = None
    http: httpx.AsyncClient | None = None
    autoconfig_base_url: str | None = None
    catalog: Catalog | None = None
    http_timeout: float = DEFAULT_HTTP_TIMEOUT
    budget: float = DEFAULT_BUDGET
    """Seconds all network steps together may take; then the result is an unchecked guess."""
    _attempts: list[Attempt] = field(default_factory=list, init=False, repr=False)

    async def detect(self, email: str, *, offline: bool = False) -> Detection:
        """Detect the settings for ``email``; see the module docstring for the order.

        Raises:
            ValueError: ``email`` is not an email address with a valid domain.
        """
        if self.resolver is None and not offline:
            self.resolver = _system_resolver()
        # One run per call, so concurrent detections never share their attempt log.
        return await dataclasses.replace(self)._run(email, offline=offline)

    async def _run(self, email: str, *, offline: bool) -> Detection:
        catalog = self.catalog or load_catalog()
        local, domain = split_email(email)
        address = f"{local}@{domain}"

        provider = provider_for_domain(domain, catalog)
        if provider is not None:
            self._note("catalog", f"domain {domain} is {provider.id}")
            return self._from_provider(address, domain, provider, "catalog")
        self._note("catalog", "no match")
        if offline:
            self._note("mx", "skipped (offline)")
            return self._from_found(address, domain, _guess(domain, resolved=()), "guess", catalog)

        try:
            async with asyncio.timeout(self.budget):
                return await self._online(address, domain, catalog)
        except TimeoutError:
            self._note("detect", f"network lookups gave up after {self.budget:g} s")
            return self._from_found(address, domain, _guess(domain, resolved=()), "guess", catalog)

    async def _online(self, address: str, domain: str, catalog: Catalog) -> Detection:
        """Steps 2-5 (MX, then autoconfig and SRV concurrently with autoconfig preferred, then guess)."""
        mx_hosts = await self._mx_hosts(domain)
        match = provider_for_mx(mx_hosts, catalog)
        if match is not None:
            self._note("mx", f"{match.mx_host} matches {match.pattern} ({match.provider.id})")
            detection = self._from_provider(address, domain, match.provider, "mx")
            return detection.model_copy(
                update={"notes": [*detection.notes, f"MX {match.mx_host} matches {match.pattern}"]}
            )
        self._note("mx", f"no catalog pattern matches {mx_hosts or 'no MX'}")

        autoconfig, srv = await asyncio.gather(self._autoconfig(address, domain), self._srv(domain))
        if autoconfig is not None:
            return self._from_found(address, domain, autoconfig, "autoconfig", catalog)
        if srv is not None:
            return self._from_found(address, domain, srv, "srv", catalog)
        resolved = await self._resolving([f"imap.{domain}", f"mail.{domain}", f"smtp.{domain}", domain])
        return self._from_found(address, domain, _guess(domain, resolved=resolved), "guess", catalog)

    # ----------------------------------------------------------------------------------------- results

    def _note(self, source: str, outcome: str) -> None:
        self._attempts.append(Attempt(source=source, outcome=outcome))

    def _from_provider(self, email: str, domain: str, provider: Provider, source: Source) -> Detection:
        username = provider.username.candidates(email, "imap")[0]
        fallback: dict[str, str] = {}
        for protocol in ("imap", "smtp"):
            candidates = provider.username.candidates(email, protocol)
            if len(candidates) > 1:
                fallback[protocol] = candidates[1]

        def out(settings_protocol: Protocol) -> tuple[ServerOut, list[ServerOut]]:
            settings = provider.settings(settings_protocol)
            primary = ServerOut(host=settings.host, port=settings.port, security=settings.security)
            backups = [ServerOut(host=s.host, port=s.port, security=s.security) for s in settings.backups]
            return primary, backups

        imap, imap_backups = out("imap")
        smtp, smtp_backups = out("smtp")
        return Detection(
            email=email,
            domain=domain,
            provider=provider.id,
            provider_name=provider.name,
            kind=provider.kind,
            imap=imap,
            smtp=smtp,
            imap_backups=imap_backups,
            smtp_backups=smtp_backups,
            username=username,
            username_fallback=fallback,
            password_type=provider.password.type.value,
            password_help=PasswordHelpOut(label=provider.password.label, where=provider.password.where),
            auth=provider.auth,
            imap_auth=provider.imap.auth,
            smtp_auth=provider.smtp.auth,
            oauth2_available=provider.oauth2_available,
            source=source,
            quirks=[QuirkOut(code=q.code.value, en=q.text.en, zh=q.text.zh) for q in provider.quirks],
            attempts=list(self._attempts),
        )

    def _from_found(
        self, email: str, domain: str, found: _Found, source: Source, catalog: Catalog
    ) -> Detection:
        known = known_server_hosts(catalog)
        hosts = [found.imap, found.smtp, *found.imap_backups, *found.smtp_backups]
        unconfirmed = sorted(
            {s.host for s in hosts if not is_same_or_subdomain(s.host, domain) and s.host not in known}
        )
        provider = _provider_by_host(found.imap.host, catalog)
        local = email.rsplit("@", 1)[0]
        username = local if found.username_form is UsernameForm.LOCAL_PART else email
        notes = list(found.notes)
        if provider is not None:
            notes.append(f"{found.imap.host} is a {provider.id} server in the catalog")
        if unconfirmed:
            notes.append(
                f"{', '.join(unconfirmed)} lie outside {domain} and the catalog: confirm before sending a password"
            )
        auth = (
            AuthMethod.OAUTH2
            if AuthMethod.OAUTH2 in (found.imap_auth, found.smtp_auth)
            else AuthMethod.PASSWORD
        )
        return Detection(
            email=email,
            domain=domain,
            provider=provider.id if provider else None,
            provider_name=provider.name if provider else None,
            kind=provider.kind if provider else None,
            imap=found.imap,
            smtp=found.smtp,
            imap_backups=list(found.imap_backups),
            smtp_backups=list(found.smtp_backups),
            username=username,
            password_type=provider.password.type.value if provider else "unknown",
            password_help=(
                PasswordHelpOut(label=provider.password.label, where=provider.password.where)
                if provider
                else None
            ),
            auth=auth,
            imap_auth=found.imap_auth,
            smtp_auth=found.smtp_auth,
            oauth2_available=provider.oauth2_available if provider else auth is AuthMethod.OAUTH2,
            source=source,
            needs_confirmation=bool(unconfirmed),
            unconfirmed_hosts=unconfirmed,
            quirks=[QuirkOut(code=q.code.value, en=q.text.en, zh=q.text.zh) for q in provider.quirks]
            if provider
            else [],
            notes=notes,
            attempts=list(self._attempts),
        )

    # ----------------------------------------------------------------------------------------- DNS

    def _resolver(self) -> dns.asyncresolver.Resolver:
        if self.resolver is None:
            self.resolver = _system_resolver()
        return self.resolver

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return await self._resolver().resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.resolver.NoNameservers:
            self._note("dns", f"{rdtype} {name}: no nameserver answered (SERVFAIL/REFUSED)")
            return None
        except dns.exception.Timeout:
            self._note("dns", f"{rdtype} {name}: timeout")
            return None
        except dns.exception.DNSException as exc:
            self._note("dns", f"{rdtype} {name}: {type(exc).__name__}")
            return None

    async def _mx_hosts(self, domain: str) -> list[str]:
        """MX exchange names sorted by preference (RFC 5321 §5.1); the null MX ``.`` (RFC 7505) is dropped."""
        answer = await self._query(domain, "MX")
        if answer is None:
            return []
        records = sorted(answer, key=lambda r: (r.preference, r.exchange.to_text()))
        return [
            r.exchange.to_text(omit_final_dot=True).lower() for r in records if r.exchange.to_text() != "."
        ]

    async def _resolving(self, names: Sequence[str]) -> tuple[str, ...]:
        """The subset of ``names`` that have an A or AAAA record, in input order."""

        async def resolves(name: str) -> bool:
            for rdtype in ("A", "AAAA"):
                if await self._query(name, rdtype) is not None:
                    return True
            return False

        results = await asyncio.gather(*(resolves(name) for name in names))
        return tuple(name for name, ok in zip(names, results, strict=True) if ok)

    async def _srv_target(self, names: Sequence[tuple[str, Security]]) -> ServerOut | None:
        """The best SRV target among ``names`` in order (RFC 2782: lowest priority, then highest weight)."""
        for name, security in names:
            answer = await self._query(name, "SRV")
            if answer is None:
                continue
            records = sorted(answer, key=lambda r: (r.priority, -r.weight))
            for record in records:
                target = record.target.to_text(omit_final_dot=True).lower()
                if target in ("", ".") or record.port == 0:
                    continue  # RFC 6186 §3.4: "." means the service is not offered
                return ServerOut(host=target, port=record.port, security=security)
        return None

    async def _srv(self, domain: str) -> _Found | None:
        imap = await self._srv_target(
            [(f"_imaps._tcp.{domain}", Security.SSL), (f"_imap._tcp.{domain}", Security.STARTTLS)]
        )
        smtp = await self._srv_target(
            [(f"_submissions._tcp.{domain}", Security.SSL), (f"_submission._tcp.{domain}", Security.STARTTLS)]
        )
        if imap is None:
            self._note("srv", "no IMAP SRV record" + ("" if smtp is None else " (submission SRV ignored)"))
            return None
        notes: list[str] = []
        if smtp is None:
            smtp = ServerOut(host=f"smtp.{domain}", port=465, security=Security.SSL)
            notes.append("no submission SRV record; SMTP is a guess")
        self._note("srv", f"IMAP {imap.host}:{imap.port}, SMTP {smtp.host}:{smtp.port}")
        return _Found(imap=imap, smtp=smtp, notes=tuple(notes))

    # ----------------------------------------------------------------------------------------- autoconfig

    def _autoconfig_requests(self, email: str, domain: str) -> list[tuple[str, str]]:
        """(URL, Host header) pairs in Thunderbird's order."""
        targets = [
            (f"autoconfig.{domain}", "/mail/config-v1.1.xml"),
            (domain, "/.well-known/autoconfig/mail/config-v1.1.xml"),
        ]
        requests = []
        for host, path in targets:
            base = self.autoconfig_base_url.rstrip("/") if self.autoconfig_base_url else f"https://{host}"
            requests.append((f"{base}{path}", host))
        return requests

    async def _public_host(self, host: str) -> bool:
        """Whether ``host`` resolves, through our resolver, only to public addresses (ARCHITECTURE.md,
        "Credentials and tenancy": no requests to private, loopback, link-local or metadata addresses).

        httpx resolves the name again when it connects, so this narrows but does not close DNS rebinding; the
        response is also size-capped and only parsed, never followed.
        """
        addresses: list[str] = []
        for rdtype in ("A", "AAAA"):
            answer = await self._query(host, rdtype)
            if answer is not None:
                addresses.extend(record.to_text() for record in answer)
        if not addresses:
            self._note("autoconfig", f"{host}: does not resolve")
            return False
        private = [a for a in addresses if not ipaddress.ip_address(a).is_global]
        if private:
            # Which addresses stays in our log: shown to the user (detection attempts), it would map the
            # cluster's internal network through host names such as <service>.<namespace>.svc.
            log.info("autoconfig host refused", host=host, addresses=private)
            self._note("autoconfig", f"{host}: refused, resolves to a non-public address")
            return False
        return True

    async def _fetch(self, client: httpx.AsyncClient, url: str, host: str, email: str) -> bytes | None:
        try:
            async with client.stream(
                "GET", url, params={"emailaddress": email}, headers={"Host": host}, timeout=self.http_timeout
            ) as response:
                if response.status_code != 200:
                    self._note("autoconfig", f"{host}: HTTP {response.status_code}")
                    return None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > AUTOCONFIG_MAX_BYTES:
                        self._note("autoconfig", f"{host}: document larger than {AUTOCONFIG_MAX_BYTES} bytes")
                        return None
                return bytes(body)
        except httpx.HTTPError as exc:
            self._note("autoconfig", f"{host}: {type(exc).__name__}")
            return None

    async def _autoconfig(self, email: str, domain: str) -> _Found | None:
        client = self.http
        owned = client is None
        if client is None:
            client = httpx.AsyncClient(follow_redirects=False, timeout=self.http_timeout)
        try:
            for url, host in self._autoconfig_requests(email, domain):
                if self.autoconfig_base_url is None and not await self._public_host(host):
                    continue
                body = await self._fetch(client, url, host, email)
                if body is None:
                    continue
                try:
                    found = parse_autoconfig(body, email)
                except AutoconfigError as exc:
                    self._note("autoconfig", f"{host}: {exc}")
                    continue
                self._note("autoconfig", f"{host}: IMAP {found.imap.host}:{found.imap.port}")
                return found
            return None
        finally:
            if owned:
                await client.aclose()


def _system_resolver() -> dns.asyncresolver.Resolver:
    """The system's resolver (``/etc/resolv.conf``) with :data:`DEFAULT_DNS_LIFETIME`; without a resolver
    configuration, one with no nameservers, so every query fails and is noted instead of detection raising."""
    try:
        resolver = dns.asyncresolver.Resolver()
    except dns.exception.DNSException:
        resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.lifetime = DEFAULT_DNS_LIFETIME
    return resolver


# --------------------------------------------------------------------------------------------- autoconfig XML


class AutoconfigError(ValueError):
    """The autoconfig document is not usable (not XML, a DTD, no IMAP or SMTP server with TLS)."""


_SOCKET_TYPES = {"SSL": Security.SSL, "STARTTLS": Security.STARTTLS}


def _substitute(value: str, email: str) -> str:
    local, _, domain = email.rpartition("@")
    return (
        value.replace("%EMAILADDRESS%", email)
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", domain)
        .strip()
        .lower()
    )


def parse_autoconfig(document: bytes, email: str) -> _Found:
    """Parse a Thunderbird autoconfig document (clientConfig v1.1; providers.md §1 "ISPDB format").

    Takes the first ``incomingServer type="imap"`` and the first ``outgoingServer type="smtp"`` whose
    ``socketType`` is SSL or STARTTLS (plain is refused); the rest become backups. ``%EMAILADDRESS%``,
    ``%EMAILLOCALPART%`` and ``%EMAILDOMAIN%`` are substituted; ``authentication`` ``OAuth2`` marks the
    protocol as OAuth2-only.

    Raises:
        AutoconfigError: not XML, contains a DOCTYPE/ENTITY, or lacks a usable IMAP or SMTP server.
    """
    try:
        # defusedxml refuses a DTD, entity declarations and external references in whatever encoding the
        # document declares (UTF-16 included: a byte search for "<!DOCTYPE" does not see it there); the size
        # is capped by the caller.
        root = SafeET.fromstring(document, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise AutoconfigError(f"DTDs and entities are not accepted ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise AutoconfigError(f"not XML: {exc}") from exc
    provider = root.find("emailProvider")
    if root.tag != "clientConfig" or provider is None:
        raise AutoconfigError("not a clientConfig document")

    def servers(tag: str, kind: str) -> tuple[list[ServerOut], UsernameForm, AuthMethod]:
        found: list[ServerOut] = []
        form = UsernameForm.EMAIL
        auth = AuthMethod.PASSWORD
        for element in provider.findall(tag):
            if element.get("type") != kind:
                continue
            security = _SOCKET_TYPES.get((element.findtext("socketType") or "").strip().upper())
            host = _substitute(element.findtext("hostname") or "", email)
            port_text = (element.findtext("port") or "").strip()
            if security is None or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
                continue
            if not found:
                if (element.findtext("username") or "").strip() == "%EMAILLOCALPART%":
                    form = UsernameForm.LOCAL_PART
                methods = {(m.text or "").strip() for m in element.findall("authentication")}
                if methods and methods <= {"OAuth2"}:
                    auth = AuthMethod.OAUTH2
            found.append(ServerOut(host=host, port=int(port_text), security=security))
        return found, form, auth

    imap, form, imap_auth = servers("incomingServer", "imap")
    smtp, _, smtp_auth = servers("outgoingServer", "smtp")
    if not imap or not smtp:
        raise AutoconfigError("no IMAP or no SMTP server with SSL/STARTTLS")
    return _Found(
        imap=imap[0],
        smtp=smtp[0],
        imap_backups=tuple(imap[1:]),
        smtp_backups=tuple(smtp[1:]),
        username_form=form,
        imap_auth=imap_auth,
        smtp_auth=smtp_auth,
    )


# --------------------------------------------------------------------------------------------- guess


def _guess(domain: str, resolved: tuple[str, ...]) -> _Found:
    """``imap.``/``mail.`` for IMAP and ``smtp.``/``mail.`` for SMTP, implicit TLS first then STARTTLS
    (Delta Chat ``server_params.rs``; Thunderbird guess); names that resolve come first."""

    def order(prefixes: Sequence[str]) -> list[str]:
        names = [f"{p}.{domain}" for p in prefixes]
        return sorted(names, key=lambda n: (n not in resolved, names.index(n)))

    imap_hosts = order(["imap", "mail"])
    smtp_hosts = order(["smtp", "mail"])
    imap = [ServerOut(host=h, port=993, security=Security.SSL) for h in imap_hosts]
    imap += [ServerOut(host=h, port=143, security=Security.STARTTLS) for h in imap_hosts]
    smtp = [ServerOut(host=h, port=465, security=Security.SSL) for h in smtp_hosts]
    smtp += [ServerOut(host=h, port=587, security=Security.STARTTLS) for h in smtp_hosts]
    note = f"guessed; resolving: {', '.join(resolved)}" if resolved else "guessed; not checked against DNS"
    return _Found(
        imap=imap[0], smtp=smtp[0], imap_backups=tuple(imap[1:]), smtp_backups=tuple(smtp[1:]), notes=(note,)
    )


def _provider_by_host(host: str, catalog: Catalog) -> Provider | None:
    for provider in catalog.providers:
        if any(server.host == host for server in provider.imap.servers):
            return provider
    return None


async def detect(
    email: str,
    *,
    offline: bool = False,
    resolver: dns.asyncresolver.Resolver | None = None,
    http: httpx.AsyncClient | None = None,
    autoconfig_base_url: str | None = None,
    catalog: Catalog | None = None,
) -> Detection:
    """Detect IMAP/SMTP settings for ``email`` (convenience wrapper around :class:`Detector`).

    Raises:
        ValueError: ``email`` is not an email address.
    """
    detector = Detector(
        resolver=resolver, http=http, autoconfig_base_url=autoconfig_base_url, catalog=catalog
    )
    return await detector.detect(email, offline=offline)
