"""Notify's own data: user preferences, channel bindings, delivery tasks and delivery records.

A *delivery* is one alert for one (event, user, channel, target). Its ``dedupe_key`` is
``sha256(event_id|user_id|channel|target_id)`` (hex), claimed under a unique index before anything is sent
(reference/notify.md section 4), and reused as WeChat's ``client_msg_id``, the Web Push ``Topic`` (shortened)
and the browser notification ``tag``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from laifaxin_shared.events.mail import Category

Channel = Literal["wechat", "email", "webpush", "apprise"]
CHANNELS: tuple[Channel, ...] = ("wechat", "email", "webpush", "apprise")
"""``apprise``: the extra channels a user adds as Apprise URLs (WeCom robot, DingTalk, Feishu, Telegram ...)."""
DEFAULT_CATEGORIES: tuple[Category, ...] = ("to_reply", "inquiry")
"""Categories that alert when the user chose nothing (issue 6)."""

DeliveryStatus = Literal[
    "pending",  # claimed, being sent
    "sent",  # provider accepted (WeChat msgid, push 201, SMTP 250)
    "delivered",  # provider confirmed (WeChat TEMPLATESENDJOBFINISH success)
    "retrying",  # waiting on a retry topic
    "deferred",  # waiting for quiet hours to end
    "digested",  # folded into a digest
    "failed",  # permanent failure or retries exhausted
    "skipped",  # nothing to send (binding inactive, subscription gone)
]
FINAL_STATUSES: frozenset[str] = frozenset({"sent", "delivered", "failed", "skipped", "digested"})


class QuietHours(BaseModel):
    """A daily window in the user's time zone in which alerts wait (or are dropped).

    ``start`` > ``end`` spans midnight (22:00-07:00). ``action`` ``defer`` (default) delivers at the window's
    end; ``drop`` records the delivery as skipped.
    """

    model_config = ConfigDict(extra="forbid")

    start: time = Field(description="Local start time, HH:MM.", examples=["22:00"])
    end: time = Field(description="Local end time, HH:MM.", examples=["07:30"])
    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone.", examples=["Asia/Shanghai"])
    action: Literal["defer", "drop"] = Field(default="defer", description="What happens to alerts inside.")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time_text(cls, value: object) -> object:
        """The document says a string (HH:MM); pydantic would also take a number of seconds."""
        if not isinstance(value, str | time):
            raise ValueError("a local time as HH:MM")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class Preferences(BaseModel):
    """What alerts a user wants (one document per tenant + user)."""

    model_config = ConfigDict(extra="forbid")

    categories: list[Category] = Field(
        default_factory=lambda: list(DEFAULT_CATEGORIES),
        description="Categories that alert; default to_reply and inquiry.",
        examples=[["to_reply", "inquiry"]],
    )
    channels: list[Channel] = Field(
        default_factory=lambda: list(CHANNELS),
        description="Channels that alert (each still needs a binding).",
        examples=[["wechat", "webpush"]],
    )
    quiet_hours: QuietHours | None = Field(default=None, description="Quiet hours, if any.")
    digest: bool = Field(
        default=True, strict=True, description="Fold bursts into one summary instead of many alerts."
    )
    mailbox_health: bool = Field(
        default=True,
        strict=True,
        description="Alerts about the mailbox itself (it stopped syncing, sending paused, the authorization code "
        "expires, it works again): a category of its own, independent of the mail categories.",
    )
    language: Literal["zh", "en"] = Field(
        default="zh", description="Language of mailbox-health alerts (message and fix).", examples=["zh"]
    )


class AlertContent(BaseModel):
    """What an alert says, rendered once per event (channel senders shorten it to their limits)."""

    model_config = ConfigDict(frozen=True)

    title: str = Field(description="Short headline, e.g. 'New inquiry'.")
    sender: str = Field(default="", description="Sender display name or address.")
    subject: str = Field(default="", description="Mail subject.")
    snippet: str = Field(default="", description="First words of the reply.")
    category: str = Field(default="", description="Category of the mail, or 'digest'.")
    url: str = Field(default="", description="Link that opens the message in the web app.")
    arrived_at: datetime | None = Field(default=None, description="When the mail arrived.")
    count: int = Field(default=1, description="Alerts this content stands for (digest > 1).")


class DeliveryTask(BaseModel):
    """One delivery to attempt: the value of records on ``notify.retry.*``, ``notify.deferred``, ``notify.dlq``.

    ``attempt`` counts provider attempts already made; ``due_at`` is when it may be tried (also in the
    ``x-due-at`` header as epoch milliseconds).
    """

    model_config = ConfigDict(frozen=True)

    dedupe_key: str
    kind: Literal["alert", "digest"] = "alert"
    tenant_id: str
    user_id: str
    channel: Channel
    target_id: str = Field(
        description="Binding id: openid, email address, push subscription id or Apprise URL binding id."
    )
    event_id: str
    mailbox_id: str = ""
    content: AlertContent
    attempt: int = 0
    due_at: datetime | None = None
    last_error: str = ""
    digest_window: str = Field(default="", description="For kind=digest: the window it summarises.")


def dedupe_key(event_id: str, user_id: str, channel: str, target_id: str) -> str:
    """The delivery's idempotency key: SHA-256 hex of ``event_id|user_id|channel|target_id`` (64 chars)."""
    raw = f"{event_id}|{user_id}|{channel}|{target_id}".encode()
    return hashlib.sha256(raw).hexdigest()
