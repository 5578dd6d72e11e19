"""``mail.sent``: a message that left a mailbox (any Laifaxin sender -> reply matching, inbox, others).

Keyed by ``mailbox_id`` of the *sending* mailbox, like ``mail.received``: a reply arrives in the mailbox the
original left from (or in the system mailbox, for mail sent from it), so the sent record and its replies share a
partition number and reply matching stays partition-local.

``tenant_id`` and ``user_id`` are the *sender's*: for mail sent from a tenant's own mailbox they are the
mailbox's owner; for mail sent from the platform's system mailbox they are the campaign owner, which is how a
reply that lands in the system mailbox finds its way back to the person who sent the campaign.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import EmailAddress, Envelope, MailboxId, UtcDatetime

SendKind = Literal["reply", "campaign", "other"]
"""``reply``: an answer from the inbox; ``campaign``: mass email; ``other``: anything else a service sends."""


class MailSent(Envelope):
    """One message accepted by the submission server (SMTP ``250`` after DATA, RFC 5321 section 4.1.1.4).

    Consumers are idempotent on ``event_id`` (producers derive it from their command id, so a re-publish after
    a crash carries the same id) or on ``(mailbox_id, message_id)``.
    """

    user_id: str = Field(
        min_length=1,
        max_length=64,
        description="The user who sent it (the campaign owner for system-mailbox mail).",
        examples=["u_42"],
    )
    mailbox_id: MailboxId
    system_mailbox: bool = Field(
        default=False,
        description="Sent from the platform's system mailbox on behalf of tenant_id/user_id.",
        examples=[False],
    )
    message_id: str = Field(
        min_length=3,
        max_length=998,
        description="RFC 5322 Message-ID the sender generated, without angle brackets.",
        examples=["lfx.7f3a9c1e2b4d.cmd-0042@mail.laifaxin.com"],
    )
    provider_message_id: str | None = Field(
        default=None,
        max_length=998,
        description="Message-ID the submission server reported or assigned instead (Outlook/Microsoft 365 "
        "rewrite it and name the new one in the 250 reply), without angle brackets.",
        examples=["SG2PR01MB1234.apcprd01.prod.outlook.com"],
    )
    from_: EmailAddress = Field(alias="from", description="The From address the message carried.")
    to: list[EmailAddress] = Field(default_factory=list, description="To recipients.")
    cc: list[EmailAddress] = Field(default_factory=list, description="Cc recipients.")
    bcc: list[EmailAddress] = Field(default_factory=list, description="Bcc recipients (envelope only).")
    subject: str = Field(
        default="", max_length=4096, description="Decoded Subject.", examples=["Quotation for LED panels"]
    )
    kind: SendKind = Field(default="other", description="Why it was sent.", examples=["campaign"])
    campaign_id: str | None = Field(
        default=None,
        max_length=128,
        description="Opaque id of the mass-email campaign, when kind is campaign.",
        examples=["cmp_2026_11_led"],
    )
    command_id: str | None = Field(
        default=None,
        max_length=128,
        description="Idempotency key of the mail.send command that produced it, when there was one.",
        examples=["cmd-0042"],
    )
    in_reply_to: str | None = Field(
        default=None,
        max_length=998,
        description="In-Reply-To of the sent message (it answers that message), without angle brackets.",
        examples=["CAFk2u7x+abc@mail.gmail.com"],
    )
    references: list[str] = Field(
        default_factory=list, description="References of the sent message, oldest first, without brackets."
    )
    reply_token: str | None = Field(
        default=None,
        max_length=64,
        description="The signed reply token carried in Reply-To (reply+TOKEN@system domain), for "
        "system-mailbox mail; see laifaxin_shared.replytoken.",
        examples=["k1.mfrggzdfmztwq2lknnwg23tpobyxe43uov3ho6dzpiaq"],
    )
    sent_at: UtcDatetime = Field(
        description="When the submission server accepted it (UTC).", examples=["2026-11-21T08:00:00Z"]
    )

    def recipients(self) -> list[str]:
        """Every recipient address (To, Cc, Bcc), lowercased, in order, without repeats."""
        seen: dict[str, None] = {}
        for addr in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(addr.email.strip().lower(), None)
        return list(seen)
