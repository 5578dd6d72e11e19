"""Message events: ``mail.received`` (sync -> classifier, others) and ``mail.classified`` (classifier ->
notify, others). Both keyed by ``mailbox_id``.

A message is identified by :class:`MessageRef`: (mailbox, folder, UIDVALIDITY, UID) per RFC 3501 section
2.3.1.1, plus its Message-ID (RFC 5322 section 3.6.4) for de-duplication across folders.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from .base import EmailAddress, Envelope, EventModel, MailboxId, UtcDatetime

TEXT_CAP_CHARS = 32_768
"""Most characters of body text an event carries; the stored raw message has the rest."""


class MessageRef(EventModel):
    """Where a message lives on the IMAP server, and its RFC 5322 identity."""

    mailbox_id: MailboxId
    folder: str = Field(description="IMAP folder name, decoded from modified UTF-7.", examples=["INBOX"])
    uidvalidity: int = Field(
        ge=1, le=2**32 - 1, description="UIDVALIDITY of the folder (RFC 3501 2.3.1.1).", examples=[1732170000]
    )
    uid: int = Field(ge=1, le=2**32 - 1, description="UID of the message in the folder.", examples=[4711])
    message_id: str = Field(
        default="",
        max_length=998,
        description="Message-ID header without angle brackets; empty when the message has none.",
        examples=["CAFk2u7x+abc@mail.gmail.com"],
    )

    def natural_key(self) -> str:
        """``mailbox_id/folder/UIDVALIDITY/UID``: the message's identity on its server (RFC 3501 2.3.1.1)."""
        return f"{self.mailbox_id}/{self.folder}/{self.uidvalidity}/{self.uid}"

    def derived_event_id(self, topic: str) -> uuid.UUID:
        """A deterministic event id for the event ``topic`` emits about this message (UUID5).

        Re-publishing after a crash or a redelivery then yields the same ``event_id``, so consumers that are
        idempotent on ``event_id`` see one event per message.
        """
        return uuid.uuid5(_EVENT_NAMESPACE, f"{topic}|{self.natural_key()}")


_EVENT_NAMESPACE = uuid.UUID("6f1c2a9e-2f6b-5f0e-9a51-3b7c5e1d4a20")


class AttachmentMeta(EventModel):
    """An attachment's metadata; the content stays in the stored raw message."""

    filename: str = Field(
        default="", max_length=1024, description="Decoded file name.", examples=["PI-2026-118.pdf"]
    )
    content_type: str = Field(description="MIME type.", examples=["application/pdf"])
    size_bytes: int = Field(ge=0, description="Decoded size in bytes.", examples=[48213])
    inline: bool = Field(
        default=False, description="Content-Disposition inline (e.g. a signature logo).", examples=[False]
    )


FolderRole = Literal["inbox", "junk", "other"]


