"""``mail.send`` (a command: send one message from a bound mailbox) and ``mail.send_failed`` (its failure).

Both are keyed by ``mailbox_id`` of the sending mailbox, so every command of one mailbox is handled by one send
worker in order, and its pacing (daily cap, spacing between sends) has a single writer.

A command's life (:data:`SendState`): ``queued`` (stored, due at ``due_at``) or ``deferred`` (over today's cap,
or its campaign sending paused: due in a later window) -> ``sending`` (claimed by a worker, written before it
connects) -> ``sent`` (SMTP ``250`` after DATA; ``mail.sent`` published), ``failed`` (a reply code said no;
``mail.send_failed`` published) or ``unknown`` (the connection broke after the message data was sent and the
Sent folder could not prove either way; ``mail.send_failed`` with code ``unknown_outcome``). A command is never
submitted twice blindly: exactly-once submission is impossible over SMTP (RFC 1047), so an outcome in doubt is
resolved by looking the Message-ID up in the Sent folder (RFC 3501 section 6.4.4, ``UID SEARCH HEADER``), never
by resending.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import EmailAddress, Envelope, EventModel, MailboxId, UtcDatetime

SendState = Literal["queued", "deferred", "sending", "sent", "failed", "unknown"]
"""Where a command is; ``sent``, ``failed`` and ``unknown`` are final, ``deferred`` waits for a later window."""

CommandKind = Literal["reply", "campaign"]
"""``reply``: an answer written in the inbox (skips the spacing between sends, still counts against the daily
cap, and still goes while campaign sending is paused); ``campaign``: one message of a mass-email campaign."""

INLINE_ATTACHMENT_MAX_BYTES = 512 * 1024
"""Largest attachment carried inline (decoded bytes); base64 grows it by a third."""
INLINE_ATTACHMENTS_TOTAL_MAX_BYTES = 640 * 1024
"""Largest sum of inline attachments of one command (decoded bytes): the record stays under Kafka's default
1 MiB ``message.max.bytes`` with the text, HTML and headers."""
MAX_RECIPIENTS = 100
"""Recipients (To + Cc + Bcc) of one command: Gmail accepts at most 100 per message through smtp.gmail.com
(Google Workspace admin help, "Gmail sending limits in Google Workspace")."""

_COMMAND_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_ADDR = re.compile(r"^[^\s@<>\",;]{1,64}@[^\s@<>\",;]{1,253}$")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$")


def _no_line_breaks(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain line breaks (header injection)")
    return value


class Attachment(EventModel):
    """A file to attach: inline (``content_base64``, at most :data:`INLINE_ATTACHMENT_MAX_BYTES` decoded) or
    by reference to stored content (``content_ref``; not supported by send v1: such a command fails with
    ``attachment_unsupported``, naming the limit)."""

    filename: str = Field(min_length=1, max_length=255, description="File name shown to the recipient.")
    content_type: str = Field(
        default="application/octet-stream",
        description="MIME type (RFC 2045 type/subtype).",
        examples=["application/pdf"],
    )
    content_base64: str | None = Field(
        default=None,
        max_length=(INLINE_ATTACHMENT_MAX_BYTES * 4) // 3 + 4,
        description="The content, standard base64 (RFC 4648 section 4).",
    )
    content_ref: str | None = Field(
        default=None,
        max_length=1024,
        description="A reference to stored content for files over the inline limit (e.g. an object-store "
        "URL); refused by send v1 (attachment_unsupported).",
        examples=["s3://laifaxin-attachments/tenant-acme/catalog-2026.pdf"],
    )
    size_bytes: int | None = Field(default=None, ge=0, description="Decoded size, when known.")

    _filename = field_validator("filename")(_no_line_breaks)

    @field_validator("content_type")
    @classmethod
    def _type(cls, value: str) -> str:
        if not _CONTENT_TYPE.match(value):
            raise ValueError("content_type must look like type/subtype")
        return value.lower()

    @model_validator(mode="after")
    def _one_source(self) -> Attachment:
        if (self.content_base64 is None) == (self.content_ref is None):
            raise ValueError("exactly one of content_base64 and content_ref is required")
        if self.content_base64 is not None:
            try:
                raw = base64.b64decode(self.content_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("content_base64 is not valid base64") from None
            if len(raw) > INLINE_ATTACHMENT_MAX_BYTES:
                raise ValueError(f"inline attachments are limited to {INLINE_ATTACHMENT_MAX_BYTES} bytes")
        return self

    def content(self) -> bytes:
        """The decoded inline content (empty for a reference)."""
        return base64.b64decode(self.content_base64) if self.content_base64 is not None else b""


class SendCommand(Envelope):
    """Send one message from a bound mailbox (topic ``mail.send``).

    ``command_id`` is the idempotency key within the tenant: a command delivered again (Kafka redelivery, a
    client retrying its POST) with the same id is not sent again. ``tenant_id``/``user_id`` are the sender's;
    the mailbox must belong to ``tenant_id``, or be the platform's system mailbox (then they name the campaign
    owner, as on ``mail.sent``).
    """

    command_id: str = Field(
        description="Idempotency key chosen by the caller (1-128 of A-Z a-z 0-9 _ . : -).",
        examples=["cmd-0042"],
    )
    user_id: str = Field(min_length=1, max_length=64, description="The sending user.", examples=["u_42"])
    mailbox_id: MailboxId
    from_name: str = Field(
        default="",
        max_length=256,
        description="Display name of From (RFC 2047-encoded when not ASCII).",
        examples=["张伟 (Acme Lighting)"],
    )
    to: list[EmailAddress] = Field(default_factory=list, description="To recipients.")
    cc: list[EmailAddress] = Field(default_factory=list, description="Cc recipients.")
    bcc: list[EmailAddress] = Field(
        default_factory=list, description="Bcc recipients (envelope only, never in the headers)."
    )
    subject: str = Field(
        default="", max_length=998, description="Subject.", examples=["LED panels: quotation"]
    )
    text: str | None = Field(default=None, max_length=1_000_000, description="Plain-text body.")
    html: str | None = Field(default=None, max_length=1_000_000, description="HTML body.")
    attachments: list[Attachment] = Field(default_factory=list, max_length=20, description="Attachments.")
    in_reply_to: str | None = Field(
        default=None,
        max_length=998,
        description="Message-ID this answers (RFC 5322 section 3.6.4), with or without angle brackets.",
        examples=["CAFk2u7x+abc@mail.gmail.com"],
    )
    references: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Message-IDs of the thread, oldest first; the parent's id is appended when missing.",
    )
    kind: CommandKind = Field(description="reply or campaign.", examples=["campaign"])
    campaign_id: str | None = Field(
        default=None,
        max_length=128,
        description="The campaign, for kind campaign.",
        examples=["cmp_2026_11_led"],
    )
    not_before: UtcDatetime | None = Field(
        default=None, description="Do not send before this time (UTC).", examples=["2026-11-21T01:00:00Z"]
    )
    unsubscribe_url: str | None = Field(
        default=None,
        max_length=2000,
        description="HTTPS one-click unsubscribe endpoint for campaigns: sent as List-Unsubscribe with "
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058).",
        examples=["https://laifaxin.com/u/1/cmp_2026_11_led/ab12"],
    )

    @field_validator("command_id")
    @classmethod
    def _command_id(cls, value: str) -> str:
        if not _COMMAND_ID.match(value):
            raise ValueError("command_id must be 1-128 of A-Z a-z 0-9 _ . : -")
        return value

    _single_line = field_validator("from_name", "subject", "in_reply_to")(
        lambda v: v if v is None else _no_line_breaks(v)
    )

    @field_validator("references")
    @classmethod
    def _refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            _no_line_breaks(ref)
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("https://") or any(c in value for c in "\r\n <>")):
            raise ValueError("unsubscribe_url must be one https:// URL (RFC 8058 section 3.1)")
        return value

    @model_validator(mode="after")
    def _complete(self) -> SendCommand:
        recipients = [*self.to, *self.cc, *self.bcc]
        if not recipients:
            raise ValueError("at least one recipient (to, cc or bcc) is required")
        if len(recipients) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients per message")
        for addr in recipients:
            if not _ADDR.match(addr.email.strip()) or "\n" in addr.name or "\r" in addr.name:
                raise ValueError(f"not an email address: {addr.email[:80]!r}")
        if self.text is None and self.html is None:
            raise ValueError("text or html is required")
        inline = sum(len(a.content()) for a in self.attachments)
        if inline > INLINE_ATTACHMENTS_TOTAL_MAX_BYTES:
            raise ValueError(f"inline attachments total at most {INLINE_ATTACHMENTS_TOTAL_MAX_BYTES} bytes")
        return self

    def recipients(self) -> list[str]:
        """Envelope recipients (To, Cc, Bcc), stripped, in order, without repeats (case-insensitive)."""
        seen: dict[str, str] = {}
        for addr in (*self.to, *self.cc, *self.bcc):
            email = addr.email.strip()
            seen.setdefault(email.lower(), email)
        return list(seen.values())


SendStage = Literal["validate", "connect", "auth", "mail", "rcpt", "data", "sent_check"]
"""Where a send failed: the command itself, TCP/TLS, AUTH, MAIL FROM, RCPT TO, DATA (RFC 5321 section 3.3), or
the Sent-folder check that resolves an outcome in doubt."""


class SendFailed(Envelope):
    """A command that ended without being accepted (topic ``mail.send_failed``): ``state`` failed (a reply code
    or a refusal said no) or unknown (the outcome cannot be known; code ``unknown_outcome``).

    ``code`` is a code of the shared SMTP error taxonomy (``recipient_unknown``, ``daily_quota_reached``,
    ``content_rejected_spam``, ``auth_failed``...) or one of send's own refusals (``invalid_command``,
    ``mailbox_unknown``, ``attachment_unsupported``), with its message and fix in English and Chinese and the
    provider's own text. Consumers are idempotent on ``event_id`` (derived from the command).
    """

    command_id: str = Field(max_length=128, description="The failed command.", examples=["cmd-0042"])
    user_id: str = Field(min_length=1, max_length=64, description="The sending user.", examples=["u_42"])
    mailbox_id: MailboxId
    state: Literal["failed", "unknown"] = Field(
        description="Final state of the command.", examples=["failed"]
    )
    code: str = Field(max_length=64, description="Stable error code.", examples=["daily_quota_reached"])
    message: str = Field(
        default="",
        max_length=2000,
        description="What happened (English).",
        examples=["The provider's daily sending limit for this mailbox is reached."],
    )
    fix: str = Field(
        default="",
        max_length=2000,
        description="How to fix it (English).",
        examples=[
            "Sending resumes in the next day's window; spread campaigns over more days or more mailboxes."
        ],
    )
    message_zh: str = Field(
        default="",
        max_length=2000,
        description="What happened (Chinese).",
        examples=["该邮箱已达到服务商的每日发信上限。"],
    )
    fix_zh: str = Field(
        default="",
        max_length=2000,
        description="How to fix it (Chinese).",
        examples=["将在次日的发送窗口恢复发送；请把群发分散到更多天或更多邮箱。"],
    )
    server_text: str | None = Field(
        default=None,
        max_length=2000,
        description="The server's reply, as sent (decoded, credentials redacted).",
        examples=["554 MI:STC 163 smtp10,DsCowAD3l6pQ8gVnTL0XAA--.1 1728440913"],
    )
    smtp_code: int | None = Field(default=None, description="SMTP reply code, when one came.", examples=[554])
    stage: SendStage = Field(description="Where it failed.", examples=["data"])
    retryable: bool = Field(
        default=False, description="Sending the same command later may succeed.", examples=[True]
    )
    refused_recipients: list[str] = Field(
        default_factory=list, description="Recipients the server refused at RCPT TO."
    )
    kind: CommandKind = Field(description="reply or campaign.", examples=["campaign"])
    campaign_id: str | None = Field(default=None, max_length=128, description="The campaign, if any.")
    message_id: str | None = Field(
        default=None, max_length=998, description="The Message-ID the message carried, without brackets."
    )


class SendStatus(EventModel):
    """A command's state as the send API reports it (``GET /v1/send/{command_id}``)."""

    command_id: str
    mailbox_id: str
    kind: CommandKind
    state: SendState
    due_at: UtcDatetime | None = Field(default=None, description="queued/deferred: when it will be sent.")
    reason: str | None = Field(
        default=None,
        description="deferred: why (daily_cap, sending_paused, rate_limited, mailbox_unknown).",
        examples=["daily_cap"],
    )
    message_id: str | None = Field(default=None, description="The Message-ID it carries, without brackets.")
    provider_message_id: str | None = Field(default=None, description="The id the server reported.")
    attempts: int = Field(default=0, description="Submissions started (a 4xx retried counts each).")
    error: dict[str, object] | None = Field(
        default=None, description="failed/unknown: code, texts, server text."
    )
    sent_at: UtcDatetime | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
