"""``contact.status``: what a recipient's answer says about mailing them again (classifier -> send, campaigns).

Compacted and keyed by ``tenant_id:recipient``, so the topic keeps each tenant's latest word on each address: a
mass-email engine reads it (from the beginning, as a table) and stops mailing a recipient who bounced hard or
opted out, pauses one who is out of office until their return date, and retries a soft bounce later.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from .base import Envelope, EventModel, MailboxId
from .mail import BounceInfo, MatchMethod, MessageRef

ContactStatusKind = Literal["replied", "out_of_office", "bounced_hard", "bounced_soft", "opted_out"]
"""``replied``: a person answered; ``out_of_office``: an auto-reply (RFC 3834) or away notice; ``bounced_hard`` /
``bounced_soft``: a delivery status notification with a permanent (5.x.x) or transient (4.x.x, or unknown) status
(RFC 3463); ``opted_out``: the answer refuses further mail ("not interested", "unsubscribe", "请勿再发") or is a
spam complaint (ARF, RFC 5965)."""


class ContactEvidence(EventModel):
    """Which sent message the status is about and which received message says it."""

    sent_message_id: str = Field(
        max_length=998,
        description="Message-ID of the matched sent message, without angle brackets.",
        examples=["lfx.7f3a9c1e2b4d.cmd-0042@mail.laifaxin.com"],
    )
    sent_mailbox_id: MailboxId
    campaign_id: str | None = Field(
        default=None,
        max_length=128,
        description="Campaign of the sent message.",
        examples=["cmp_2026_11_led"],
    )
    method: MatchMethod = Field(description="How the reply was matched.", examples=["in_reply_to"])
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence of the match.", examples=[1.0])
    reply: MessageRef = Field(description="The received message (reply, auto-reply or bounce).")
    received_event_id: str = Field(
        description="event_id of its mail.received event.", examples=["5b0f7a0e-3c43-4a43-9a7c-0f6d3a3f1d2e"]
    )
    reasons: list[str] = Field(
        default_factory=list,
        description="The classifier's reasons for the category that set the status.",
        examples=[["rule:opt-out-phrase"]],
    )


class ContactStatus(Envelope):
    """The latest status of one recipient for one tenant (topic ``contact.status``, key ``tenant_id:recipient``).

    ``tenant_id`` / ``user_id`` are the sender's (the campaign owner's for system-mailbox mail). Idempotent on
    ``event_id``, which is derived from the received message (:func:`contact_event_id`): a redelivered reply
    yields the same event. Consumers keep the newest ``occurred_at`` per key.
    """

    user_id: str = Field(
        min_length=1, max_length=64, description="The user who sent the matched message.", examples=["u_42"]
    )
    recipient: str = Field(
        min_length=3,
        max_length=512,
        description="The recipient address the status is about, lowercased.",
        examples=["maria@buyer.example"],
    )
    status: ContactStatusKind = Field(description="What the answer says.", examples=["out_of_office"])
    return_date: date | None = Field(
        default=None,
        description="For out_of_office, the return date the auto-reply states, when it states one.",
        examples=["2026-12-01"],
    )
    bounce: BounceInfo | None = Field(
        default=None, description="For bounced_*, what the delivery status notification says (the reason)."
    )
    evidence: ContactEvidence = Field(description="The sent message and the reply that set the status.")

    def key(self) -> str:
        """The record key: ``tenant_id:recipient``."""
        return f"{self.tenant_id}:{self.recipient}"


_NAMESPACE = uuid.UUID("2b8e0c3a-51f4-5d7e-8a0b-6c9d4e1f7a33")


def contact_event_id(reply: MessageRef, recipient: str) -> uuid.UUID:
    """The ``event_id`` of the status a received message sets for ``recipient`` (UUID5, deterministic)."""
    return uuid.uuid5(_NAMESPACE, f"contact.status|{reply.natural_key()}|{recipient.lower()}")