class MailReceived(Envelope):
    """One new message synced from a bound mailbox (topic ``mail.received``).

    Carries what classification and alerting need; the raw RFC 5322 bytes stay in sync's store at
    ``raw_ref``. ``headers`` holds only the classification-relevant header fields (names lowercased, values
    decoded, repeated fields joined with ``"\\n"``): Auto-Submitted (RFC 3834), X-Autoreply,
    X-Autorespond, X-Auto-Response-Suppress, Precedence, List-Id, List-Unsubscribe (RFC 2369/2919),
    Return-Path, Content-Type, X-Failed-Recipients and the like.
    """

    user_id: str = Field(min_length=1, max_length=64, description="Owner of the mailbox.", examples=["u_42"])
    ref: MessageRef = Field(description="Where the message lives.")
    folder_role: FolderRole = Field(
        default="inbox", description="INBOX, the Junk folder, or other.", examples=["inbox"]
    )
    initial_sync: bool = Field(
        default=False,
        description="Published during the first sync of the mailbox (history inside the initial window): "
        "never alert on it.",
        examples=[False],
    )
    content_hash: str = Field(
        description="SHA-256 hex of the raw message; the de-duplication key when Message-ID is missing.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    internal_date: UtcDatetime | None = Field(
        default=None,
        description="IMAP INTERNALDATE: when the server received it.",
        examples=["2026-11-21T08:29:41Z"],
    )
    date: UtcDatetime | None = Field(
        default=None, description="Date header, when parseable.", examples=["2026-11-21T08:29:30Z"]
    )
    subject: str = Field(
        default="",
        max_length=4096,
        description="Decoded Subject.",
        examples=["回复: Quotation for LED panels"],
    )
    from_: EmailAddress | None = Field(default=None, alias="from", description="From (first address).")
    reply_to: list[EmailAddress] = Field(default_factory=list, description="Reply-To addresses.")
    to: list[EmailAddress] = Field(default_factory=list, description="To addresses.")
    cc: list[EmailAddress] = Field(default_factory=list, description="Cc addresses.")
    in_reply_to: str = Field(
        default="",
        max_length=998,
        description="In-Reply-To msg-id without brackets.",
        examples=["20261120.ab12@laifaxin.com"],
    )
    references: list[str] = Field(default_factory=list, description="References msg-ids, oldest first.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Classification-relevant headers, lowercased names.",
        examples=[{"auto-submitted": "auto-replied", "precedence": "bulk"}],
    )
    content_type: str = Field(
        default="text/plain", description="Top-level MIME type.", examples=["multipart/report"]
    )
    report_type: str | None = Field(
        default=None,
        description="report-type parameter of multipart/report (RFC 6522).",
        examples=["delivery-status"],
    )
    delivery_status: str | None = Field(
        default=None,
        max_length=TEXT_CAP_CHARS,
        description="Text of the message/delivery-status part of a DSN (RFC 3464), when present.",
    )
    original_message_id: str | None = Field(
        default=None,
        max_length=998,
        description="For a delivery status notification: the Message-ID of the message it reports on, read "
        "from the returned message or headers it embeds (message/rfc822, text/rfc822-headers; RFC 3464 "
        "section 2 and RFC 6522), without angle brackets.",
        examples=["lfx.7f3a9c1e2b4d.cmd-0042@mail.laifaxin.com"],
    )
    original_recipients: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="For a delivery status notification: the To/Cc addresses of the returned message, lowercased.",
        examples=[["maria@buyer.example"]],
    )
    text: str = Field(
        default="",
        max_length=TEXT_CAP_CHARS,
        description="Body as plain text (HTML reduced), capped.",
        examples=["Hi, please send your best price for 500 pcs."],
    )
    text_truncated: bool = Field(
        default=False, description="True when text was cut at the cap.", examples=[False]
    )
    html_only: bool = Field(
        default=False, description="The message had no text/plain part.", examples=[False]
    )
    attachments: list[AttachmentMeta] = Field(default_factory=list, description="Attachment metadata.")
    size_bytes: int = Field(
        ge=0, description="Size of the raw message in bytes (RFC822.SIZE).", examples=[18342]
    )
    raw_ref: str = Field(
        description="Pointer to the stored raw message in sync's store.",
        examples=["sync:raw_messages/mbx_01JD5X6Q8ZK3:INBOX:1732170000:4711"],
    )
    arrived_at: UtcDatetime | None = Field(
        default=None,
        description="When sync first saw the message (for arrival-to-alert latency).",
        examples=["2026-11-21T08:29:42Z"],
    )


Category = Literal["to_reply", "ooo", "inquiry", "rejection", "bounce", "notification"]
"""The product's four reply categories plus two kept apart for users: ``bounce`` and ``notification``."""


class ClassificationFlags(EventModel):
    """Facts the classifier established on the way."""

    auto_submitted: bool = Field(
        default=False, description="RFC 3834 or vendor auto-reply header present.", examples=[True]
    )
    mailing_list: bool = Field(
        default=False, description="List-Id / List-Unsubscribe / Precedence: bulk|list.", examples=[False]
    )
    bounce: bool = Field(default=False, description="A delivery failure report.", examples=[False])


class BounceInfo(EventModel):
    """What a delivery status notification says (RFC 3464)."""

    kind: Literal["hard", "soft", "unknown"] = Field(
        description="5.x.x = hard, 4.x.x = soft.", examples=["hard"]
    )
    recipient: str | None = Field(
        default=None, description="Final-Recipient that failed.", examples=["nobody@example.com"]
    )
    status: str | None = Field(
        default=None, description="Enhanced status code (RFC 3463).", examples=["5.1.1"]
    )
    diagnostic: str | None = Field(
        default=None,
        max_length=2000,
        description="Diagnostic-Code text.",
        examples=["550 5.1.1 User unknown"],
    )


