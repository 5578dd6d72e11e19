"""The steady ``ok`` is sent again (SYNC_STATUS_REFRESH_SECONDS) with a newer ``last_synced_at``, against the real
Dovecot, Kafka and FerretDB: never with the period 0, not at a restart that is not due, and at the sync passes
once it is due."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from laifaxin_shared.events import MailboxSyncStatus
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env

pytestmark = pytest.mark.integration


async def test_a_mailbox_that_stays_ok_reports_ok_again_once_per_refresh_period(
    sync_env: Env, mail_account: MailAccount
) -> None:
    def oks() -> list[MailboxSyncStatus]:
        return [s for s in sync_env.statuses if s.mailbox_id == mailbox_id and s.state == "ok"]

    # Period 0: transitions only, whatever the number of passes (one every 2 s: SYNC_POLL_INTERVAL_SECONDS).
    worker = await sync_env.start_worker(SYNC_STATUS_REFRESH_SECONDS="0")
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: len(oks()) == 1, what="first ok")
    await asyncio.sleep(5)
    assert len(oks()) == 1
    await sync_env.stop_worker(worker)

    # A long period: the restarted worker finds the ok it sent a few seconds ago stored and stays quiet.
    worker = await sync_env.start_worker(SYNC_STATUS_REFRESH_SECONDS="3600")
    await sync_env.wait_for(lambda: worker.metrics.idle_connections._value.get() >= 1, what="IDLE")
    await asyncio.sleep(5)
    assert len(oks()) == 1
    await sync_env.stop_worker(worker)

    # A 1-second period: the stored ok is overdue, so it is sent again at a pass, and again a period later.
    await sync_env.start_worker(SYNC_STATUS_REFRESH_SECONDS="1")
    await sync_env.wait_for(lambda: len(oks()) >= 3, timeout=30, what="two refreshes")
    first, second, third = oks()[:3]
    assert [s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id] == ["ok"] * len(oks())
    assert first.last_synced_at is not None and second.last_synced_at is not None
    assert third.last_synced_at is not None
    assert first.last_synced_at < second.last_synced_at < third.last_synced_at
    assert third.occurred_at - second.occurred_at >= timedelta(seconds=1)
    assert second.occurred_at - first.occurred_at >= timedelta(seconds=10)  # the quiet phases above
