"""Progress of a long catch-up (``syncing`` on mailbox.sync_status): when it is reported (threshold, interval,
changed numbers), the rate-based ETA, what the folder sync counts, and how the mailbox loop reports it through
``report()`` (syncing ... ok, nothing for small passes, a stale syncing replaced, the worker's gauge)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from laifaxin_sync import mailbox_loop
from laifaxin_sync.mailbox_loop import MailboxLoop
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.progress import CatchUpProgress, Progress
from tests.unit.sync.report_harness import FakePublisher, FakeStore, reporting_loop
from tests.unit.sync.test_sync_folder_logic import INBOX, FakeFolder, make_sync, raw

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class Tick:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_backlog_below_the_threshold_is_never_reported() -> None:
    clock = Tick()
    p = CatchUpProgress(200, 10, clock=clock)
    p.add_found(199)
    assert p.due() is None
    for _ in range(5):
        clock.t += 60
        p.add_done(40)
        assert p.due() is None
    assert not p.finish()


def test_a_backlog_at_the_threshold_is_reported_at_once_then_at_most_every_interval() -> None:
    clock = Tick()
    p = CatchUpProgress(200, 10, clock=clock)
    p.add_found(4000)
    assert p.due() == Progress(0, 4000, None)  # at its start, before a rate is measured
    assert p.due() is None  # nothing changed
    clock.t += 4
    p.add_done(500)
    assert p.due() is None  # numbers moved, but within the interval
    clock.t += 6  # 10 s after the first report; 1,000 handled in 10 s: 100/s
    p.add_done(500)
    assert p.due() == Progress(1000, 4000, 30.0)
    clock.t += 30  # stalled: due by time, but the numbers did not change
    assert p.due() is None
    p.add_done(1)
    report = p.due()
    assert report is not None and report.done == 1001 and report.eta_seconds == pytest.approx(119.8, abs=0.1)
    assert p.finish() and not p.reporting and p.found == p.done == 0


def test_zero_disables_the_reports() -> None:
    p = CatchUpProgress(0, 10)
    p.add_found(100_000)
    assert p.due() is None and p.remaining == 100_000
    assert not p.finish()


def test_the_total_grows_with_what_the_pass_finds_later_and_done_never_passes_it() -> None:
    clock = Tick()
    p = CatchUpProgress(200, 1, clock=clock)
    p.add_found(150)  # INBOX: below the threshold alone
    assert p.due() is None
    clock.t += 3
    assert p.add_done(150) == 150
    p.add_found(100)  # Junk in the same pass: 250 in all
    assert p.due() == Progress(150, 250, 2.0)  # 150 in 3 s: 50/s, 100 left
    assert p.add_done(500) == 100  # never more than found
    clock.t += 1
    last = p.due()
    assert last == Progress(250, 250, 0.0)
    assert p.remaining == 0


def test_each_pass_starts_from_zero() -> None:
    clock = Tick()
    p = CatchUpProgress(200, 10, clock=clock)
    p.add_found(150)
    p.add_done(150)
    assert not p.finish()  # a small pass: never reported
    p.add_found(150)  # the next pass does not add up with the previous one
    assert p.due() is None


# ----------------------------------------------------------------------------------- what FolderSync counts


async def test_the_folder_sync_counts_the_uids_it_searched_and_committed_without_extra_commands() -> None:
    folder = FakeFolder()
    counts: list[tuple[str, int]] = []

    async def on_found(n: int) -> None:
        counts.append(("found", n))

    async def on_handled(n: int) -> None:
        counts.append(("handled", n))

    sync, _, pub, _ = make_sync(batch=3, catchup_batch=3, on_found=on_found, on_handled=on_handled)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert counts == []  # an empty folder: nothing to catch up
    for i in range(10):
        folder.add(raw(f"m{i}"))
    folder.add(raw("dup", "<m0@example.com>"))  # indexed already: handled, not published
    searches = 0
    search = folder.uid_search

    async def counting(criteria: str, charset: Any = None) -> Any:
        nonlocal searches
        searches += 1
        return await search(criteria, charset)

    folder.uid_search = counting  # type: ignore[method-assign]
    await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    assert searches == 2  # the search it fetches by, and the one that finds nothing left: no extra command
    assert counts[0] == ("found", 11)
    handled = [n for kind, n in counts if kind == "handled"]
    assert sum(handled) == 11 and len(handled) >= 2  # per committed group
    assert len(pub.events) == 10


# ----------------------------------------------------------------------------------- through report()


class StableSync:
    def unstable(self) -> list[str]:
        return []


def make_loop(
    status: dict[str, Any] | None = None, *, min_messages: int = 200
) -> tuple[MailboxLoop, FakePublisher, FakeStore, Tick, SyncMetrics]:
    loop, publisher, store, metrics = reporting_loop(
        status, status_refresh_seconds=0, progress_min_messages=min_messages, progress_interval_seconds=10
    )
    clock = Tick()
    loop._progress = CatchUpProgress(min_messages, 10, clock=clock)
    return loop, publisher, store, clock, metrics


def remaining(metrics: SyncMetrics) -> float:
    value: float = metrics.catchup_remaining._value.get()
    return value


async def test_a_catch_up_reports_syncing_with_progress_then_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailbox_loop, "utc_now", lambda: T0)
    loop, publisher, store, clock, metrics = make_loop({"state": "ok", "error_code": None, "at": T0})
    sync = StableSync()
    await loop._found(1000)
    assert remaining(metrics) == 1000
    for _ in range(20):  # 50 per second, committed in groups of 50
        clock.t += 1
        await loop._handled(50)
    await loop._synced(sync)  # type: ignore[arg-type]
    states = [
        (s.state, s.progress_done, s.progress_total, s.progress_eta_seconds) for s in publisher.statuses
    ]
    assert states == [
        ("syncing", 0, 1000, None),
        ("syncing", 500, 1000, 10.0),
        ("syncing", 1000, 1000, 0.0),
        ("ok", None, None, None),
    ]
    assert [s["state"] for s in store.states] == ["syncing", "syncing", "syncing", "ok"]
    assert remaining(metrics) == 0


async def test_small_passes_report_nothing_and_a_stale_syncing_is_replaced_by_the_next_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mailbox_loop, "utc_now", lambda: T0)
    sync = StableSync()
    loop, publisher, _, clock, _ = make_loop({"state": "ok", "error_code": None, "at": T0})
    for _ in range(100):  # IDLE wakes with a few messages each: 300 in all, never syncing
        await loop._found(3)
        clock.t += 0.1
        await loop._handled(3)
        await loop._synced(sync)  # type: ignore[arg-type]
    assert publisher.statuses == []

    # A worker died mid-catch-up: its syncing is what the store holds. The next pass, small, reports ok.
    loop, publisher, _, _, _ = make_loop({"state": "syncing", "error_code": None, "at": T0})
    await loop._found(5)
    await loop._handled(5)
    await loop._synced(sync)  # type: ignore[arg-type]
    assert [s.state for s in publisher.statuses] == ["ok"]

    # ... or, still long, reports syncing afresh (the same state sent again) and ok at its end.
    loop, publisher, _, clock, _ = make_loop({"state": "syncing", "error_code": None, "at": T0})
    await loop._found(300)
    clock.t += 1
    await loop._handled(300)
    await loop._synced(sync)  # type: ignore[arg-type]
    assert [(s.state, s.progress_done) for s in publisher.statuses] == [("syncing", 0), ("ok", None)]


async def test_an_interrupted_catch_up_leaves_the_gauge_and_the_next_pass_counts_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mailbox_loop, "utc_now", lambda: T0)
    loop, publisher, _, clock, metrics = make_loop(min_messages=100)
    await loop._found(400)
    clock.t += 1
    await loop._handled(100)
    loop._end_progress(completed=False)  # the connection failed: its error report follows, not from here
    assert remaining(metrics) == 0
    assert [s.state for s in publisher.statuses] == ["syncing"]
    await loop._found(300)  # the next connection's pass
    report = publisher.statuses[-1]
    assert (report.state, report.progress_done, report.progress_total) == ("syncing", 0, 300)


async def test_progress_reports_are_off_with_a_zero_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailbox_loop, "utc_now", lambda: T0)
    loop, publisher, _, clock, metrics = make_loop(min_messages=0)
    await loop._found(10_000)
    assert remaining(metrics) == 10_000  # the gauge still counts
    clock.t += 20
    await loop._handled(10_000)
    await loop._synced(StableSync())  # type: ignore[arg-type]
    assert [s.state for s in publisher.statuses] == ["ok"]  # the first status of a new mailbox
