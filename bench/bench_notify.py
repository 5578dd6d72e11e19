"""Notify: deliveries per second per worker, and mail.classified -> delivered latency.

Against the real Kafka and FerretDB and the loopback WeChat API and Web Push service (tests/support). This
process is one notify worker; the loopback WeChat API and Web Push service stand for remote providers and run
in a separate child process (:class:`RemoteProviders`), so their work (JSON checks, VAPID verification,
aes128gcm decryption) does not take the worker's CPU. Both share the machine's cores with the database and
the broker, so the figures are per worker on this machine, not per core.

- ``mongodb_insert_update_pairs_rate``: the database alone, an insert and an update by ``_id`` per item (what a
  dedupe claim plus a status update would cost one at a time), for comparison with the figures below.
- ``notify_senders_rate``: the channel layer alone, no database (half WeChat, half Web Push), concurrency 128.
- ``notify_domain_deliveries_rate``: the domain path alone (preferences, bindings, digest counters, dedupe claim,
  WeChat template/send over HTTP with its token cache, Web Push with VAPID + aes128gcm, sent marks), events
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
import multiprocessing
import os
import sys
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import figure, infra, percentile
from pydantic import SecretStr

from laifaxin_notify.app import create_app
from laifaxin_notify.channels.webpush import WebPushSender, load_vapid
from laifaxin_notify.channels.wechat import WeChatSender
from laifaxin_notify.consumer import KafkaQueue, register
from laifaxin_notify.egress import EgressGuard
from laifaxin_notify.models import AlertContent, DeliveryTask, dedupe_key
from laifaxin_notify.pipeline import Limits, MemoryQueue, Notifier
from laifaxin_notify.settings import NotifySettings
from laifaxin_notify.store import Binding, Store, push_target_id
from laifaxin_shared.events import MailClassified
from laifaxin_shared.kafka import delete_topics, ensure_topics, make_broker, publish_event
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.topics import TOPICS, spec

APPID, SECRET, TEMPLATE = "wx-bench", "bench-secret", "TPL_NEW_REPLY"


# the providers, in their own process ------------------------------------------------------------------------
def _providers_main(conn: Connection) -> None:
    asyncio.run(_serve_providers(conn))


async def _serve_providers(conn: Connection) -> None:
    """Child process: the loopback WeChat API and Web Push service, driven by commands on ``conn``."""
    from tests.support.push_service import PushService
    from tests.support.wechat_server import WeChatServer

    loop = asyncio.get_running_loop()
    async with WeChatServer(apps={APPID: SECRET}, templates={TEMPLATE}) as wx, PushService() as push:
        conn.send((wx.base_url, push.base_url))
        while True:
            cmd, arg = await loop.run_in_executor(None, conn.recv)
            if cmd == "stop":
                conn.send(None)
                return
            if cmd == "subscribe":
                conn.send([push.subscribe() for _ in range(int(arg))])
            elif cmd == "counts":
                conn.send((len(wx.sent), len(push.received), len(push.rejected)))
            elif cmd == "sent_at":  # (openid, time.monotonic() when accepted) of openids starting with arg
                conn.send([(m.openid, m.at) for m in wx.sent if m.openid.startswith(str(arg))])
            elif cmd == "reset":
                wx.sent.clear()
                push.received.clear()
                push.rejected.clear()
                conn.send(None)


class RemoteProviders:
    """``async with RemoteProviders() as p``: the loopback providers in a child process (spawned, so it shares
    nothing with this one but the machine). ``wechat_url`` / ``push_url`` are their bases."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_providers_main, args=(child,), daemon=True)
        self._lock = asyncio.Lock()
        self.wechat_url = self.push_url = ""

    async def _call(self, cmd: str, arg: object = None) -> Any:
        async with self._lock:
            self._conn.send((cmd, arg))
            return await asyncio.to_thread(self._conn.recv)

    async def __aenter__(self) -> RemoteProviders:
        self._proc.start()
        self.wechat_url, self.push_url = await asyncio.to_thread(self._conn.recv)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._call("stop")
        await asyncio.to_thread(self._proc.join, 10)

    async def subscribe(self, n: int) -> list[dict[str, Any]]:
        """``n`` new push subscriptions, as ``PushSubscription.toJSON()``."""
        subs: list[dict[str, Any]] = await self._call("subscribe", n)
        return subs

    async def counts(self) -> tuple[int, int, int]:
        """(WeChat messages accepted, pushes accepted, pushes rejected)."""
        wx, push, rejected = await self._call("counts")
        return int(wx), int(push), int(rejected)

    async def sent_at(self, prefix: str) -> list[tuple[str, float]]:
        """(openid, monotonic time accepted) of the WeChat messages to openids starting with ``prefix``."""
        return [(o, float(t)) for o, t in await self._call("sent_at", prefix)]

    async def reset(self) -> None:
        await self._call("reset")

    async def wait_sent(self, wechat: int, push: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while True:
                wx, pushed, rejected = await self.counts()
                assert rejected == 0, f"{rejected} pushes rejected"
                if wx >= wechat and pushed >= push:
                    return
                await asyncio.sleep(0.01)


# workload ---------------------------------------------------------------------------------------------------
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


async def bind_all(store: Store, tenant: str, users: int, providers: RemoteProviders | None) -> None:
    subs = await providers.subscribe(users) if providers is not None else []
    for u in range(users):
        await store.put_binding(Binding(tenant, f"u{u}", "wechat", f"o{u}", {}))
        if subs:
            data = {"endpoint": subs[u]["endpoint"], "keys": subs[u]["keys"]}
            await store.put_binding(
                Binding(tenant, f"u{u}", "webpush", push_target_id(subs[u]["endpoint"]), data)
            )


def wechat_sender(providers: RemoteProviders) -> WeChatSender:
    return WeChatSender(base_url=providers.wechat_url, appid=APPID, secret=SECRET, template_id=TEMPLATE)


# the figures ------------------------------------------------------------------------------------------------
async def bench_store_baseline(mongo_url: str, n: int) -> None:
    """The database's own pace in this run: concurrent insert_one + update_one by _id."""
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


async def bench_senders(providers: RemoteProviders, n: int) -> None:
    """The channel layer alone (no database): WeChat template/send and Web Push with VAPID + aes128gcm."""
    await providers.reset()
    wechat = wechat_sender(providers)
    webpush = WebPushSender(
        vapid=load_vapid(""), subject="mailto:bench@laifa.xin", guard=EgressGuard("127.0.0.0/8")
    )
    subs = await providers.subscribe(50)
    content = AlertContent(title="新询盘 New inquiry", sender="Buyer", subject="Quotation", url="https://x/1")
    jobs: list[tuple[Any, DeliveryTask, Binding]] = []
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

    async def one(sender: Any, task: DeliveryTask, b: Binding) -> str:
        async with sem:
            return str((await sender.send(task, b)).kind)

    t0 = time.perf_counter()
    kinds = await asyncio.gather(*(one(*j) for j in jobs))
    elapsed = time.perf_counter() - t0
    assert kinds.count("sent") == n, kinds[:5]
    figure("notify_senders_rate", n / elapsed, "deliveries/s")
    await wechat.aclose()
    await webpush.aclose()


async def bench_domain(providers: RemoteProviders, mongo_url: str, n: int) -> None:
    await providers.reset()
    client = make_mongo_client(mongo_url)
    db_name = f"bench_notify_{uuid.uuid4().hex[:8]}"
    store = Store(client[db_name])
    await store.ensure_indexes()
    try:
        wechat = wechat_sender(providers)
        webpush = WebPushSender(
            vapid=load_vapid(""), subject="mailto:bench@laifa.xin", guard=EgressGuard("127.0.0.0/8")
        )
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
        await bind_all(store, tenant, users, providers)
        evs = events(n, users, tenant)
        t0 = time.perf_counter()
        batch = 200
        results: list[Any] = []
        for i in range(0, n, batch):
            results.append(await notifier.handle_batch(evs[i : i + batch]))  # as the consumer does
        elapsed = time.perf_counter() - t0
        sent = sum(1 for rs in results for _, r in rs if r == "sent")
        wx, pushed, _ = await providers.counts()
        assert sent == wx + pushed == 2 * n, (sent, wx, pushed)
        figure("notify_domain_deliveries_rate", sent / elapsed, "deliveries/s")
        figure("notify_domain_events_rate", n / elapsed, "events/s")
        await wechat.aclose()
        await webpush.aclose()
    finally:
        await client.drop_database(db_name)
        await client.close()


def settings_for(kafka: str, mongo_url: str, prefix: str, providers: RemoteProviders) -> NotifySettings:
    return NotifySettings(
        kafka_bootstrap_servers=kafka,
        mongodb_url=SecretStr(mongo_url),
        mongodb_database=f"bench_notify_{uuid.uuid4().hex[:8]}",
        topic_prefix=prefix,
        environment="test",
        jwt_secret=SecretStr("bench-jwt-secret-0123456789abcdef0123"),
        wechat_api_base=providers.wechat_url,
        wechat_appid=APPID,
        wechat_secret=SecretStr(SECRET),
        wechat_template_id=TEMPLATE,
        log_level="WARNING",
        send_concurrency=128,
        batch_max_records=500,
    )


async def bench_kafka(
    providers: RemoteProviders, kafka: str, mongo_url: str, n: int, latency_n: int, rate: float
) -> None:
    await providers.reset()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topics = [
        t for name, t in TOPICS.items() if name.startswith(("notify.", "mail.classified", "mailbox.removed"))
    ]
    await ensure_topics(kafka, topics, prefix=prefix, replication_factor=1)
    settings = settings_for(kafka, mongo_url, prefix, providers)
    client = make_mongo_client(mongo_url)
    store = Store(client[settings.mongodb_database])
    await store.ensure_indexes()
    tenant = "bench"
    users = max(n // 2, 1)
    await bind_all(store, tenant, users, None)
    for u in range(latency_n):  # bound before the worker runs: setup writes never race the measured path
        await store.put_binding(Binding(tenant, f"lat{u}", "wechat", f"olat{u}", {}))
    producer = make_broker(settings, client_id="bench-producer", logger=None)
    await producer.start()
    backlog = events(n, users, tenant)
    for e in backlog:
        await publish_event(producer, e, prefix=prefix)

    # one worker: the service's consumers with its real senders
    senders = {"wechat": wechat_sender(providers)}
    worker = make_broker(settings, client_id="bench-worker", logger=None)
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
    await providers.wait_sent(n, 0, timeout=300)
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
    await providers.wait_sent(n + latency_n, 0, timeout=60)
    # the provider records time.monotonic(); perf_counter and monotonic are the same system-wide clock on Linux
    by_openid = {openid: (at - published[openid]) * 1000 for openid, at in await providers.sent_at("olat")}
    lat_ms = list(by_openid.values())
    figure("notify_classified_to_delivered_p50", percentile(lat_ms, 50), "ms")
    figure("notify_classified_to_delivered_p99", percentile(lat_ms, 99), "ms")
    figure("notify_classified_to_delivered_max", max(lat_ms), "ms")
    slowest = sorted(((ms, openid.removeprefix("olat")) for openid, ms in by_openid.items()), reverse=True)[
        :3
    ]
    print("slowest (ms, publish #):", ", ".join(f"{ms:.0f} #{i}" for ms, i in slowest), flush=True)
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
    async with RemoteProviders() as providers:
        await bench_senders(providers, n)
        await bench_domain(providers, mongo_url, n)
        # latency is measured below capacity (10 events/s), so it shows the path, not a queue
        await bench_kafka(providers, kafka, mongo_url, n, latency_n=40 if args.quick else 200, rate=10.0)


if __name__ == "__main__":
    _ = create_app  # the service entry the figures describe
    asyncio.run(main())
