"""Digest / rate-limit counters in MongoDB (:class:`StoreCounter`): insert-only, summed on read, exact or
conservative across workers, old hours deleted. Against the real MongoDB-wire server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from laifaxin_notify.channels.wechat import WeChatSender
from laifaxin_notify.pipeline import Limits, MemoryQueue, Notifier, StoreCounter
from laifaxin_notify.store import MANY_IDS, Store
from tests.integration.notify.conftest import bind_wechat, classified
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration


async def test_counts_are_sums_per_window_and_hour(store: Store) -> None:
    users = {("t1", f"c{i}"): 1 + i % 2 for i in range(MANY_IDS + 4)}
    users[("t2", "c0")] = 5  # same user id in another tenant: its own count
    assert await store.count_alerts("h1", "m1", users) == {u: (n, n) for u, n in users.items()}
    again = await store.count_alerts("h1", "m1", users)
    later = await store.count_alerts("h1", "m2", users)  # the next digest window of the same hour
    for u, n in users.items():
        assert (again[u], later[u]) == ((2 * n, 2 * n), (n, 3 * n))  # (per window, per hour)
    assert await store.count_alerts("h2", "m3", {("t1", "c0"): 1}) == {("t1", "c0"): (1, 1)}  # a new hour
    assert await store.count_alerts("h1", "m1", {}) == {}
    indexes = {ix["name"]: ix["key"] async for ix in await store.counters.list_indexes()}
    assert list(indexes["key_hour"]) == ["key", "hour"]
    await store.ensure_indexes()  # only missing indexes are created: a second start is harmless


async def test_two_workers_counting_one_user_at_once_never_undercount(store: Store, mongo_db: Any) -> None:
    other = Store(mongo_db)  # a second worker: its own Store over the same database
    users = {("t1", "a"): 1, ("t1", "b"): 3}
    total = dict.fromkeys(users, 0)
    for _ in range(5):
        x, y = await asyncio.gather(
            store.count_alerts("h1", "m1", users), other.count_alerts("h1", "m1", users)
        )
        for u, n in users.items():
            total[u] += 2 * n
            # each sees its own insert and everything finished before; the later reader sees both (as if the two
            # had been serialized), at worst both do: never fewer than a serialized increment would give
            assert min(x[u], y[u]) >= (total[u] - n, total[u] - n)
            assert max(x[u], y[u]) == (total[u], total[u])
    final = await store.count_alerts("h1", "m1", dict.fromkeys(users, 1))
    assert final == {u: (total[u] + 1, total[u] + 1) for u in users}  # no increment lost


async def test_two_workers_never_alert_past_the_digest_threshold(
    store: Store, mongo_db: Any, wechat: WeChatServer, wechat_sender: WeChatSender
) -> None:
    now = datetime(2026, 11, 21, 4, 0, 10, tzinfo=UTC)
    limits = Limits(digest_threshold_per_minute=5, rate_limit_per_hour=1000, digest_window_s=60)

    def worker(s: Store) -> Notifier:
        return Notifier(
            s, {"wechat": wechat_sender}, MemoryQueue(), retry_delays_s=[30], limits=limits, clock=lambda: now
        )

    a, b = worker(store), worker(Store(mongo_db))
    events = [classified(i) for i in range(8)]  # one user's mailboxes on two workers, at the same instant
    await bind_wechat(store, events[0])
    ra, rb = await asyncio.gather(a.handle_batch(events[:4]), b.handle_batch(events[4:]))
    results = [r for _, r in ra + rb]
    assert results.count("sent") + results.count("digested") == 8
    assert 2 <= results.count("sent") <= 5  # the threshold holds across workers; at worst both digest more
    assert len(wechat.sent) == results.count("sent")


async def test_digest_threshold_counts_earlier_batches(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    now = datetime(2026, 11, 21, 4, 0, 10, tzinfo=UTC)
    notifier, queue = make_notifier({"wechat": wechat_sender}, clock=lambda: now)  # threshold 5 per minute
    events = [classified(i) for i in range(7)]
    await bind_wechat(store, events[0])
    first = [r for _, r in await notifier.handle_batch(events[:3])]
    second = {str(t.event_id): r for t, r in await notifier.handle_batch(events[3:])}
    assert first == ["sent"] * 3
    # alerts 4 and 5 of the minute go out, the rest of the batch goes into the digest
    assert [second[str(e.event_id)] for e in events[3:]] == ["sent", "sent", "digested", "digested"]
    assert [topic for topic, _ in queue.items] == ["notify.deferred"]
    assert len(wechat.sent) == 5


async def test_hourly_rate_limit_holds_across_windows_and_resets_with_the_hour(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    clock = [datetime(2026, 11, 21, 4, 0, 10, tzinfo=UTC)]
    limits = Limits(digest_threshold_per_minute=100, rate_limit_per_hour=3, digest_window_s=60)
    notifier, _ = make_notifier({"wechat": wechat_sender}, clock=lambda: clock[0], limits=limits)
    events = [classified(i) for i in range(6)]
    await bind_wechat(store, events[0])
    results = []
    for i, ev in enumerate(events):  # one event a minute: every digest window is below its threshold
        clock[0] = datetime(2026, 11, 21, 4, i, 10, tzinfo=UTC)
        results += [r for _, r in await notifier.handle_batch([ev])]
    assert results == ["sent"] * 3 + ["digested"] * 3
    clock[0] += timedelta(hours=1)
    assert [r for _, r in await notifier.handle_batch([classified(10)])] == ["sent"]
    assert len(wechat.sent) == 4


async def test_old_hours_are_deleted_once_per_hour_per_worker(store: Store) -> None:
    counter = StoreCounter(store)
    await store.counters.insert_one(
        {"_id": "t1|a|h0", "n": 1, "w": {"m0": 1}}
    )  # an earlier version's counter
    assert await counter.count_many("h1", "m1", {("t1", "a"): 2, ("t1", "b"): 1}) == {
        ("t1", "a"): (2, 2),
        ("t1", "b"): (1, 1),
    }
    assert await store.counters.count_documents({}) == 2  # the old document went with the first call
    assert await counter.count("t1", "a", "h2", "m2", 1) == (1, 1)  # a new hour: h1 deleted
    assert await store.counters.count_documents({"hour": {"$ne": "h2"}}) == 0
    await store.count_alerts("h1", "m1", {("t1", "c"): 1})  # a late writer of the old hour (another worker)
    assert await counter.count("t1", "a", "h2", "m2", 1) == (2, 2)
    assert await store.counters.count_documents({"hour": "h1"}) == 1  # this worker pruned h2 already
    assert await counter.count("t1", "a", "h1", "m1", 1) == (1, 1)  # a clock going back prunes nothing
    assert await store.counters.count_documents({"hour": "h2"}) == 2
    await counter.count("t1", "a", "h3", "m3", 1)
    assert await store.counters.count_documents({"hour": {"$ne": "h3"}}) == 0
