"""A notify worker killed with SIGKILL mid-batch, then replaced: every alert arrives, none twice.

The worker runs as a separate process (``python -m laifaxin_notify serve``) against the real Kafka and FerretDB
and the loopback WeChat API of this test process, which answers slowly (latency) so the kill lands while the
batch's sends are in flight. The replacement worker gets the uncommitted records again; the dedupe claims make
it skip what was sent, wait out the dead worker's leases and send the rest. WeChat's ``client_msg_id`` (= the
dedupe key) covers the one window the claim cannot: a request that reached WeChat just before the kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from laifaxin_notify.store import Binding, Store
from laifaxin_shared.kafka import ensure_topics, make_broker, publish_event
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.settings import ServiceSettings
from laifaxin_shared.topics import TOPICS
from tests.integration.notify.conftest import APPID, SECRET, TEMPLATE, classified
from tests.support.infra import Servers
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration

N_EVENTS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "laifaxin_notify", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(timeout):
        while True:
            assert proc.poll() is None, f"worker exited with {proc.returncode}"
            try:
                if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def test_sigkill_mid_batch_loses_nothing_and_duplicates_nothing(
    real_servers: Servers, topic_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    db_name = f"notify_kill_{uuid.uuid4().hex[:8]}"
    topics = [
        t for name, t in TOPICS.items() if name.startswith(("notify.", "mail.classified", "mailbox.removed"))
    ]
    await ensure_topics(
        real_servers.kafka_bootstrap_servers, topics, prefix=topic_prefix, replication_factor=1
    )
    client = make_mongo_client(real_servers.mongodb_url)
    store = Store(client[db_name])
    await store.ensure_indexes()
    events = [classified(i, user_id=f"k{i}") for i in range(N_EVENTS)]
    for ev in events:
        await store.put_binding(Binding(ev.tenant_id, ev.user_id, "wechat", f"o{ev.user_id}", {}))

    procs: list[subprocess.Popen[bytes]] = []
    async with WeChatServer(apps={APPID: SECRET}, templates={TEMPLATE}, latency_s=0.3) as wechat:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": real_servers.kafka_bootstrap_servers,
            "MONGODB_URL": real_servers.mongodb_url,
            "LAIFAXIN_TOPIC_PREFIX": topic_prefix,
            "LAIFAXIN_ENVIRONMENT": "test",
            "LAIFAXIN_LOG_LEVEL": "WARNING",
            "NOTIFY_MONGODB_DATABASE": db_name,
            "NOTIFY_JWT_SECRET": "sigkill-test-jwt-secret-0123456789abcdef",
            "NOTIFY_WECHAT_API_BASE": wechat.base_url,
            "NOTIFY_WECHAT_APPID": APPID,
            "NOTIFY_WECHAT_SECRET": SECRET,
            "NOTIFY_WECHAT_TEMPLATE_ID": TEMPLATE,
            "NOTIFY_LEASE_S": "2",
            "NOTIFY_RETRY_DELAYS_S": "[0.5, 1, 2]",
            "NOTIFY_MAX_WAIT_IN_HANDLER_S": "1",
            "NOTIFY_SEND_CONCURRENCY": "8",
        }
        try:
            port = free_port()
            first = start_worker(env, port, log)
            procs.append(first)
            await wait_ready(port, first)
            producer = make_broker(
                ServiceSettings(kafka_bootstrap_servers=real_servers.kafka_bootstrap_servers)
            )
            async with producer:
                await producer.start()
                for ev in events:
                    await publish_event(producer, ev, prefix=topic_prefix)
            async with asyncio.timeout(60):
                while len(wechat.sent) < N_EVENTS // 4:  # noqa: ASYNC110  # polling the loopback record
                    await asyncio.sleep(0.02)
            first.send_signal(signal.SIGKILL)  # mid-batch: sends in flight, offsets not committed
            first.wait()
            killed_at = len(wechat.sent)
            assert killed_at < N_EVENTS, "the kill came after the batch had finished"

            port2 = free_port()
            second = start_worker(env, port2, log)
            procs.append(second)
            await wait_ready(port2, second)
            async with asyncio.timeout(90):
                while len({m.client_msg_id for m in wechat.sent}) < N_EVENTS:  # noqa: ASYNC110  # polling
                    await asyncio.sleep(0.1)
            await asyncio.sleep(3.0)  # leases, retries and redeliveries settle: nothing more may arrive
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()

        per_user: Counter[str] = Counter(m.openid for m in wechat.sent)
        assert set(per_user) == {f"o{ev.user_id}" for ev in events}  # nothing lost
        assert max(per_user.values()) == 1, per_user.most_common(3)  # nothing alerted twice
        history: dict[str, Any] = {}
        for ev in events:
            [row] = await store.history(ev.tenant_id, ev.user_id)
            history[ev.user_id] = row["status"]
        assert set(history.values()) == {"sent"}
        print(
            f"sigkill: {killed_at}/{N_EVENTS} sent before the kill; template/send requests {wechat.send_requests}; "
            f"messages {len(wechat.sent)}"
        )
    await client.drop_database(db_name)
    await client.close()
