"""Starting many mailboxes at once against the real FerretDB, Kafka and Dovecot: leases claimed in bulk keep
the single-claim guarantees (epochs, fencing, live holders respected), and a worker whose start slots are fewer
than its mailboxes starts them all, a few at a time, counting them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from laifaxin_shared.events.base import utc_now
from laifaxin_sync.store import SyncStore
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env

pytestmark = pytest.mark.integration


async def test_bulk_lease_claims_keep_epochs_fencing_and_live_holders(mongo_db: Any) -> None:
    store = SyncStore(mongo_db)
    await store.ensure_indexes()
    await store.heartbeat("me", 60)
    await store.heartbeat("alive", 60)
    await store.workers.insert_one({"_id": "dead", "expires_at": utc_now() - timedelta(seconds=5)})
    await store.leases.insert_many(
        [
            {"_id": "mine", "owner": "me", "epoch": 4},
            {"_id": "held", "owner": "alive", "epoch": 2},
            {"_id": "expired", "owner": "dead", "epoch": 7},
            {"_id": "released", "owner": None, "epoch": 3},
            {"_id": "released2", "owner": None, "epoch": 3},
        ]
    )
    # a cursor written under the expired holder's epoch: the takeover must fence it
    await store.cursors.insert_one({"_id": "expired:INBOX", "mailbox_id": "expired", "lease_epoch": 7})
    ids = ["new1", "new2", "mine", "held", "expired", "released", "released2", "new1"]

    leases = await store.claim_leases(ids, "me")

    assert {mid: lease.epoch for mid, lease in leases.items()} == {
        "new1": 1,
        "new2": 1,
        "mine": 4,
        "expired": 8,
        "released": 4,
        "released2": 4,
    }
    assert all(lease.owner == "me" for lease in leases.values())
    owners = {d["_id"]: (d["owner"], d["epoch"]) async for d in store.leases.find({})}
    assert owners["held"] == ("alive", 2)  # a live worker's lease is left alone
    assert owners["expired"] == ("me", 8) and owners["new1"] == ("me", 1)
    fenced = await store.cursors.find_one({"_id": "expired:INBOX"})
    assert fenced is not None and fenced["lease_epoch"] == 8
    for mid, lease in leases.items():  # the same leases a single claim would see as ours
        assert await store.holds_lease(lease), mid
    # claiming again changes nothing; a second worker gets none of them
    assert await store.claim_leases(ids, "me") == leases
    await store.heartbeat("other", 60)
    assert await store.claim_leases(ids, "other") == {}


async def test_many_mailboxes_start_through_few_slots_and_are_counted(
    sync_env: Env, new_mail_account: Any
) -> None:
    accounts: list[MailAccount] = [new_mail_account() for _ in range(6)]
    worker = await sync_env.start_worker(SYNC_START_CONCURRENCY=2, SYNC_POLL_INTERVAL_SECONDS=60)
    ids = [await sync_env.register(account, window_days=0) for account in accounts]
    await sync_env.wait_for(
        lambda: {s.mailbox_id for s in sync_env.statuses if s.state == "ok"} >= set(ids),
        timeout=60,
        what="every mailbox ok",
    )
    await sync_env.wait_for(
        lambda: worker.metrics.mailbox_starts._value.get() >= len(ids), what="starts counted"
    )
    assert worker.metrics.mailboxes_starting._value.get() == 0
    assert worker.ctx.start_gate.starting == 0
    assert worker.ctx.start_gate._sem._value == 2  # every slot given back
    leases = {d["_id"]: d async for d in worker.store.leases.find({})}
    assert {leases[mid]["owner"] for mid in ids} == {worker.settings.worker_id}
    assert not worker.preparer.running  # nothing needed the parse pool: no process was started

    # a restart starts them all again from the stored configs (the assignment path), leases claimed in bulk
    await sync_env.stop_worker(worker)
    worker = await sync_env.start_worker(SYNC_START_CONCURRENCY=2, SYNC_POLL_INTERVAL_SECONDS=60)
    await sync_env.wait_for(
        lambda: worker.metrics.mailbox_starts._value.get() >= len(ids) and len(worker.supervisor.loops) == 6,
        timeout=60,
        what="restarted mailboxes",
    )
    stored = {d["_id"]: d async for d in worker.store.leases.find({})}
    for mid, loop in worker.supervisor.loops.items():  # taken from the released leases: a new epoch each
        assert loop.lease is not None and loop.lease.epoch == stored[mid]["epoch"] > leases[mid]["epoch"]
        assert stored[mid]["owner"] == worker.settings.worker_id
