"""Pacing of one mailbox's sends: the daily cap and the spacing between two sends, and the clock they run on.

Warm-up (Laifaxin's advice for NetEase 163 and NetEase Enterprise, laifa.xin/youxiang/107 and /204; the same
ramp is applied to every provider that publishes no figure, as the catalog's ``sending.warmup`` says):

| days since binding | daily cap | spacing between campaign sends |
|---|---|---|
| 0-6 (week 1) | 50 | 5-10 min, random in that range |
| 7-13 (week 2) | 100 | 3-6 min |
| 14-20 (week 3) | 150 | 2-4 min |
| 21-27 (week 4) | 200 | 1.5-3 min |
| 28 and later (stable) | 300 | 1-2 min |

The advice gives "100-200" for weeks 2-4; the steps above climb through it. Spacing after week 1 is not in the
advice: it spreads the day's cap over about ten hours and never bursts. A provider with a published cap (Gmail
500, Google Workspace 2,000, Microsoft 365 10,000 recipients, ...) gets that cap, and the ramp's too when its
entry keeps ``warmup``; the lower one wins. Replies skip the spacing but count against the cap.

Days are counted in ``SEND_DAY_TIMEZONE`` (Asia/Shanghai by default): a cap resets at midnight there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol

from laifaxin_shared.providers.catalog import find_provider, provider_for_domain
from laifaxin_shared.providers.models import Provider

WARMUP_STEPS: tuple[tuple[int, int, int, int], ...] = (
    # (first day, cap, min spacing s, max spacing s)
    (0, 50, 300, 600),
    (7, 100, 180, 360),
    (14, 150, 120, 240),
    (21, 200, 90, 180),
    (28, 300, 60, 120),
)
WARMUP_SOURCE = "Laifaxin warm-up advice for NetEase 163 / NetEase Enterprise (laifa.xin/youxiang/107, /204)"
PUBLISHED_SPACING = (60, 120)
"""Spacing for a provider with a published cap and no warm-up: one send every one to two minutes."""


@dataclass(frozen=True)
class Plan:
    """How much one mailbox may send on a day and how far apart.

    ``daily_cap`` None: no cap (pacing off). Spacing in seconds, drawn uniformly from [min, max] per send.
    """

    provider: str
    daily_cap: int | None
    min_spacing_seconds: int
    max_spacing_seconds: int
    source: str

    def to_dict(self) -> dict[str, object]:
        """The CLI's JSON shape."""
        return {
            "provider": self.provider,
            "daily_cap": self.daily_cap,
            "min_spacing_seconds": self.min_spacing_seconds,
            "max_spacing_seconds": self.max_spacing_seconds,
            "source": self.source,
        }


UNPACED = Plan("any", None, 0, 0, "pacing off (SEND_PACING=false)")


def warmup_step(bound_days: int) -> tuple[int, int, int]:
    """(cap, min spacing, max spacing) of the ramp ``bound_days`` (>= 0) after binding."""
    chosen = WARMUP_STEPS[0]
    for step in WARMUP_STEPS:
        if max(bound_days, 0) >= step[0]:
            chosen = step
    return chosen[1], chosen[2], chosen[3]


def plan_for(provider: Provider | None, bound_days: int) -> Plan:
    """The plan of a mailbox of ``provider`` (None: unknown/custom) ``bound_days`` after it was bound."""
    limits = provider.sending if provider is not None else None
    name = provider.id if provider is not None else "custom"
    if limits is None or limits.warmup:
        cap, low, high = warmup_step(bound_days)
        source = WARMUP_SOURCE
        if limits is not None and limits.daily_cap is not None and limits.daily_cap < cap:
            cap, source = limits.daily_cap, limits.source
        elif limits is not None:
            source = limits.source
        return Plan(name, cap, low, high, source)
    low, high = PUBLISHED_SPACING
    return Plan(name, limits.daily_cap, low, high, limits.source)


def resolve_provider(email_or_provider: str) -> Provider | None:
    """A catalog provider from its id, or from an address's (or bare) domain; None when unknown."""
    text = email_or_provider.strip().lower()
    found = find_provider(text)
    if found is not None:
        return found
    domain = text.rpartition("@")[2]
    try:
        return provider_for_domain(domain)
    except ValueError:
        return None


class Clock(Protocol):
    """Where "now" comes from (the system clock in production, a :class:`ManualClock` in tests)."""

    def now(self) -> datetime:
        """The current time, aware, UTC."""
        ...


class SystemClock:
    """The system's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock tests move by hand: :meth:`advance`, :meth:`set`."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)


def local_day(when: datetime, zone: tzinfo) -> date:
    """The sending day ``when`` falls on in ``zone``."""
    return when.astimezone(zone).date()


def day_start(day: date, zone: tzinfo) -> datetime:
    """Midnight starting ``day`` in ``zone``, as UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def bound_days(bound_at: datetime | None, day: date, zone: tzinfo) -> int:
    """Whole days from the binding day to ``day`` (0 on the binding day; 0 when unknown)."""
    if bound_at is None:
        return 0
    return max(0, (day - local_day(bound_at, zone)).days)
