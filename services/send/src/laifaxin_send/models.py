"""Bodies of the send API (``/v1/send``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from laifaxin_shared.api import ApiError
from laifaxin_shared.events import Attachment, CommandKind, EmailAddress


class SendRequest(BaseModel):
    """``POST /v1/send``: a :class:`~laifaxin_shared.events.SendCommand` without tenant and user (they come
    from the token). Validated again as the command (recipients, bodies, attachment limits...)."""

    model_config = ConfigDict(extra="forbid")

    command_id: str = Field(
        description="Idempotency key (1-128 of A-Z a-z 0-9 _ . : -).", examples=["cmd-0042"]
    )
    mailbox_id: str = Field(min_length=1, max_length=64, examples=["mbx_01JD5X6Q8ZK3"])
    from_name: str = ""
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    bcc: list[EmailAddress] = Field(default_factory=list)
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    kind: CommandKind
    campaign_id: str | None = None
    not_before: datetime | None = None
    unsubscribe_url: str | None = None


class PlanOut(BaseModel):
    """A mailbox's pacing today and its bounce guard."""

    mailbox_id: str
    provider: str
    daily_cap: int | None
    reserved_today: int
    min_spacing_seconds: int
    max_spacing_seconds: int
    source: str
    sending_paused: bool
    sends_in_window: int
    bounces_in_window: int
    bounce_rate: float


class ErrorOut(ApiError):
    """Every error response: the platform's error model (:class:`~laifaxin_shared.api.ApiError`) with the fix and
    the Chinese texts always present."""

    fix: str
    message_zh: str
    fix_zh: str
    details: str | None = None
    reason: str | None = None
