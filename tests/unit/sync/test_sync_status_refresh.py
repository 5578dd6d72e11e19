"""The throttled keep-alive of a steady ``ok`` (SYNC_STATUS_REFRESH_SECONDS) and the account identity that decides
whether a re-verified mailbox keeps its sync state."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from laifaxin_shared.providers.errors import ErrorCode, make_error
from laifaxin_sync import mailbox_loop
from laifaxin_sync.mailbox_loop import MailboxLoop
from laifaxin_sync.status_refresh import StatusRefresh
from laifaxin_sync.store import account_identity
from tests.unit.sync.report_harness import FakePublisher, FakeStore, reporting_loop

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_refresh_is_due_one_to_one_point_two_periods_after_the_last_status() -> None:
    refresh = StatusRefresh(900, rng=random.Random(1))
    assert not refresh.due(T0 + timedelta(days=1))  # nothing sent yet: transitions come first
    for _ in range(200):
        refresh.sent(T0)
        assert refresh.due_at is not None
        assert T0 + timedelta(seconds=900) <= refresh.due_at <= T0 + timedelta(seconds=1080)
        assert not refresh.due(T0 + timedelta(seconds=899.9))
        assert refresh.due(T0 + timedelta(seconds=1080))


def test_mailboxes_that_reported_together_refresh_spread_out() -> None:
    rng = random.Random(2)
    dues = []
    for _ in range(1000):
        refresh = StatusRefresh(900, rng=rng)
        refresh.sent(T0)
        assert refresh.due_at is not None
        dues.append((refresh.due_at - T0).total_seconds())
    # 180 s of spread: no 10-second slice holds more than a few percent of the thousand
    slices = [sum(1 for d in dues if 900 + 10 * i <= d < 910 + 10 * i) for i in range(18)]
    assert max(slices) < 100 and min(slices) > 20


def test_zero_disables_the_refresh() -> None:
    refresh = StatusRefresh(0)
    refresh.sent(T0)
    refresh.restored(T0 - timedelta(days=1), T0)
    assert not refresh.enabled and not refresh.due(T0 + timedelta(days=365))


def test_a_restart_keeps_the_schedule_and_spreads_the_overdue() -> None:
    rng = random.Random(3)
    recent = StatusRefresh(900, rng=rng)
    recent.restored(T0 - timedelta(seconds=300), T0)  # sent 5 minutes before the restart
    assert not recent.due(T0 + timedelta(seconds=599))  # not re-sent at start
    assert recent.due(T0 + timedelta(seconds=780))
    dues = []
    for at in (T0 - timedelta(hours=3), None):  # long overdue, or time unknown: soon, but not all at once
        for _ in range(500):
            refresh = StatusRefresh(900, rng=rng)
            refresh.restored(at, T0)
            assert refresh.due_at is not None and T0 <= refresh.due_at <= T0 + timedelta(seconds=180)
            dues.append((refresh.due_at - T0).total_seconds())
    assert sum(1 for d in dues if d < 18) < 150  # the first tenth of the spread: about a tenth of them


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_loop(period: float, status: dict[str, Any] | None) -> tuple[MailboxLoop, FakePublisher, FakeStore]:
    loop, publisher, store, _ = reporting_loop(status, status_refresh_seconds=period)
    return loop, publisher, store


async def test_report_sends_transitions_and_a_steady_ok_once_per_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(T0)
    monkeypatch.setattr(mailbox_loop, "utc_now", clock)
    stored = {"state": "ok", "error_code": None, "at": T0 - timedelta(seconds=10)}
    loop, publisher, store = make_loop(60, stored)

    loop.last_synced_at = T0
    await loop.report("ok")  # the state a restart found stored, sent 10 s ago: nothing new
    clock.now = T0 + timedelta(seconds=49)
    await loop.report("ok")
    assert publisher.statuses == []

    clock.now = T0 + timedelta(seconds=62)  # 1.2 periods after the stored status: due
    loop.last_synced_at = clock.now - timedelta(seconds=1)
    await loop.report("ok")
    await loop.report("ok")  # the next pass: the refresh just went out
    [refreshed] = publisher.statuses
    assert refreshed.state == "ok" and refreshed.last_synced_at == clock.now - timedelta(seconds=1)
    assert store.states[-1] == {"state": "ok", "error_code": None, "at": clock.now}  # schedules a restart

    error = make_error(ErrorCode.TOO_MANY_CONNECTIONS, protocol="imap")
    clock.now += timedelta(seconds=5)
    await loop.report(error.sync_state, error=error)
    clock.now += timedelta(hours=1)
    await loop.report(error.sync_state, error=error)  # only a steady ok is refreshed
    await loop.report("ok")  # recovery is a transition
    clock.now += timedelta(seconds=59)
    await loop.report("ok")
    clock.now += timedelta(seconds=13)
    await loop.report("ok")
    assert [s.state for s in publisher.statuses] == ["ok", "throttled", "ok", "ok"]
    assert store.states[-1]["at"] - store.states[-2]["at"] >= timedelta(seconds=60)


async def test_without_a_refresh_period_only_transitions_are_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(T0)
    monkeypatch.setattr(mailbox_loop, "utc_now", clock)
    loop, publisher, _ = make_loop(0, None)
    for hours in range(0, 48, 6):
        clock.now = T0 + timedelta(hours=hours)
        await loop.report("ok")
    assert [s.state for s in publisher.statuses] == ["ok"]


def config(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "email": "Sales@163.com",
        "username": "sales@163.com",
        "imap": {"host": "imap.163.com", "port": 993, "security": "ssl"},
        "smtp": {"host": "smtp.163.com", "port": 465, "security": "ssl"},
        "credential": {"key_id": "k1", "nonce": "n1", "ciphertext": "c1"},
        "nickname": "Sales",
        "sync": {"enabled": True, "interval_seconds": 300, "initial_window_days": 30},
    }
    for key, value in changes.items():
        if key in ("imap", "smtp"):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def test_the_account_identity_is_email_login_and_imap_server() -> None:
    same = account_identity(config())
    for unchanged in (
        config(credential={"key_id": "k2", "nonce": "n2", "ciphertext": "c2"}),  # new password or re-verify
        config(imap={"security": "starttls"}),
        config(smtp={"host": "smtp2.163.com", "port": 587}),
        config(nickname="Other", sync={"enabled": True, "interval_seconds": 600}),
        config(email="sales@163.COM", imap={"host": "IMAP.163.com"}),  # case only
    ):
        assert account_identity(unchanged) == same
    for switched in (
        config(email="buyer@163.com"),
        config(username="buyer"),
        config(imap={"host": "imap.qq.com"}),
        config(imap={"port": 143}),
    ):
        assert account_identity(switched) != same
