"""Request and response bodies of the inbox API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from laifaxin_shared.events import Category
from laifaxin_shared.events.base import EmailAddress


class ErrorOut(BaseModel):
    """Every error: a stable code and a message."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no such message"])


class MatchOut(BaseModel):
    """The sent message a received one answers."""

    sent_message_id: str
    campaign_id: str | None = None
    method: str
    confidence: float


class MessageSummary(BaseModel):
    """One row of the inbox list."""

    id: str = Field(description="Opaque message id (base64url of mailbox/folder/UIDVALIDITY/UID).")
    mailbox_id: str
    folder: str
    message_id: str = Field(description="Message-ID header without angle brackets ('' when none).")
    subject: str = ""
    from_: EmailAddress | None = Field(default=None, alias="from")
    date: datetime | None = Field(default=None, description="Date header (UTC).")
    received_at: datetime = Field(description="When sync first saw the message (UTC); the list's order.")
    snippet: str = ""
    category: Category | None = Field(default=None, description="None until classified.")
    match: MatchOut | None = None
    has_attachments: bool = False
    read: bool = False
    handled: bool = Field(
        description="Handled by the user (PATCH), or answered: a mail.sent named it in In-Reply-To/References."
    )
    replied: bool = Field(description="A mail.sent of the tenant named it in In-Reply-To/References.")

    model_config = {"populate_by_name": True}


class MessagePage(BaseModel):
    items: list[MessageSummary]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next (older) page.")


class AttachmentOut(BaseModel):
    index: int = Field(description="Position; GET .../attachments/{index} downloads it.")
    filename: str
    content_type: str
    size_bytes: int = Field(description="Decoded size, bytes (estimated from the encoded part).")
    inline: bool
    content_id: str | None = Field(default=None, description="Content-ID, for cid: images in the HTML.")


class MessageOut(MessageSummary):
    """One message with its content."""

    to: list[EmailAddress] = []
    cc: list[EmailAddress] = []
    reply_to: list[EmailAddress] = []
    in_reply_to: str = ""
    references: list[str] = []
    headers: dict[str, str] = Field(default_factory=dict, description="Classification-relevant headers.")
    text: str = Field(
        default="", description="Text body (from the event, capped; from the raw when fetched)."
    )
    html: str | None = Field(
        default=None,
        description="HTML body sanitised with nh3: no scripts, event handlers or remote images; None when the "
        "message has no HTML part or its raw content could not be had (see content_error).",
    )
    remote_images_blocked: int = 0
    attachments: list[AttachmentOut] = []
    content_error: str | None = Field(
        default=None,
        description="content_unavailable / content_missing / content_too_large when sync's raw "
        "copy could not be read; the rest of the message is still shown.",
    )
    raw_truncated: bool = False


class StatePatch(BaseModel):
    """What the user sets on a message; omitted fields stay as they are."""

    read: bool | None = None
    handled: bool | None = Field(
        default=None, description="true: out of To Reply; false: back in it even if answered."
    )


class ThreadItem(BaseModel):
    kind: Literal["received", "sent"]
    id: str | None = Field(default=None, description="For received messages the message id.")
    message_id: str = ""
    subject: str = ""
    from_: EmailAddress | None = Field(default=None, alias="from")
    at: datetime

    model_config = {"populate_by_name": True}


class ThreadOut(BaseModel):
    root: str = Field(
        description="The conversation's first msg-id (References[0], else In-Reply-To, else own)."
    )
    items: list[ThreadItem]


class CountsOut(BaseModel):
    categories: dict[str, int] = Field(description="Messages per category.")
    to_reply_open: int = Field(description="To Reply messages neither handled nor answered (the badge).")
    unclassified: int | None = None


class MailboxOut(BaseModel):
    id: str
    email: str
    nickname: str = ""
    is_system: bool = False


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)
