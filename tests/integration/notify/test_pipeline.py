"""The domain against the real MongoDB-wire server and the loopback WeChat and Web Push services (no broker).

Tasks that would go to Kafka topics land in a :class:`MemoryQueue`; the Kafka path is in test_service.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from laifaxin_notify.channels.webpush import WebPushSender
from laifaxin_notify.channels.wechat import WeChatSender
from laifaxin_notify.models import DeliveryTask, Preferences, QuietHours, dedupe_key
from laifaxin_notify.pipeline import DEFERRED_TOPIC, DLQ_TOPIC, Notifier
from laifaxin_notify.planning import render
from laifaxin_notify.store import Store
from laifaxin_shared.events import MailboxRemoved
from tests.integration.notify.conftest import bind_push, bind_wechat, classified
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration


async def test_inquiry_alerts_each_channel_once_and_redelivery_sends_nothing(
    store: Store,
    wechat: WeChatServer,
    push: PushService,
    wechat_sender: WeChatSender,
    push_sender: WebPushSender,
    make_notifier: Any,
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender, "webpush": push_sender})
    ev = classified()
    await bind_wechat(store, ev)
    sub = push.subscribe()
    await bind_push(store, ev, sub)

    results = await notifier.handle_classified(ev)
    assert sorted(r for _, r in results) == ["sent", "sent"]
    again = await notifier.handle_classified(ev)  # redelivered event / restarted worker
    assert [r for _, r in again] == ["duplicate", "duplicate"]

    [msg] = wechat.sent
    wx_task = next(t for t, _ in results if t.channel == "wechat")
    assert msg.client_msg_id == wx_task.dedupe_key and msg.openid == "oUSER1"
    assert all(len(v["value"]) <= 20 and "\n" not in v["value"] for v in msg.data.values())
    assert wechat.stable_token_requests == 1 and wechat.token_requests == 0

    [pushed] = push.for_endpoint(sub["endpoint"])
    push_task = next(t for t, _ in results if t.channel == "webpush")
    body = pushed.json()
    assert body["tag"] == push_task.dedupe_key and body["url"].endswith(f"/{ev.ref.uid}")
    assert pushed.headers["ttl"] == "3600" and pushed.headers["urgency"] == "high"
    assert pushed.headers["topic"] == push_task.dedupe_key[:32]
    assert (
        pushed.vapid_claims["sub"] == "mailto:ops@laifa.xin" and pushed.vapid_claims["aud"] == push.base_url
    )
    assert queue.items == []

    history = await store.history(ev.tenant_id, ev.user_id, event_id=str(ev.event_id))
    assert {(h["channel"], h["status"]) for h in history} == {("wechat", "sent"), ("webpush", "sent")}
    assert next(h for h in history if h["channel"] == "wechat")["provider_id"] == str(msg.msgid)


async def test_initial_sync_and_unchosen_categories_never_alert(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, _ = make_notifier({"wechat": wechat_sender})
    ev = classified(initial_sync=True)
    await bind_wechat(store, ev)
    assert await notifier.handle_classified(ev) == []
    assert await notifier.handle_classified(classified(1, category="ooo")) == []
    await store.put_preferences(ev.tenant_id, ev.user_id, Preferences(categories=["ooo"]))
    assert [r for _, r in await notifier.handle_classified(classified(2, category="ooo"))] == ["sent"]
    assert len(wechat.sent) == 1


async def test_concurrent_claims_send_once(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, _ = make_notifier({"wechat": wechat_sender})
    ev = classified()
    await bind_wechat(store, ev)
    other, _ = make_notifier({"wechat": wechat_sender})  # a second worker
    results = await asyncio.gather(*(n.handle_classified(ev) for n in [notifier, other] * 5))
    flat = [r for rs in results for _, r in rs]
    assert flat.count("sent") == 1 and len(wechat.sent) == 1
    assert set(flat) <= {"sent", "duplicate", "busy"}


async def test_token_refreshes_once_on_expiry_and_one_fetch_serves_a_burst(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, _ = make_notifier({"wechat": wechat_sender})
    events = [classified(i) for i in range(20)]
    for ev in events:
        await bind_wechat(store, ev)
    await store.put_preferences(events[0].tenant_id, events[0].user_id, Preferences(digest=False))
    await asyncio.gather(*(notifier.handle_classified(e) for e in events))
    assert wechat.stable_token_requests == 1 and len(wechat.sent) == 20
    wechat.expire_tokens()  # 42001 on the next send: drop, refetch, retry once inline
    results = await notifier.handle_classified(classified(99))
    assert [r for _, r in results] == ["sent"]
    assert wechat.stable_token_requests == 2 and len(wechat.sent) == 21


async def test_system_busy_goes_to_retry_topic_and_succeeds_later(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender})
    ev = classified()
    await bind_wechat(store, ev)
    wechat.script(-1)
    [(_, result)] = await notifier.handle_classified(ev)
    assert result == "retry" and wechat.sent == []
    [(topic, queued)] = queue.items
    assert topic == "notify.retry.0" and queued.attempt == 1 and queued.due_at is not None
    [h] = await store.history(ev.tenant_id, ev.user_id)
    assert h["status"] == "retrying" and "errcode -1" in h["last_error"]
    assert await notifier.deliver(queued) == "sent"
    assert await notifier.deliver(queued) == "duplicate"  # the retry record redelivered
    assert len(wechat.sent) == 1


async def test_retries_exhausted_go_to_the_dlq(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender})
    ev = classified()
    await bind_wechat(store, ev)
    wechat.script(-1, -1, -1, -1)
    await notifier.handle_classified(ev)
    topics = []
    while queue.items:
        topic, task = queue.items.pop(0)
        topics.append((topic, task.attempt))
        if topic != DLQ_TOPIC:
            await notifier.deliver(task)
    assert topics == [("notify.retry.0", 1), ("notify.retry.1", 2), ("notify.retry.2", 3), (DLQ_TOPIC, 4)]
    [h] = await store.history(ev.tenant_id, ev.user_id)
    assert h["status"] == "failed" and h["attempts"] == 4


async def test_unfollowed_user_disables_the_binding(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender})
    ev = classified()
    await bind_wechat(store, ev)
    wechat.script(43004)
    assert [r for _, r in await notifier.handle_classified(ev)] == ["skipped"]
    [b] = await store.list_bindings(ev.tenant_id, ev.user_id)
    assert not b.active and queue.items == []
    assert await notifier.handle_classified(classified(1)) == []  # no active binding any more


@pytest.mark.parametrize("errcode", [47003, 40037, 40164])
async def test_configuration_and_payload_errors_are_dead_lettered(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any, errcode: int
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender})
    ev = classified()
    await bind_wechat(store, ev)
    wechat.script(errcode)
    assert [r for _, r in await notifier.handle_classified(ev)] == ["failed"]
    [(topic, task)] = queue.items
    assert topic == DLQ_TOPIC and f"errcode {errcode}" in task.last_error


async def test_quota_waits_long(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender}, retry_delays_s=[30, 300, 3600])
    ev = classified()
    await bind_wechat(store, ev)
    wechat.script(45009)
    before = datetime.now(UTC)
    assert [r for _, r in await notifier.handle_classified(ev)] == ["retry"]
    [(topic, task)] = queue.items
    assert topic == "notify.retry.2"  # the longest level
    assert task.due_at is not None and task.due_at >= before + timedelta(seconds=7200)


async def test_push_status_handling(
    store: Store, push: PushService, push_sender: WebPushSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"webpush": push_sender})
    ev = classified()
    gone = push.subscribe()
    limited = push.subscribe()
    big = push.subscribe()
    flaky = push.subscribe()
    for s in (gone, limited, big, flaky):
        await bind_push(store, ev, s)
    push.script(gone["endpoint"], 410)
    push.script(limited["endpoint"], 429, retry_after="120")
    push.script(big["endpoint"], 413)
    push.script(flaky["endpoint"], 500)
    before = datetime.now(UTC)
    results = {t.target_id: r for t, r in await notifier.handle_classified(ev)}
    by_endpoint = {
        b.data["endpoint"]: b.target_id for b in await store.list_bindings(ev.tenant_id, ev.user_id)
    }
    assert gone["endpoint"] not in by_endpoint  # 410: subscription deleted
    assert results[by_endpoint[big["endpoint"]]] == "sent"
    [short] = push.for_endpoint(big["endpoint"])
    assert "body" not in short.json() and short.json()["tag"]
    assert results[by_endpoint[limited["endpoint"]]] == "retry"
    assert results[by_endpoint[flaky["endpoint"]]] == "retry"
    due = {t.target_id: t.due_at for _, t in queue.items}
    limited_due = due[by_endpoint[limited["endpoint"]]]
    assert limited_due is not None and limited_due >= before + timedelta(seconds=119)
    assert sorted(r for r in results.values()) == ["retry", "retry", "sent", "skipped"]


async def test_unknown_subscription_is_deleted_on_404(
    store: Store, push: PushService, push_sender: WebPushSender, make_notifier: Any
) -> None:
    notifier, _ = make_notifier({"webpush": push_sender})
    ev = classified()
    sub = push.subscribe()
    await bind_push(store, ev, sub)
    push.unsubscribe(sub["endpoint"])
    assert [r for _, r in await notifier.handle_classified(ev)] == ["skipped"]
    assert await store.list_bindings(ev.tenant_id, ev.user_id) == []


async def test_quiet_hours_defer_or_drop(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    now = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    notifier, queue = make_notifier({"wechat": wechat_sender}, clock=lambda: now)
    ev = classified()
    await bind_wechat(store, ev)
    night = QuietHours(start=time(22), end=time(7, 30), timezone="Asia/Shanghai")
    await store.put_preferences(ev.tenant_id, ev.user_id, Preferences(quiet_hours=night))
    assert [r for _, r in await notifier.handle_classified(ev)] == ["deferred"]
    [(topic, task)] = queue.items
    assert topic == DEFERRED_TOPIC and task.due_at == datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    assert wechat.sent == []
    assert await notifier.deliver(task) == "sent"  # when due, the deferred task is delivered once
    assert await notifier.deliver(task) == "duplicate"

    await store.put_preferences(
        ev.tenant_id, ev.user_id, Preferences(quiet_hours=night.model_copy(update={"action": "drop"}))
    )
    ev2 = classified(2)
    assert [r for _, r in await notifier.handle_classified(ev2)] == ["dropped"]
    [h] = await store.history(ev.tenant_id, ev.user_id, event_id=str(ev2.event_id))
    assert h["status"] == "skipped"


async def test_burst_becomes_a_digest(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    now = datetime(2026, 11, 21, 4, 0, 10, tzinfo=UTC)  # a fixed clock: all nine inside one minute window
    notifier, queue = make_notifier({"wechat": wechat_sender}, clock=lambda: now)
    events = [classified(i) for i in range(9)]
    await bind_wechat(store, events[0])
    results = []
    for ev in events:
        results += [r for _, r in await notifier.handle_classified(ev)]
    assert results[:5] == ["sent"] * 5 and set(results[5:]) == {"digested"}
    [(topic, digest)] = queue.items
    assert topic == DEFERRED_TOPIC and digest.kind == "digest"
    assert digest.due_at == datetime(2026, 11, 21, 4, 1, tzinfo=UTC)  # the window's end
    assert await notifier.deliver(digest) == "sent"
    assert len(wechat.sent) == 6
    summary = wechat.sent[-1]
    assert summary.data["thing2"]["value"] == "4 new replies"
    statuses = [h["status"] for h in await store.history(events[0].tenant_id, events[0].user_id, limit=100)]
    assert statuses.count("digested") == 4 and statuses.count("sent") == 6


async def test_live_lease_is_requeued_and_expired_lease_taken_over(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender}, lease_s=30)
    ev = classified()
    await bind_wechat(store, ev)
    task = DeliveryTask(
        dedupe_key=dedupe_key(str(ev.event_id), ev.user_id, "wechat", "oUSER1"),
        tenant_id=ev.tenant_id,
        user_id=ev.user_id,
        channel="wechat",
        target_id="oUSER1",
        event_id=str(ev.event_id),
        mailbox_id=ev.ref.mailbox_id,
        content=render(ev, "https://x"),
    )
    assert (await store.acquire(task, 30)).owned  # a worker claimed it, then died before sending
    assert await notifier.deliver(task) == "busy"
    [(topic, requeued)] = queue.items
    assert topic == "notify.retry.0" and requeued.due_at is not None
    # The dead worker's lease runs out (set in the past rather than slept through: a loaded machine can
    # take longer than a short lease between two store calls).
    await store.deliveries.update_one(
        {"_id": task.dedupe_key}, {"$set": {"lease_until": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    assert await notifier.deliver(requeued) == "sent"
    assert len(wechat.sent) == 1


async def test_mailbox_removed_cancels_waiting_deliveries(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender})
    ev = classified()
    await bind_wechat(store, ev)
    wechat.script(-1)
    await notifier.handle_classified(ev)
    [(_, task)] = queue.items
    cancelled = await notifier.handle_removed(
        MailboxRemoved(tenant_id=ev.tenant_id, mailbox_id=ev.ref.mailbox_id)
    )
    assert cancelled == 1
    assert await notifier.deliver(task) == "skipped"
    assert await notifier.handle_classified(classified(3)) == []
    assert wechat.sent == []


async def test_wechat_receipt_marks_delivered(
    store: Store, wechat: WeChatServer, wechat_sender: WeChatSender, make_notifier: Any
) -> None:
    notifier: Notifier
    notifier, _ = make_notifier({"wechat": wechat_sender})
    ev = classified()
    await bind_wechat(store, ev)
    await notifier.handle_classified(ev)
    [msg] = wechat.sent
    assert await notifier.wechat_receipt(str(msg.msgid), "success") == 1
    [h] = await store.history(ev.tenant_id, ev.user_id)
    assert h["status"] == "delivered"


async def test_access_token_never_reaches_the_logs(
    store: Store,
    wechat: WeChatServer,
    wechat_sender: WeChatSender,
    make_notifier: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from laifaxin_shared.logging import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("notify-test", "DEBUG", json=True)  # everything that logs, at its most verbose
    try:
        notifier, _ = make_notifier({"wechat": wechat_sender})
        ev = classified()
        await bind_wechat(store, ev)
        wechat.script(47003)  # an error path logs too
        await notifier.handle_classified(ev)
        await notifier.handle_classified(classified(1))
        out = capsys.readouterr().out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    tokens = [tok for tok, _ in wechat._tokens.values()]
    assert tokens and "errcode 47003" in out  # the error path was logged
    assert all(tok not in out for tok in tokens)
    assert "test-app-secret" not in out


async def test_batch_path_matches_the_single_event_rules(
    store: Store,
    wechat: WeChatServer,
    push: PushService,
    wechat_sender: WeChatSender,
    push_sender: WebPushSender,
    make_notifier: Any,
) -> None:
    now = datetime(2026, 11, 21, 4, 0, 10, tzinfo=UTC)
    notifier, queue = make_notifier({"wechat": wechat_sender, "webpush": push_sender}, clock=lambda: now)
    burst = [classified(i) for i in range(8)]  # one user, one batch: 5 alerts, 3 into the digest
    await bind_wechat(store, burst[0])
    sub = push.subscribe()
    await bind_push(store, burst[0], sub)
    other = classified(50, user_id="u_other")
    await bind_wechat(store, other, openid="oOTHER")
    skipped = classified(51, user_id="u_other", initial_sync=True)
    wechat.script(0, 0, 0, 0, -1)  # the fifth WeChat send fails: retry topic
    results = await notifier.handle_batch([*burst, other, burst[0], skipped])
    by_event: dict[str, list[str]] = {}
    for t, r in results:
        by_event.setdefault(t.event_id, []).append(r)
    assert sorted(by_event[str(other.event_id)]) == ["sent"]
    assert str(skipped.event_id) not in by_event
    first_five = [sorted(by_event[str(e.event_id)]) for e in burst[:5]]
    assert sorted(by_event[str(burst[0].event_id)]) == ["sent", "sent"]  # it came twice, alerts once
    flat = [r for rs in first_five for r in rs]
    assert flat.count("sent") == 9 and flat.count("retry") == 1
    assert [sorted(by_event[str(e.event_id)]) for e in burst[5:]] == [["digested", "digested"]] * 3
    topics = sorted(topic for topic, _ in queue.items)
    assert topics == [DEFERRED_TOPIC, DEFERRED_TOPIC, "notify.retry.0"]  # one digest per channel, one retry
    assert len(wechat.sent) == 5 and len(push.for_endpoint(sub["endpoint"])) == 5
    history = await store.history(other.tenant_id, other.user_id)
    assert [(h["status"], h["attempts"]) for h in history] == [("sent", 1)]
    msgid = wechat.messages_for("oOTHER")[0].msgid
    assert await notifier.wechat_receipt(str(msgid), "failed:user block") == 1
    assert (await store.history(other.tenant_id, other.user_id))[0]["status"] == "failed"
    again = await notifier.handle_batch([other])
    assert [r for _, r in again] == ["duplicate"]


async def test_batch_successes_are_marks_that_no_takeover_resends(
    store: Store,
    wechat: WeChatServer,
    push: PushService,
    wechat_sender: WeChatSender,
    push_sender: WebPushSender,
    make_notifier: Any,
) -> None:
    notifier, queue = make_notifier({"wechat": wechat_sender, "webpush": push_sender}, lease_s=0.2)
    ev = classified()
    await bind_wechat(store, ev)
    await bind_push(store, ev, push.subscribe())
    assert sorted(r for _, r in await notifier.handle_batch([ev])) == ["sent", "sent"]
    history = await store.history(ev.tenant_id, ev.user_id)
    assert sorted((h["channel"], h["status"], h["attempts"]) for h in history) == [
        ("webpush", "sent", 1),
        ("wechat", "sent", 1),
    ]
    [wx] = [h for h in history if h["channel"] == "wechat"]
    assert wx["provider_id"] == str(wechat.sent[0].msgid)
    await asyncio.sleep(0.3)  # the claims' leases are over, as if the worker had died after sending
    tasks = [t for t, _ in await notifier.handle_batch([ev])]  # the batch redelivered
    assert len(tasks) == 2
    for task in tasks:  # and each task coming back from a retry topic, which may take over expired leases
        assert await notifier.deliver(task.model_copy(update={"attempt": 1})) == "duplicate"
    assert len(wechat.sent) == 1 and len(push.received) == 1 and queue.items == []
    assert await notifier.wechat_receipt(str(wechat.sent[0].msgid), "success") == 1
    [wx] = [h for h in await store.history(ev.tenant_id, ev.user_id) if h["channel"] == "wechat"]
    assert (wx["status"], wx["attempts"]) == ("delivered", 1)
