"""Mailbox lifecycle events, produced by binding and consumed by sync (and anyone else who cares).

Topics: ``mailbox.verified``, ``mailbox.updated``, ``mailbox.removed``; all keyed by ``mailbox_id`` so that
every event of one mailbox lands on one partition, in order, and so on the sync shard that owns it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import EncryptedCredential, Envelope, EventModel, MailboxId, ServerEndpoint, UtcDatetime

MIN_SYNC_INTERVAL_SECONDS = 180
"""Shortest polling interval a user may choose (providers rate-limit; product docs say 3 minutes)."""
DEFAULT_SYNC_INTERVAL_SECONDS = 300
"""Default polling interval for folders not under IDLE (5 minutes)."""


class SyncSettings(EventModel):
    """How sync treats this mailbox. Changing these needs no re-verification."""

    enabled: bool = Field(default=True, description="Whether the mailbox is synced at all.", examples=[True])
    interval_seconds: int = Field(
        default=DEFAULT_SYNC_INTERVAL_SECONDS,
        ge=MIN_SYNC_INTERVAL_SECONDS,
        le=86400,
        description="Polling interval in seconds for folders not under IDLE (minimum 180).",
        examples=[300],
    )
    initial_window_days: int = Field(
        default=30,
        ge=0,
        le=365,
        description="At first sync, mail younger than this is published with initial_sync=true; older is not.",
        examples=[30],
    )


class BackupServers(EventModel):
    """The provider's backup server pair (NetEase Enterprise: ``imap.qiye.163.com`` / ``smtp.qiye.163.com``
    behind the recommended ``hwhz`` pair), with the password sealed a second time for it.

    Sync moves to it when the recommended servers answer ``ERR.LOGIN.DOMAINNOTEXIST`` or cannot be reached, and
    goes back after ``SYNC_BACKUP_RETURN_SECONDS``. The envelope's associated data names the backup servers (with
    the mailbox's logins), so it opens only for them.
    """

    imap: ServerEndpoint = Field(description="Backup incoming (IMAP) server.")
    smtp: ServerEndpoint = Field(description="Backup outgoing (SMTP submission) server.")
    credential: EncryptedCredential = Field(description="The password, sealed for the backup servers.")


class MailboxVerified(Envelope):
    """Full mailbox configuration after a successful verify-and-save (topic ``mailbox.verified``).

    Emitted on create, on an edit that changed address, password or servers, and on re-verify. The
    credential travels only as an :class:`EncryptedCredential`.
    """

    mailbox_id: MailboxId
    user_id: str = Field(
        min_length=1, max_length=64, description="Laifaxin user who owns it.", examples=["u_42"]
    )
    email: str = Field(max_length=320, description="The mailbox address.", examples=["sales@163.com"])
    nickname: str = Field(
        default="", max_length=128, description="User's label for it.", examples=["Sales 163"]
    )
    provider_id: str = Field(
        description="Catalog id of the detected provider, or 'custom'.", examples=["netease163"]
    )
    username: str = Field(
        max_length=320,
        description="Login name the servers accepted (full address or local part).",
        examples=["sales@163.com"],
    )
    smtp_username: str | None = Field(
        default=None,
        max_length=320,
        description="Login name the SMTP server accepted, when it differs from username (None: the same).",
        examples=[None],
    )
    imap: ServerEndpoint = Field(description="Incoming (IMAP) server.")
    smtp: ServerEndpoint = Field(description="Outgoing (SMTP submission) server.")
    credential: EncryptedCredential = Field(
        description="The password, sealed; never plaintext. With aad v2 it opens only for this tenant, mailbox, "
        "imap and smtp host/port/security, username and smtp_username: a consumer opens it with the settings it "
        "is about to use, so an event pointing the envelope at other servers fails to decrypt."
    )
    imap_id_required: bool = Field(
        default=False,
        description="Send IMAP ID (RFC 2971) before SELECT; NetEase refuses SELECT without it.",
        examples=[True],
    )
    sync: SyncSettings = Field(default_factory=SyncSettings, description="Sync settings.")
    is_system: bool = Field(
        default=False, description="The platform's own system mailbox (mass-email replies).", examples=[False]
    )
    credential_expires_at: UtcDatetime | None = Field(
        default=None,
        description="When the authorization password lapses (NetEase Enterprise), if known.",
        examples=["2027-05-21T00:00:00Z"],
    )
    backup: BackupServers | None = Field(
        default=None,
        description="The provider's backup server pair, when it has one and the recommended pair is in use "
        "(NetEase Enterprise); None otherwise. Optional: consumers that ignore it use imap/smtp only.",
        examples=[None],
    )
    auth: Literal["basic", "oauth2"] = Field(
        default="basic",
        description="How to log in: basic (the password in credential: IMAP LOGIN, SMTP AUTH PLAIN/LOGIN), or oauth2: the credential is "
        "an OAuth 2.0 access token for SASL XOAUTH2 / OAUTHBEARER (RFC 7628) as the mailbox address. Binding "
        "refreshes it ahead of access_token_expires_at and sends mailbox.verified again with the new one.",
        examples=["oauth2"],
    )
    access_token_expires_at: UtcDatetime | None = Field(
        default=None,
        description="With auth oauth2: when the access token in credential expires (the provider's "
        "expires_in); None otherwise.",
        examples=["2026-12-07T23:30:00Z"],
    )


class MailboxUpdated(Envelope):
    """Settings changed that need no re-verification (topic ``mailbox.updated``)."""

    mailbox_id: MailboxId
    nickname: str = Field(default="", max_length=128, description="User's label.", examples=["Sales 163"])
    sync: SyncSettings = Field(description="The new sync settings (complete, not a patch).")


class MailboxRemoved(Envelope):
    """The mailbox was unbound (topic ``mailbox.removed``); consumers drop their state for it."""

    mailbox_id: MailboxId
    reason: Literal["user", "tenant_deleted", "admin"] = Field(
        default="user", description="Who removed it.", examples=["user"]
    )


SyncState = Literal[
    "ok",
    "syncing",
    "auth_failed",
    "throttled",
    "unreachable",
    "tls_error",
    "uidvalidity_reset",
    "stopped",
    "error",
]


class MailboxSyncStatus(Envelope):
    """A sync state transition of one mailbox (topic ``mailbox.sync_status``), sent on change, not per poll.

    While a mailbox stays ``ok``, sync sends its ``ok`` again at most once per ``SYNC_STATUS_REFRESH_SECONDS``
    (15 minutes by default) with a newer ``last_synced_at``, so a "last sync time" keeps moving: consumers
    must accept the same state again.

    ``error_code`` is a code of the shared IMAP/SMTP error taxonomy, the same that binding reports, with its
    message and fix in English and Chinese.

    ``syncing`` reports a long catch-up (the first sync of a mailbox's initial window, or its return after an
    outage): sent when a sync pass finds at least ``SYNC_PROGRESS_MIN_MESSAGES`` (200) messages to fetch, then
    at most every ``SYNC_PROGRESS_INTERVAL_SECONDS`` (10 s) while the numbers move, and followed by ``ok`` (or an
    error state) when the pass ends; mail arriving a few messages at a time never causes it. Only ``syncing``
    carries ``progress_done`` / ``progress_total`` (and ``progress_eta_seconds`` once a rate is measured);
    every other state has them None. A ``syncing`` that is not followed by another status for long means the
    worker stopped mid-catch-up: the next pass of whoever syncs the mailbox reports again.
    """

    mailbox_id: MailboxId
    source: Literal["sync", "send"] = Field(
        default="sync",
        description="Who reports: sync (receiving: IMAP state) or send (sending through SMTP: state ok when "
        "sending works, error with error_code sending_paused while the bounce-rate guard holds campaigns back, "
        "auth_failed when the SMTP server refuses the password). Consumers keep the two apart: a send status "
        "never replaces the sync state.",
        examples=["sync"],
    )
    state: SyncState = Field(description="New state.", examples=["auth_failed"])
    folder: str | None = Field(default=None, description="Folder concerned, when one.", examples=["INBOX"])
    error_code: str | None = Field(default=None, description="Taxonomy code.", examples=["auth_failed"])
    message: str = Field(
        default="",
        max_length=2000,
        description="What happened (English).",
        examples=["The server refused the password."],
    )
    fix: str = Field(
        default="",
        max_length=2000,
        description="How to fix it (English).",
        examples=["Generate a new authorization code and update the mailbox."],
    )
    message_zh: str = Field(
        default="", max_length=2000, description="What happened (Chinese).", examples=["服务器拒绝了密码。"]
    )
    fix_zh: str = Field(
        default="",
        max_length=2000,
        description="How to fix it (Chinese).",
        examples=["请重新生成授权码并更新邮箱。"],
    )
    server_text: str | None = Field(
        default=None,
        max_length=500,
        description="The server's own reply behind error_code (passwords redacted), when there was one.",
        examples=["NO [EXPIRED] That password isn't valid any more"],
    )
    last_synced_at: UtcDatetime | None = Field(
        default=None,
        description="When the last successful sync pass ended (any folder); None when the reporting worker has "
        "not completed one yet.",
        examples=["2026-11-21T08:29:55Z"],
    )
    retry_at: UtcDatetime | None = Field(
        default=None, description="When sync will try again, if it will.", examples=["2026-11-21T08:35:00Z"]
    )
    progress_done: int | None = Field(
        default=None,
        ge=0,
        description="With state syncing: messages of this catch-up handled so far (published on mail.received, "
        "or set aside: quarantined, already indexed, outside the initial window, expunged before the fetch); "
        "never above progress_total. None in other states.",
        examples=[1200],
    )
    progress_total: int | None = Field(
        default=None,
        ge=0,
        description="With state syncing: messages this catch-up found to fetch, over all folders of the sync "
        "pass (INBOX, Junk, user folders). Set when it starts; it grows only if the same pass finds more (mail that arrived "
        "meanwhile, or the next folder's backlog). None in other states.",
        examples=[4000],
    )
    progress_eta_seconds: float | None = Field(
        default=None,
        ge=0,
        description="With state syncing: estimated seconds until the catch-up ends (ETA), "
        "(progress_total - progress_done) divided by the rate measured since it started; None until a "
        "rate is measured (the first syncing status of a catch-up) and in other states.",
        examples=[52.5],
    )
