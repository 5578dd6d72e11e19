"""Typed shape of the provider catalog (``catalog.yaml``), validated strictly on load.

Every model refuses unknown keys (``extra="forbid"``) and is immutable, so a typo in the data file fails the
load (and the test suite) instead of silently dropping a setting. Field meanings follow the research notes
``reference/providers.md`` §2 (provider table) and the Thunderbird ISPDB vocabulary (§1: ``socketType``
SSL|STARTTLS, ``%EMAILADDRESS%``/``%EMAILLOCALPART%``, ``password-cleartext``/``OAuth2``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Protocol = Literal["imap", "smtp"]
"""The two protocols the platform speaks; POP3 is refused (ARCHITECTURE.md, "What the platform does")."""

_HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)
# An MX pattern label: letters/digits/hyphen plus fnmatch's ``*``, ``?`` and ``[...]`` classes.
_MX_LABEL_RE = re.compile(r"^[a-z0-9*?\[\]-]+$")


def _hostname(value: str) -> str:
    if not _HOST_RE.match(value):
        raise ValueError(f"not a lower-case DNS host name: {value!r}")
    return value


def _mx_pattern(value: str) -> str:
    labels = value.split(".")
    if len(labels) < 2 or not all(label and _MX_LABEL_RE.match(label) for label in labels):
        raise ValueError(f"not an MX pattern (dot-separated labels, fnmatch wildcards per label): {value!r}")
    if any("*" in label for label in labels[1:]) and labels[-1] == "*":
        raise ValueError(f"an MX pattern may not end in a wildcard label: {value!r}")
    return value


Hostname = Annotated[str, AfterValidator(_hostname)]
"""A lower-case DNS host name with at least two labels."""

MxPattern = Annotated[str, AfterValidator(_mx_pattern)]
"""An MX host pattern, matched label by label (see :func:`laifaxin_shared.providers.catalog.mx_matches`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Security(StrEnum):
    """How TLS is used on the connection (ISPDB ``socketType``; RFC 8314 implicit TLS vs RFC 3207/2595)."""

    SSL = "ssl"
    """Implicit TLS from the first byte (IMAP 993, SMTP 465)."""
    STARTTLS = "starttls"
    """Plain connect, then upgrade with STARTTLS (IMAP 143, SMTP 587)."""


class PasswordType(StrEnum):
    """What the user types into the password field (providers.md §2, "Password types")."""

    APP_PASSWORD = "app_password"  # noqa: S105  # enum value naming a kind of password, not a secret
    """AP: an app password, or a Chinese authorization code (授权码, 客户端授权密码, 独立密码, 专用密码)."""
    LOGIN_PASSWORD = "login_password"  # noqa: S105  # enum value naming a kind of password, not a secret
    """LP: the normal web-mail login password."""
    OAUTH2 = "oauth2"
    """No password works: XOAUTH2 is required."""


class AuthMethod(StrEnum):
    """How the client authenticates on one protocol (ISPDB ``authentication``)."""

    PASSWORD = "password"  # noqa: S105  # enum value naming a kind of password, not a secret
    OAUTH2 = "oauth2"


class UsernameForm(StrEnum):
    """Login name form (ISPDB ``%EMAILADDRESS%`` / ``%EMAILLOCALPART%``)."""

    EMAIL = "email"
    LOCAL_PART = "local_part"


class QuirkCode(StrEnum):
    """Provider behaviours the verifier, sync or the UI must act on (providers.md §2 notes, §3, §5)."""

    IMAP_ID_REQUIRED = "imap_id_required"
    """Send IMAP ``ID`` after LOGIN or SELECT fails with "Unsafe Login" (NetEase, providers.md §3)."""
    AUTH_CODE_EXPIRES = "auth_code_expires"
    """Authorization passwords carry an expiry date; store it and warn before it lapses (product page 204)."""
    ENABLE_PROTOCOL_FIRST = "enable_protocol_first"
    """IMAP/SMTP must be switched on in the web settings or admin console before any client can log in."""
    STRIP_PASSWORD_WHITESPACE = "strip_password_whitespace"  # noqa: S105  # enum value naming a kind of password, not a secret
    """App passwords are shown with spaces; strip them (freescout#5401, mailcore2#1332)."""
    MAX_CONNECTIONS = "max_connections"
    """A per-account simultaneous-connection cap (Gmail 15)."""
    SMTP_FROM_MUST_MATCH_LOGIN = "smtp_from_must_match_login"
    """SMTP refuses a MAIL FROM other than the authenticated address (QQ ``501``)."""
    PHONE_BINDING_REQUIRED = "phone_binding_required"
    """A phone number must be bound (SMS verification) before a code can be generated."""
    IP_RESTRICTION = "ip_restriction"
    """An IP whitelist / region restriction may block our servers (NetEase Enterprise IPDENY, Sohu)."""
    ADMIN_MAY_DISABLE_IMAP = "admin_may_disable_imap"
    """A business admin can disable IMAP or restrict clients for the whole domain."""
    PASSWORD_AUTH_SUNSET = "password_auth_sunset"  # noqa: S105  # enum value naming a kind of password, not a secret
    """Password (basic) auth is being retired on a published timeline."""
    FREE_PLAN_MAY_REFUSE_IMAP = "free_plan_may_refuse_imap"
    """IMAP may be unavailable on the free plan."""
    BACKUP_SERVERS = "backup_servers"
    """The provider publishes a backup server pair to try when the preferred one fails."""
    DOCS_DISAGREE = "docs_disagree"
    """Public sources disagree on a setting; the catalog's choice and the alternative are explained."""


class Text(_Strict):
    """One user-facing text in English and Simplified Chinese."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class Server(_Strict):
    """One IMAP or SMTP endpoint."""

    host: Hostname
    port: int = Field(ge=1, le=65535)
    security: Security
    note: Text | None = None


class ProtocolSettings(_Strict):
    """The preferred server for one protocol, the backups to try in order, and how to authenticate."""

    host: Hostname
    port: int = Field(ge=1, le=65535)
    security: Security
    auth: AuthMethod = AuthMethod.PASSWORD
    backups: tuple[Server, ...] = ()
    """Tried in order when the preferred server is unreachable or says so (NetEase ``DOMAINNOTEXIST``)."""

    @property
    def primary(self) -> Server:
        """The preferred endpoint as a :class:`Server`."""
        return Server(host=self.host, port=self.port, security=self.security)

    @property
    def servers(self) -> tuple[Server, ...]:
        """Preferred endpoint first, then the backups."""
        return (self.primary, *self.backups)


class UsernamePolicy(_Strict):
    """Which login name to send, and whether the other form may be tried after an auth failure."""

    form: UsernameForm = UsernameForm.EMAIL
    fallback_protocols: tuple[Protocol, ...] = ()
    """Protocols on which the other form is tried once after ``auth_failed`` (QQ and iCloud IMAP, §5.4)."""

    def candidates(self, email: str, protocol: Protocol) -> tuple[str, ...]:
        """Login names to try in order for ``email`` on ``protocol``; one or two entries."""
        local = email.rsplit("@", 1)[0]
        first, other = (email, local) if self.form is UsernameForm.EMAIL else (local, email)
        if protocol in self.fallback_protocols and other != first:
            return (first, other)
        return (first,)


class PasswordHelp(_Strict):
    """What kind of password the user enters and where they make it."""

    type: PasswordType
    label: Text
    """The provider's own name for it, e.g. "client authorization code" / 客户端授权码."""
    where: Text
    """Where the user generates or finds it (menu path or URL)."""


class Quirk(_Strict):
    """A provider behaviour with a machine code and an explanation for people."""

    code: QuirkCode
    text: Text


class SendingLimits(_Strict):
    """How much mail a mailbox of this provider may send, and whether its server files a Sent copy.

    ``daily_cap`` is the provider's published figure (or a reported one, as ``source`` says); None where the
    provider publishes none. ``warmup``: new mailboxes follow Laifaxin's warm-up ramp (50 a day in week 1, up
    to 300; laifa.xin pages 107 and 204 for NetEase), and the cap is the lower of the two.
    """

    daily_cap: int | None = Field(default=None, ge=1)
    unit: Literal["messages", "recipients"] = "messages"
    """What the cap counts: Microsoft 365 counts recipients, the others messages."""
    warmup: bool = True
    files_sent_copy: bool | None = None
    """The server puts SMTP-submitted mail in Sent itself (Gmail, Outlook/Microsoft 365, Zoho): no APPEND, or
    the user gets two copies. None: unverified, a copy is appended."""
    source: str = Field(min_length=1)


class Provider(_Strict):
    """One catalog entry (providers.md §2 row; sources cited in ``sources``)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: Text
    kind: Literal["personal", "business"]
    domains: tuple[Hostname, ...] = ()
    """Email domains served by this provider; empty for custom-domain business mail found by MX."""
    domain_suffixes: tuple[Hostname, ...] = ()
    """Parent domains whose every subdomain is this provider's (``<tenant>.onmicrosoft.com``), label-matched."""
    mx_patterns: tuple[MxPattern, ...] = ()
    imap: ProtocolSettings
    smtp: ProtocolSettings
    username: UsernamePolicy = UsernamePolicy()
    password: PasswordHelp
    oauth2_available: bool = False
    """The provider offers XOAUTH2 even where a password still works (ISPDB lists ``OAuth2``)."""
    oauth: OAuthSignIn | None = None
    """Sign-in with the provider (OAuth 2.0) that Laifaxin can run; None when it cannot."""
    quirks: tuple[Quirk, ...] = ()
    sending: SendingLimits | None = None
    """Daily sending cap and Sent-copy behaviour; None: unpublished (warm-up ramp, copy appended)."""
    sources: tuple[str, ...] = Field(min_length=1)
    """Short source names from providers.md ([TB], [DC], [LF 204], product page …) for the facts above."""

    @property
    def auth(self) -> AuthMethod:
        """``oauth2`` if either protocol requires it (a mailbox needs both), else ``password``."""
        if AuthMethod.OAUTH2 in (self.imap.auth, self.smtp.auth):
            return AuthMethod.OAUTH2
        return AuthMethod.PASSWORD

    def settings(self, protocol: Protocol) -> ProtocolSettings:
        """The settings of ``protocol``."""
        return self.imap if protocol == "imap" else self.smtp

    def has_quirk(self, code: QuirkCode) -> bool:
        """Whether the entry carries quirk ``code``."""
        return any(quirk.code is code for quirk in self.quirks)

    @model_validator(mode="after")
    def _consistent(self) -> Provider:
        if not self.domains and not self.mx_patterns and self.kind == "personal":
            raise ValueError(f"{self.id}: a personal provider needs at least one domain")
        if (self.password.type is PasswordType.OAUTH2) != (self.imap.auth is AuthMethod.OAUTH2):
            raise ValueError(f"{self.id}: password.type oauth2 must go with imap.auth oauth2")
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"{self.id}: duplicate domain")
        return self


class OAuthSignIn(_Strict):
    """How a provider's users sign in with OAuth 2.0 / OpenID Connect for IMAP and SMTP (XOAUTH2).

    ``identity``: which sign-in service (``microsoft``: the Microsoft identity platform v2.0; ``google``);
    the client id, secret and authority come from binding's settings for that service, so tests point it at a
    local server. ``authority``: the OpenID Connect issuer whose ``/.well-known/openid-configuration`` gives the
    authorization, token and JWKS endpoints. ``scopes``: what the authorization request asks for, exactly as the
    provider documents them. ``authorize_params``: extra query parameters of the authorization request.
    """

    identity: Literal["microsoft", "google"]
    authority: str
    scopes: tuple[str, ...] = Field(min_length=1)
    authorize_params: dict[str, str] = {}


class Catalog(_Strict):
    """The whole data file: a format version and the providers."""

    version: Literal[1]
    providers: tuple[Provider, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        ids = [p.id for p in self.providers]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate provider id")
        seen: dict[str, str] = {}
        for provider in self.providers:
            for domain in provider.domains:
                if domain in seen:
                    raise ValueError(f"domain {domain} is listed by both {seen[domain]} and {provider.id}")
                seen[domain] = provider.id
        return self
