"""Pure rules: categories, initial sync, quiet hours across midnight and time zones, field limits, rendering."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from laifaxin_notify.models import Preferences, QuietHours, dedupe_key
from laifaxin_notify.planning import decide, digest_content, one_line, quiet_until, render, window_start
from laifaxin_shared.events import MailClassified, ReplyMatch
from laifaxin_shared.topics import spec


def event(**update: object) -> MailClassified:
    base = MailClassified.model_validate(spec("mail.classified").examples()[0])
    return base.model_copy(update=update)


@pytest.mark.parametrize(
    ("category", "alert"),
    [
        ("to_reply", True),
        ("inquiry", True),
        ("ooo", False),
        ("rejection", False),
        ("bounce", False),
        ("notification", False),
    ],
)
def test_default_categories_are_to_reply_and_inquiry(category: str, alert: bool) -> None:
    assert decide(event(category=category), Preferences()).alert is alert


def test_chosen_categories_alert() -> None:
    prefs = Preferences(categories=["ooo", "bounce"])
    assert decide(event(category="ooo"), prefs).alert
    assert not decide(event(category="inquiry"), prefs).alert


def test_unmatched_system_mailbox_mail_alerts_nobody_and_a_matched_one_alerts_its_owner() -> None:
    unmatched = decide(event(category="inquiry", system_mailbox=True), Preferences(categories=["inquiry"]))
    assert not unmatched.alert and "system mailbox" in unmatched.reason
    match = ReplyMatch(
        sent_message_id="a@b.example",
        sent_mailbox_id="mbx_system",
        owner_tenant_id="tenant-acme",
        owner_user_id="u_42",
        method="reply_token",
        confidence=0.99,
        system_mailbox=True,
    )
    matched = event(category="inquiry", system_mailbox=True, match=match, tenant_id="tenant-acme")
    assert decide(matched, Preferences(categories=["inquiry"])).alert


def test_initial_sync_never_alerts_even_when_chosen() -> None:
    d = decide(event(category="inquiry", initial_sync=True), Preferences(categories=["inquiry"]))
    assert not d.alert and d.reason == "initial_sync"


def test_no_channels_no_alert() -> None:
    assert not decide(event(category="inquiry"), Preferences(channels=[])).alert


SHANGHAI_NIGHT = QuietHours(start=time(22, 0), end=time(7, 30), timezone="Asia/Shanghai")


def test_quiet_hours_across_midnight_in_the_users_zone() -> None:
    # 23:00 in Shanghai is 15:00 UTC: inside, ends at 07:30 next day Shanghai = 23:30 UTC
    assert quiet_until(datetime(2026, 11, 21, 15, 0, tzinfo=UTC), SHANGHAI_NIGHT) == datetime(
        2026, 11, 21, 23, 30, tzinfo=UTC
    )
    # 06:00 Shanghai (22:00 UTC previous day): inside, ends 07:30 the same local day
    assert quiet_until(datetime(2026, 11, 21, 22, 0, tzinfo=UTC), SHANGHAI_NIGHT) == datetime(
        2026, 11, 21, 23, 30, tzinfo=UTC
    )
    # 12:00 Shanghai: outside
    assert quiet_until(datetime(2026, 11, 21, 4, 0, tzinfo=UTC), SHANGHAI_NIGHT) is None


def test_quiet_hours_same_day_window_and_dst_zone() -> None:
    qh = QuietHours(start=time(12, 0), end=time(13, 0), timezone="Europe/Berlin")
    # 2026-07-01 12:30 CEST = 10:30 UTC
    assert quiet_until(datetime(2026, 7, 1, 10, 30, tzinfo=UTC), qh) == datetime(
        2026, 7, 1, 11, 0, tzinfo=UTC
    )
    # 2026-12-01 12:30 CET = 11:30 UTC
    assert quiet_until(datetime(2026, 12, 1, 11, 30, tzinfo=UTC), qh) == datetime(
        2026, 12, 1, 12, 0, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 12, 1, 13, 30, tzinfo=UTC), qh) is None


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        QuietHours(start=time(1), end=time(2), timezone="Mars/Olympus")


def test_one_line_is_flat_and_capped() -> None:
    assert one_line("a\nb\r\n  c", 20) == "a b c"
    out = one_line("回复: Quotation for LED panels, 500 pcs", 20)
    assert len(out) == 20 and out.endswith("…") and "\n" not in out


def test_render_links_to_the_message_and_names_the_sender() -> None:
    ev = event(category="inquiry")
    c = render(ev, "https://app.example/")
    assert c.url.startswith(f"https://app.example/mail/{ev.ref.mailbox_id}/")
    assert c.url.endswith(f"/{ev.ref.uidvalidity}/{ev.ref.uid}")
    assert ev.from_ is not None and c.sender in (ev.from_.name, ev.from_.email)
    assert c.category == "inquiry" and c.title


def test_dedupe_key_differs_per_channel_and_target() -> None:
    keys = {dedupe_key("e", "u", ch, t) for ch in ("wechat", "email") for t in ("a", "b")}
    assert len(keys) == 4 and all(len(k) == 64 for k in keys)
    assert dedupe_key("e", "u", "wechat", "a") == dedupe_key("e", "u", "wechat", "a")


def test_digest_content_counts_items() -> None:
    items = [render(event(subject=f"s{i}"), "https://x") for i in range(7)]
    d = digest_content(items, "w", "https://x")
    assert d.count == 7 and "(+4)" in d.snippet and d.category == "digest"


def test_window_start_aligns() -> None:
    assert window_start(datetime(2026, 1, 1, 0, 0, 59, tzinfo=UTC), 60) == datetime(2026, 1, 1, tzinfo=UTC)


async def test_memory_counter_counts_per_window_and_hour() -> None:
    from laifaxin_notify.pipeline import MemoryCounter

    c = MemoryCounter()
    assert await c.count("t", "u", "h1", "w1", 3) == (3, 3)
    assert await c.count("t", "u", "h1", "w2", 1) == (1, 4)
    assert await c.count("t", "v", "h1", "w2", 1) == (1, 1)
    assert await c.count("t", "u", "h2", "w3", 1) == (1, 1)  # a new hour starts from zero
