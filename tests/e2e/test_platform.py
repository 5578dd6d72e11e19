"""The whole platform as separate processes on real servers (issue 7): bind, append, classify, alert.

In every scenario each message ends classified and alerted exactly once per chosen channel, and nothing is
lost: a sync worker killed with SIGKILL mid-stream, the Kafka broker restarted mid-stream, sync scaled from
1 to 3 workers during the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.platform import Platform

from .conftest import OwnKafka, corpus_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def test_bind_append_classify_alert_every_category(platform: Platform, new_mail_account: Any) -> None:
    account = new_mail_account()
    await platform.bind_mailbox(account)
    messages = corpus_messages()
    await platform.append(account, messages)
    await platform.wait_for(len(messages))
    categories = {c.category for c in platform.seen.classified.values()}
    assert categories == {"to_reply", "inquiry", "ooo", "rejection", "bounce", "notification"}
    assert all(not c.initial_sync for c in platform.seen.classified.values())
    await asyncio.sleep(2)  # anything duplicated would arrive now
    platform.assert_exactly_once()


async def test_sync_worker_killed_mid_stream(platform: Platform, new_mail_account: Any) -> None:
    account = new_mail_account()
    await platform.bind_mailbox(account)
    messages = corpus_messages()
    appending = asyncio.create_task(platform.append(account, messages))
    async with asyncio.timeout(60):
        while len(platform.seen.received) < 3:  # noqa: ASYNC110  (polling what another process publishes)
            await asyncio.sleep(0.05)
    # the worker is publishing: kill it in the middle of the stream
    [worker] = platform.stack.sync_workers()
    worker.kill()
    await appending
    await platform.stack.add_sync_worker()
    await platform.wait_for(len(messages))
    await asyncio.sleep(2)
    assert len(platform.seen.classified) == len(messages)
    platform.assert_exactly_once()


async def test_kafka_broker_restarted_mid_stream(
    platform: Platform, new_mail_account: Any, own_kafka: OwnKafka
) -> None:
    account = new_mail_account()
    await platform.bind_mailbox(account)
    messages = corpus_messages()
    half = len(messages) // 2
    await platform.append(account, messages[:half])
    await platform.wait_for(half)
    await asyncio.to_thread(own_kafka.stop)
    await platform.append(account, messages[half:])  # mail keeps arriving while the broker is down
    await asyncio.sleep(3)
    await asyncio.to_thread(own_kafka.start)
    await platform.wait_for(len(messages), timeout_s=240)
    await asyncio.sleep(2)
    assert len(platform.seen.classified) == len(messages)
    platform.assert_exactly_once()


async def test_sync_scaled_from_one_to_three_workers(platform: Platform, new_mail_account: Any) -> None:
    accounts = [new_mail_account() for _ in range(4)]
    for account in accounts:
        await platform.bind_mailbox(account)
    messages = corpus_messages()
    per_box = messages[:6]
    await asyncio.gather(*(platform.append(a, per_box[:3]) for a in accounts))
    await platform.stack.add_sync_worker()
    await platform.stack.add_sync_worker()
    await asyncio.gather(*(platform.append(a, per_box[3:]) for a in accounts))
    await platform.wait_for(len(accounts) * len(per_box), timeout_s=240)
    await asyncio.sleep(2)
    assert len(platform.stack.sync_workers()) == 3
    received_per_box = {mb: 0 for mb in platform.mailboxes}
    for ev in platform.seen.received.values():
        received_per_box[ev.ref.mailbox_id] += 1
    platform.assert_exactly_once()
    assert len(platform.seen.classified) == len(accounts) * len(per_box)
