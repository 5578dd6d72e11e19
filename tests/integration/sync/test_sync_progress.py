"""A long catch-up reports its progress (``syncing`` with progress_done / progress_total, then ``ok``) on
mailbox.sync_status, against the real Dovecot, Kafka and FerretDB: the first sync of a mailbox's initial window,
a worker stopped in the middle and its successor reporting the rest afresh, every message published once, and
new mail under IDLE afterwards reporting nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laifaxin_shared.events import MailboxSyncStatus
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration

BACKLOG = 600
SETTINGS = {
    "SYNC_PROGRESS_MIN_MESSAGES": 20,
    "SYNC_PROGRESS_INTERVAL_SECONDS": 0.2,
    "SYNC_FETCH_BATCH": 5,  # many small groups: the catch-up lasts long enough for several reports
    "SYNC_CATCHUP_BATCH": 5,
    "SYNC_PARSE_PROCESSES": 1,
    "SYNC_STATUS_REFRESH_SECONDS": 0,  # transitions only, so every status seen here is one of the catch-up's
}


def catch_up_reports(statuses: list[MailboxSyncStatus]) -> list[tuple[int, int]]:
    """(done, total) of the ``syncing`` reports, checked: total set, done never above it, nothing else set."""
    out = []
    for s in statuses:
        assert s.state == "syncing", s
        assert s.progress_done is not None and s.progress_total is not None, s
        assert 0 <= s.progress_done <= s.progress_total, s
        if s.progress_eta_seconds is not None:
            assert s.progress_eta_seconds >= 0 and s.progress_done > 0
        out.append((s.progress_done, s.progress_total))
    return out


async def test_a_long_catch_up_reports_syncing_progress_then_ok_and_new_mail_does_not(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    for i in range(BACKLOG):  # a fresh account: UIDs 1..BACKLOG, all inside the initial window
        await imap.append(mail(f"backlog {i:03d}"))
    mailbox_id = await sync_env.register(mail_account)

    def statuses() -> list[MailboxSyncStatus]:
        return [s for s in sync_env.statuses if s.mailbox_id == mailbox_id]

    # A first worker starts the initial window's catch-up and is stopped in the middle of it (at its first
    # report with progress, sooner with a shorter interval).
    first = await sync_env.start_worker(**{**SETTINGS, "SYNC_PROGRESS_INTERVAL_SECONDS": 0.05})
    await sync_env.wait_for(
        lambda: any(s.state == "syncing" and (s.progress_done or 0) > 0 for s in statuses()),
        timeout=60,
        what="a syncing report with progress",
    )
    await sync_env.stop_worker(first)
    handled: int = (await sync_env.cursor(mailbox_id))["last_uid"]
    assert 0 < handled < BACKLOG, "the catch-up ended before the worker was stopped; make BACKLOG larger"
    await asyncio.sleep(1)  # whatever the stopped worker sent has arrived
    stopped_at = len(statuses())
    reports = catch_up_reports(statuses())  # a stopped worker leaves its syncing: no ok, no error
    assert reports[0] == (0, BACKLOG)  # reported at its start, with the whole backlog
    assert all(total == BACKLOG for _, total in reports)
    dones = [done for done, _ in reports]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)  # sent only when the numbers moved
    assert dones[-1] <= handled

    # Its successor finds the stored syncing and reports the rest afresh, then ok.
    worker = await sync_env.start_worker(**SETTINGS)
    expected = {f"backlog {i:03d}" for i in range(BACKLOG)}
    await sync_env.wait_for(
        lambda: expected <= set(sync_env.subjects(mailbox_id)), timeout=90, what="every message published"
    )
    await sync_env.wait_for(lambda: statuses()[-1].state == "ok", timeout=30, what="ok after the catch-up")
    second = statuses()[stopped_at:]
    ok = second[-1]
    assert ok.progress_done is None and ok.progress_total is None and ok.progress_eta_seconds is None
    reports = catch_up_reports(second[:-1])
    assert len(reports) >= 2, f"one report at the start and more while it runs: {reports}"
    assert reports[0] == (0, BACKLOG - handled)  # the backlog left, counted from the cursor
    assert all(total == BACKLOG - handled for _, total in reports)
    dones = [done for done, _ in reports]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)
    assert any(s.progress_eta_seconds is not None for s in second[1:-1])  # once a rate is measured
    assert worker.metrics.catchup_remaining._value.get() == 0

    # Every message published, indexed once; one stopped between a group's ack and its cursor write publishes
    # that group again, but under the same event_id (at-least-once; consumers dedupe on it).
    docs = await sync_env.wait_committed(BACKLOG, mailbox_id)
    assert len(docs) == BACKLOG
    assert set(sync_env.subjects(mailbox_id)) == expected
    event_ids: dict[str, set[str]] = {}
    for e in sync_env.received_for(mailbox_id):
        event_ids.setdefault(e.subject, set()).add(str(e.event_id))
    assert all(len(ids) == 1 for ids in event_ids.values())

    # New mail under IDLE: published, with no syncing (nor any other status: nothing changed).
    await sync_env.wait_for(lambda: worker.metrics.idle_connections._value.get() >= 1, what="IDLE")
    before = len(statuses())
    await imap.append(mail("after the catch-up"))
    await sync_env.wait_subjects(mailbox_id, {"after the catch-up"})
    await asyncio.sleep(1)
    assert statuses()[before:] == []
    assert sync_env.subjects(mailbox_id).count("after the catch-up") == 1
