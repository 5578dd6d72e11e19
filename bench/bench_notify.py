"""Notify: deliveries per second per worker, and mail.classified -> delivered latency.

Against the real Kafka and FerretDB and the loopback WeChat API and Web Push service (tests/support), in one
process that is one notify worker:

- ``mongodb_insert_update_pairs_rate``: the database alone, an insert and an update by ``_id`` per item (the
  least a dedupe claim plus a status update costs), as a ceiling for the figures below.
- ``notify_senders_rate``: the channel layer alone, no database (half WeChat, half Web Push), concurrency 128;
  the loopback servers run in the same process and share its CPU.
- ``notify_domain_deliveries_rate``: the domain path alone (preferences, bindings, digest counters, dedupe claim,
  WeChat template/send over HTTP with its token cache, Web Push with VAPID + aes128gcm, status update), events
  handled in batches of 200 by ``Notifier.handle_batch``, as the consumer does.
- ``notify_kafka_deliveries_rate``: the same through the service's Kafka consumer: a backlog of mail.classified
  records drained by one worker, from first poll to last delivery.
- ``notify_classified_to_delivered_p50/p99``: paced publishes (well below capacity), from the publish call to the
  loopback WeChat server accepting the message; the loopback answers at once, so no provider latency is in it.

Prints ``figure: NAME = VALUE UNIT`` lines; ``--quick`` runs smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import figure, infra, percentile
from pydantic import SecretStr

from laifaxin_notify.app import create_app
from laifaxin_notify.channels.webpush import WebPushSender, load_vapid
from laifaxin_notify.channels.wechat import WeChatSender
from laifaxin_notify.consumer import KafkaQueue, register
from laifaxin_notify.pipeline import Limits, MemoryQueue, Notifier
from laifaxin_notify.settings import NotifySettings
from laifaxin_notify.store import Binding, Store, push_target_id
from laifaxin_shared.events import MailClassified
from laifaxin_shared.kafka import delete_topics, ensure_topics, make_broker, publish_event
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.topics import TOPICS, spec
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

APPID, SECRET, TEMPLATE = "wx-bench", "bench-secret", "TPL_NEW_REPLY"


def events(n: int, users: int, tenant: str) -> list[MailClassified]:
    base = MailClassified.model_validate(spec("mail.classified").examples()[0])
    return [
        base.model_copy(
            update={
                "event_id": uuid.uuid4(),
                "tenant_id": tenant,
                "user_id": f"u{i % users}",
                "category": "inquiry",
                "ref": base.ref.model_copy(update={"uid": i + 1}),
                "subject": f"Quotation {i}",
            }
        )
        for i in range(n)
    ]


async def bind_all(store: Store, tenant: str, users: int, push: PushService | None) -> None:
    for u in range(users):
        await store.put_binding(Binding(tenant, f"u{u}", "wechat", f"o{u}", {}))
        if push is not None:
            sub = push.subscribe()
            data = {"endpoint": sub["endpoint"], "keys": sub["keys"]}
            await store.put_binding(
                Binding(tenant, f"u{u}", "webpush", push_target_id(sub["endpoint"]), data)
            )


async def bench_domain(mongo_url: str, n: int) -> None:
    client = make_mongo_client(mongo_url)
    db_name = f"bench_notify_{uuid.uuid4().hex[:8]}"
    store = Store(client[db_name])
    await store.ensure_indexes()
    try:
        async with WeChatServer(apps={APPID: SECRET}, templates={TEMPLATE}) as wx, PushService() as push:
            wechat = WeChatSender(base_url=wx.base_url, appid=APPID, secret=SECRET, template_id=TEMPLATE)
            webpush = WebPushSender(vapid=load_vapid(""), subject="mailto:bench@laifa.xin")
            notifier = Notifier(
                store,
                {"wechat": wechat, "webpush": webpush},
                MemoryQueue(),
                retry_delays_s=[30, 300, 3600],
                limits=Limits(5, 1000, 60),
                concurrency=128,
            )
            tenant = "bench"
            users = max(n // 2, 1)
            await bind_all(store, tenant, users, push)
            evs = events(n, users, tenant)
            t0 = time.perf_counter()
            batch = 200
            results: list[Any] = []
            for i in range(0, n, batch):
                results.append(await notifier.handle_batch(evs[i : i + batch]))  # as the consumer does
            elapsed = time.perf_counter() - t0
            sent = sum(1 for rs in results for _, r in rs if r == "sent")
            assert sent == len(wx.sent) + len(push.received) == 2 * n, (
                sent,
                len(wx.sent),
                len(push.received),
            )
            figure("notify_domain_deliveries_rate", sent / elapsed, "deliveries/s")
            figure("notify_domain_events_rate", n / elapsed, "events/s")
            await wechat.aclose()
            await webpush.aclose()
    finally:
        await client.drop_database(db_name)
        await client.close()


async def bench_store_baseline(mongo_url: str, n: int) -> None:
    """The database's own pace in this run: concurrent insert_one + update_one by _id (one delivery's minimum)."""
    client = make_mongo_client(mongo_url)
    db_name = f"bench_notify_base_{uuid.uuid4().hex[:8]}"
    col = client[db_name]["d"]
    await col.insert_one({"_id": "warm"})
    sem = asyncio.Semaphore(100)

    async def one(i: int) -> None:
        async with sem:
            await col.insert_one({"_id": f"k{i}", "status": "pending"})
            await col.update_one({"_id": f"k{i}"}, {"$set": {"status": "sent"}})

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    figure("mongodb_insert_update_pairs_rate", n / (time.perf_counter() - t0), "pairs/s")
    await client.drop_database(db_name)
    await client.close()


async def bench_senders(n: int) -> None:
    """The channel layer alone (no database): WeChat template/send and Web Push with VAPID + aes128gcm."""
    from laifaxin_notify.models import AlertContent, DeliveryTask, dedupe_key

    async with WeChatServer(apps={APPID: SECRET}, templates={TEMPLATE}) as wx, PushService() as push:
        wechat = WeChatSender(base_url=wx.base_url, appid=APPID, secret=SECRET, template_id=TEMPLATE)
        webpush = WebPushSender(vapid=load_vapid(""), subject="mailto:bench@laifa.xin")
        subs = [push.subscribe() for _ in range(50)]
        content = AlertContent(
            title="新询盘 New inquiry", sender="Buyer", subject="Quotation", url="https://x/1"
        )
        jobs = []
        for i in range(n):
            key = dedupe_key(str(i), "u", "x", "t")
            task = DeliveryTask(
                dedupe_key=key,
                tenant_id="t",
                user_id="u",
                channel="wechat",
                target_id="o",
                event_id=str(i),
                content=content,
            )
            if i % 2:
                sub = subs[i % len(subs)]
                b = Binding("t", "u", "webpush", "p", {"endpoint": sub["endpoint"], "keys": sub["keys"]})
                jobs.append((webpush, task, b))
            else:
                jobs.append((wechat, task, Binding("t", "u", "wechat", f"o{i}", {})))
        sem = asyncio.Semaphore(128)

        async def one(sender: Any, task: Any, b: Binding) -> str:
            async with sem:
                return str((await sender.send(task, b)).kind)

        t0 = time.perf_counter()
        kinds = await asyncio.gather(*(one(*j) for j in jobs))
        elapsed = time.perf_counter() - t0
        assert kinds.count("sent") == n, kinds[:5]
        figure("notify_senders_rate", n / elapsed, "deliveries/s")
        await wechat.aclose()
        await webpush.aclose()


def settings_for(kafka: str, mongo_url: str, prefix: str, wx: WeChatServer) -> NotifySettings:
    return NotifySettings(
        kafka_bootstrap_servers=kafka,
        mongodb_url=SecretStr(mongo_url),
        mongodb_database=f"bench_notify_{uuid.uuid4().hex[:8]}",
        topic_prefix=prefix,
        environment="test",
        jwt_secret=SecretStr("bench-jwt-secret-0123456789abcdef0123"),
        wechat_api_base=wx.base_url,
        wechat_appid=APPID,
        wechat_secret=SecretStr(SECRET),
        wechat_template_id=TEMPLATE,
        log_level="WARNING",
        send_concurrency=128,
        batch_max_records=500,
    )


async def bench_kafka(kafka: str, mongo_url: str, n: int, latency_n: int, rate: float) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topics = [
        t for name, t in TOPICS.items() if name.startswith(("notify.", "mail.classified", "mailbox.removed"))
    ]
    await ensure_topics(kafka, topics, prefix=prefix, replication_factor=1)
    async with WeChatServer(apps={APPID: SECRET}, templates={TEMPLATE}) as wx:
        settings = settings_for(kafka, mongo_url, prefix, wx)
        client = make_mongo_client(mongo_url)
        store = Store(client[settings.mongodb_database])
        await store.ensure_indexes()
        tenant = "bench"
        users = max(n // 2, 1)
        await bind_all(store, tenant, users, None)
        for u in range(latency_n):  # bound before the worker runs: setup writes never race the measured path
            await store.put_binding(Binding(tenant, f"lat{u}", "wechat", f"olat{u}", {}))
        producer = make_broker(settings, client_id="bench-producer")
        await producer.start()
        backlog = events(n, users, tenant)
        for e in backlog:
            await publish_event(producer, e, prefix=prefix)

        # one worker: the service's consumers with its real senders
        senders = {
            "wechat": WeChatSender(base_url=wx.base_url, appid=APPID, secret=SECRET, template_id=TEMPLATE)
        }
        worker = make_broker(settings, client_id="bench-worker")
        notifier = Notifier(
            store,
            senders,
            KafkaQueue(worker, prefix),
            retry_delays_s=settings.retry_delays_s,
            limits=Limits(5, 1000, 60),
            concurrency=settings.send_concurrency,
        )
        register(worker, settings, lambda: notifier)
        t0 = time.perf_counter()
        await worker.start()
        async with asyncio.timeout(300):
            while len(wx.sent) < n:  # noqa: ASYNC110  # polling the loopback server's record, 10 ms
                await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        figure("notify_kafka_deliveries_rate", n / elapsed, "deliveries/s")

        # latency: paced publishes, publish -> WeChat accepted
        base = events(latency_n, 1, tenant)
        published: dict[str, float] = {}
        for i, e in enumerate(base):
            e = e.model_copy(update={"user_id": f"lat{i}"})
            published[f"olat{i}"] = time.perf_counter()
            await publish_event(producer, e, prefix=prefix)
            await asyncio.sleep(1 / rate)
        async with asyncio.timeout(60):
            while sum(1 for m in wx.sent if m.openid.startswith("olat")) < latency_n:  # noqa: ASYNC110  # polling
                await asyncio.sleep(0.01)
        # SentMessage.at is time.monotonic(); perf_counter and monotonic share a clock on Linux
        lat_ms = [(m.at - published[m.openid]) * 1000 for m in wx.sent if m.openid in published]
        figure("notify_classified_to_delivered_p50", percentile(lat_ms, 50), "ms")
        figure("notify_classified_to_delivered_p99", percentile(lat_ms, 99), "ms")
        await worker.stop()
        await producer.stop()
        await senders["wechat"].aclose()
        await client.drop_database(settings.mongodb_database)
        await client.close()
    await delete_topics(kafka, prefix)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    servers = infra()
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or servers["kafka_bootstrap_servers"]
    mongo_url = os.environ.get("MONGODB_URL") or servers["mongodb_url"]
    n = 300 if args.quick else 1000
    await bench_store_baseline(mongo_url, n)
    await bench_senders(n)
    await bench_domain(mongo_url, n)
    # latency is measured below capacity (about 10 events/s on the shared FerretDB), so it shows the path, not a queue
    await bench_kafka(kafka, mongo_url, n, latency_n=40 if args.quick else 200, rate=10.0)


if __name__ == "__main__":
    _ = create_app  # the service entry the figures describe
    asyncio.run(main())