MatchMethod = Literal["in_reply_to", "references", "reply_token", "dsn", "heuristic"]
"""How a received message was tied to a sent one, strongest first: its In-Reply-To or References name the sent
Message-ID (RFC 5322 section 3.6.4); it was addressed to a signed reply token; it is a delivery status
notification (RFC 3464) naming the sent message or its recipient; or the sender and subject fit a recent send."""


class ReplyMatch(EventModel):
    """The sent message a received one answers (or reports on, for a bounce), and who sent it."""

    sent_message_id: str = Field(
        max_length=998,
        description="Message-ID of the matched sent message, without angle brackets.",
        examples=["lfx.7f3a9c1e2b4d.cmd-0042@mail.laifaxin.com"],
    )
    sent_mailbox_id: MailboxId
    sent_event_id: str | None = Field(
        default=None,
        description="event_id of the mail.sent event that recorded it.",
        examples=["0d7c1f7e-8a51-5b1e-9f0a-3e6c2b1d4a01"],
    )
    owner_tenant_id: str = Field(
        min_length=1,
        max_length=64,
        description="Tenant that sent it: for system-mailbox mail the campaign owner's, not the platform's.",
        examples=["tenant-acme"],
    )
    owner_user_id: str = Field(
        min_length=1, max_length=64, description="User that sent it.", examples=["u_42"]
    )
    campaign_id: str | None = Field(
        default=None,
        max_length=128,
        description="Campaign of the sent message.",
        examples=["cmp_2026_11_led"],
    )
    recipient: str | None = Field(
        default=None,
        max_length=512,
        description="The recipient of the sent message this answers (or that bounced), lowercased.",
        examples=["maria@buyer.example"],
    )
    method: MatchMethod = Field(description="How it was matched.", examples=["in_reply_to"])
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence in [0, 1].", examples=[1.0])
    system_mailbox: bool = Field(
        default=False, description="The sent message left from the system mailbox.", examples=[False]
    )


class MailClassified(Envelope):
    """The category of one received message (topic ``mail.classified``).

    Carries enough of the message (sender, subject, snippet) for notify to render an alert without reading
    another service's store.
    """

    user_id: str = Field(min_length=1, max_length=64, description="Owner of the mailbox.", examples=["u_42"])
    ref: MessageRef = Field(description="The classified message.")
    received_event_id: str = Field(
        description="event_id of the mail.received event classified.",
        examples=["5b0f7a0e-3c43-4a43-9a7c-0f6d3a3f1d2e"],
    )
    category: Category = Field(description="The category.", examples=["inquiry"])
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence in [0, 1].", examples=[0.97])
    reasons: list[str] = Field(
        default_factory=list,
        description="Which layers decided, e.g. 'header:auto-submitted=auto-replied', 'model:v1'.",
        examples=[["rule:inquiry-phrase:price", "model:clf-v1"]],
    )
    language: str = Field(
        default="und", description="BCP 47 language of the reply text, 'und' if unknown.", examples=["zh"]
    )
    flags: ClassificationFlags = Field(default_factory=ClassificationFlags, description="Facts found.")
    bounce: BounceInfo | None = Field(default=None, description="For category bounce, what the DSN says.")
    ooo_return_date: date | None = Field(
        default=None, description="For ooo, the return date the text states.", examples=["2026-12-01"]
    )
    initial_sync: bool = Field(
        default=False, description="Copied from mail.received: never alert on it.", examples=[False]
    )
    subject: str = Field(
        default="", max_length=4096, description="Decoded Subject.", examples=["Re: LED panels"]
    )
    from_: EmailAddress | None = Field(default=None, alias="from", description="Sender.")
    snippet: str = Field(
        default="",
        max_length=280,
        description="First words of the new reply text.",
        examples=["Please quote 500 pcs FOB Shenzhen."],
    )
    arrived_at: UtcDatetime | None = Field(
        default=None, description="Copied from mail.received.", examples=["2026-11-21T08:29:42Z"]
    )
    match: ReplyMatch | None = Field(
        default=None,
        description="The sent message this answers, when reply matching found one. For mail in the system "
        "mailbox, tenant_id/user_id of this event are the match's owner (the campaign's sender).",
    )
    system_mailbox: bool = Field(
        default=False,
        description="The message arrived in the platform's system mailbox. Without a match nobody is alerted "
        "(the system tenant is not a person); with one, tenant_id/user_id are the campaign owner's.",
        examples=[False],
    )
