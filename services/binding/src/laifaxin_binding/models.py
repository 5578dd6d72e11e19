"""Request and response shapes of the binding API (they are also the inputs and outputs of the domain functions).

No response model has a password or credential field: the stored :class:`EncryptedCredential` is never
rendered, and request passwords are :class:`pydantic.SecretStr` (``repr`` shows ``**********``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from laifaxin_shared.api import ApiError
from laifaxin_shared.events.mailbox import DEFAULT_SYNC_INTERVAL_SECONDS, MIN_SYNC_INTERVAL_SECONDS

SecurityIn = Literal["ssl", "starttls"]

EMAIL_PATTERN = r"^[^@\s]+@(?:[\w-]{1,63}\.)*[\w-]{1,63}\.?$"
"""What the service takes as an address: a local part without ``@`` or spaces, ``@``, and a domain of labels of 1-63
letters, digits or hyphens (Unicode letters are IDNA-encoded, RFC 5891), one trailing dot allowed; anything else is
422 ``invalid_email``. (Not JSON Schema's ``format: email``: that is RFC 5321's ASCII form, and the service also
takes internationalized addresses, RFC 6531.)"""
DOMAIN_PATTERN = r"^(?:[\w-]{1,63}\.)*[\w-]{1,63}\.?$"
"""An email domain as :data:`EMAIL_PATTERN` takes it."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ServerIn(_In):
    """An IMAP or SMTP server the user typed (overrides the catalog)."""

    host: str = Field(min_length=1, max_length=253, examples=["imap.163.com"])
    port: int = Field(ge=1, le=65535, strict=True, examples=[993])
    security: SecurityIn = Field(description="ssl = implicit TLS (993/465); starttls (143/587).")


class SyncIn(_In):
    """Sync settings. ``interval_seconds`` under 180 is refused with code ``sync_interval_too_short``."""

    enabled: bool = Field(default=True, strict=True)
    interval_seconds: int = Field(
        default=DEFAULT_SYNC_INTERVAL_SECONDS,
        strict=True,
        ge=1,
        le=86400,
        description=f"Polling interval, seconds; minimum {MIN_SYNC_INTERVAL_SECONDS} (providers rate-limit).",
        examples=[300],
    )
    initial_window_days: int = Field(default=30, ge=0, le=365, strict=True)


class MailboxCreate(_In):
    """Bind a mailbox: verified against the servers before anything is saved."""

    email: str = Field(
        min_length=3,
        max_length=320,
        pattern=EMAIL_PATTERN,
        examples=["sales@163.com"],
    )
    password: SecretStr = Field(
        description="App password / authorization code / login password, as typed (its ends are trimmed; inner spaces "
        "are removed only from an app password shown in groups, such as Gmail's 4 groups of 4 letters).",
    )
    nickname: str = Field(default="", max_length=128, examples=["Sales 163"])
    provider_id: str | None = Field(
        default=None, description="Catalog id; detected from the domain if absent."
    )
    incoming_protocol: str = Field(
        default="imap", description="Only imap; pop3 is refused (code pop3_unsupported)."
    )
    imap: ServerIn | None = None
    smtp: ServerIn | None = None
    sync: SyncIn = Field(default_factory=SyncIn)
    credential_expires_at: AwareDatetime | None = Field(
        default=None, description="When the authorization password lapses (NetEase Enterprise shows it)."
    )


class MailboxPatch(_In):
    """Edit a mailbox. Changing email, password, provider or servers re-verifies first (and changes nothing
    when that fails); nickname, sync settings and the expiry date alone are saved without verification. A change
    that would log in to another host or port, or with another login name, needs ``password`` again (code
    ``password_required``): the stored password is never sent anywhere new."""

    email: str | None = Field(
        default=None,
        min_length=3,
        max_length=320,
        pattern=EMAIL_PATTERN,
    )
    password: SecretStr | None = None
    nickname: str | None = Field(default=None, max_length=128)
    provider_id: str | None = None
    incoming_protocol: str | None = None
    imap: ServerIn | None = None
    smtp: ServerIn | None = None
    sync: SyncIn | None = None
    credential_expires_at: AwareDatetime | None = None

    def needs_verification(self) -> bool:
        """True when a field that decides how we log in is present."""
        return any(
            v is not None
            for v in (
                self.email,
                self.password,
                self.provider_id,
                self.incoming_protocol,
                self.imap,
                self.smtp,
            )
        )


