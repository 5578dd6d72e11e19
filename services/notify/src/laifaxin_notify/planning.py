"""Pure decisions: does an event alert, when (quiet hours), and what the alert says. No I/O.

Rules (issue 6): alert only on the user's categories (default ``to_reply`` and ``inquiry``); never on mail
published with ``initial_sync: true``; inside quiet hours defer to the window's end (or drop if the user
chose so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from laifaxin_shared.events import MailClassified

from .models import AlertContent, Preferences, QuietHours

CATEGORY_TITLES = {
    "to_reply": "待回复 New reply",
    "inquiry": "新询盘 New inquiry",
    "ooo": "自动回复 Out of office",
    "rejection": "拒绝 Rejection",
    "bounce": "退信 Bounce",
    "notification": "通知 Notification",
    "digest": "新邮件汇总 New mail digest",
}


@dataclass(frozen=True)
class Decision:
    """Whether to alert, and why not when not."""

    alert: bool
    reason: str


def decide(event: MailClassified, prefs: Preferences) -> Decision:
    """Apply the category and initial-sync rules to one ``mail.classified`` event."""
    if event.initial_sync:
        return Decision(False, "initial_sync")
    if (
        event.system_mailbox and event.match is None
    ):  # the system tenant is nobody: only a matched owner hears
        return Decision(False, "system mailbox: not matched to a sender")
    if event.category not in prefs.categories:
        return Decision(False, f"category {event.category} not chosen")
    if not prefs.channels:
        return Decision(False, "no channel chosen")
    return Decision(True, "ok")


def quiet_until(now: datetime, quiet: QuietHours | None) -> datetime | None:
    """When ``now`` (aware) lies inside the quiet window, the window's end as aware UTC; else None.

    The window is evaluated in the user's time zone, so DST shifts move it with local time.
    ``start == end`` means no window.
    """
    if quiet is None or quiet.start == quiet.end:
        return None
    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    t = local.timetz().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= t < quiet.end
        end_day = local.date()
    else:  # spans midnight
        inside = t >= quiet.start or t < quiet.end
        end_day = local.date() + timedelta(days=1) if t >= quiet.start else local.date()
    if not inside:
        return None
    end_local = datetime.combine(end_day, quiet.end, tzinfo=zone)
    return end_local.astimezone(UTC)


def render(event: MailClassified, app_base_url: str) -> AlertContent:
    """The alert content of one event: title by category, sender, subject, snippet, link to the message."""
    sender = ""
    if event.from_ is not None:
        sender = event.from_.name or event.from_.email
    ref = event.ref
    url = (
        f"{app_base_url.rstrip('/')}/mail/{quote(ref.mailbox_id, safe='')}/"
        f"{quote(ref.folder, safe='')}/{ref.uidvalidity}/{ref.uid}"
    )
    return AlertContent(
        title=CATEGORY_TITLES.get(event.category, event.category),
        sender=sender,
        subject=event.subject,
        snippet=event.snippet,
        category=event.category,
        url=url,
        arrived_at=event.arrived_at or event.occurred_at,
    )


def digest_content(items: list[AlertContent], window: str, app_base_url: str) -> AlertContent:
    """One summary for many alerts: count, the first senders/subjects, link to the inbox."""
    heads = "; ".join(f"{i.sender}: {i.subject}" for i in items[:3])
    more = f" (+{len(items) - 3})" if len(items) > 3 else ""
    return AlertContent(
        title=f"{CATEGORY_TITLES['digest']} ({len(items)})",
        sender=items[0].sender if items else "",
        subject=f"{len(items)} new replies",
        snippet=(heads + more)[:280],
        category="digest",
        url=f"{app_base_url.rstrip('/')}/mail",
        arrived_at=items[-1].arrived_at if items else None,
        count=len(items),
    )


def window_start(now: datetime, window_s: int) -> datetime:
    """Start of the fixed window (``window_s`` seconds, aligned to the epoch) containing ``now``."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window_s, UTC)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (newlines and runs of whitespace collapsed) and at most ``limit`` characters.

    An ellipsis marks a cut. WeChat template fields: at most 20 characters, no newlines (rules of 2023-05-04,
    reference/notify.md 2.2).
    """
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: max(limit - 1, 0)] + "…"