class ServerOut(BaseModel):
    host: str
    port: int
    security: SecurityIn


class SyncOut(BaseModel):
    enabled: bool
    interval_seconds: int
    initial_window_days: int


class SyncProgress(BaseModel):
    """How far a long catch-up has come (sync's ``syncing`` status: the first sync of the initial window, or
    the mail of an outage), in messages."""

    done: int = Field(ge=0, description="Messages of the catch-up handled so far.", examples=[1200])
    total: int = Field(ge=0, description="Messages the catch-up found to fetch.", examples=[4000])
    eta_seconds: float | None = Field(
        default=None, ge=0, description="Estimated seconds left at the rate measured so far.", examples=[95.0]
    )


class LastError(BaseModel):
    """The most recent failure (verification or sync), with what to do about it."""

    code: str
    message: str
    fix: str
    message_zh: str = ""
    fix_zh: str = ""
    at: datetime | None = None


class SendingOut(BaseModel):
    """Sending through the mailbox, as the send service last reported it (beside the sync state)."""

    status: str = Field(
        description="normal, or the code: sending_paused (the bounce-rate guard holds campaigns back; replies "
        "still go), auth_failed (the SMTP server refused the password)...",
        examples=["normal", "sending_paused"],
    )
    message: str = ""
    fix: str = ""
    message_zh: str = ""
    fix_zh: str = ""
    at: datetime | None = None


class MailboxOut(BaseModel):
    """A bound mailbox as the API shows it. ``status`` is ``normal`` or the taxonomy code of the failure."""

    id: str
    email: str
    nickname: str
    provider_id: str
    username: str
    imap: ServerOut
    smtp: ServerOut
    sync: SyncOut
    status: str = Field(examples=["normal", "auth_failed", "oauth_revoked"])
    auth: str = Field(
        default="basic",
        description="basic (an app password / authorization code), or oauth2 (bound by signing in with Microsoft or Google; status oauth_revoked "
        "asks the user to sign in again).",
        examples=["oauth2"],
    )
    state: str = Field(description="Sync state from mailbox.sync_status (ok, auth_failed, throttled...).")
    last_synced_at: datetime | None = None
    progress: SyncProgress | None = Field(
        default=None, description="While state is syncing: how far the catch-up has come; None otherwise."
    )
    last_error: LastError | None = None
    sending: SendingOut | None = Field(
        default=None, description="Sending status from the send service; None until it reports one."
    )
    credential_expires_at: datetime | None = None
    credential_expiring: bool = Field(
        default=False, description="The authorization password lapses within the warning window (or has)."
    )
    verified_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class MailboxList(BaseModel):
    items: list[MailboxOut]
    limit: int = Field(description="How many mailboxes this tenant may bind.")


class DetectIn(_In):
    email: str = Field(
        min_length=3,
        max_length=320,
        pattern=EMAIL_PATTERN,
        examples=["sales@163.com"],
    )
    offline: bool = Field(default=False, strict=True, description="Catalog only: no DNS, no HTTP.")


class ErrorOut(ApiError):
    """Every error response: the platform's error model (:class:`~laifaxin_shared.api.ApiError`) with the fix and
    the Chinese texts always present, and the fields of binding's own errors."""

    fix: str
    message_zh: str
    fix_zh: str
    protocol: str | None = None
    server_text: str | None = None
    suggestion: str | None = None
    errors: list[dict[str, object]] | None = None
    tried: list[dict[str, str]] | None = Field(
        default=None,
        description="servers_required after detection: each lookup step (catalog, mx, autoconfig, srv, dns) "
        "with what it found.",
    )
    new_destinations: list[str] | None = Field(
        default=None,
        description="password_required: the servers (imap/smtp host:port) and login names the edit would send "
        "the stored password to that it was never verified with; send the password with the edit.",
    )
    detected: dict[str, object] | None = Field(
        default=None,
        description="servers_need_confirmation: the detected source, imap and smtp servers, and the hosts "
        "outside the address's domain and the catalog; send them as imap and smtp to confirm.",
    )
