"""Sync service benchmarks against the real Dovecot, Kafka and FerretDB (one worker process each time).

1. **New-mail latency with IDLE**: APPEND (time taken before the command is sent) to the ``mail.received``
   record arriving at a consumer; p50 and p99 (targets 300 ms and 1 s).
2. **Catch-up throughput**: N messages already in INBOX (full 10,000; quick 1,000), worker registered with the
   30-day window, time from ``mailbox.verified`` to the last ``mail.received``; compared with a bare aioimaplib
   ``UID FETCH`` loop (batches of 50, same items) over the same messages (ratio target >= 0.5x).
3. **Scale**: one worker holding M mailboxes (full 100/500/1,000; quick 50/100), IDLE and 60-second polling:
   CPU (share of one core, steady state), RSS, and APPEND-to-event latency (target at 1,000: under one core and
   under 500 MB). CPU and RSS are of the worker process plus its children (the parsing pool).
4. **Folders**: APPEND into a user folder (as a filter rule files mail) to its ``mail.received``: pushed by
   NOTIFY (RFC 5465) during IDLE, against the 180 s poll interval that finds it without NOTIFY.

Usage: ``python bench/bench_sync.py [--quick] [--only latency,folders,catchup,scale]``. Prints ``figure: NAME = VALUE
UNIT`` lines (``x`` for ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aioimaplib  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from common import figure, infra, percentile  # noqa: E402

from laifaxin_shared.crypto import KeyRing  # noqa: E402
from laifaxin_shared.events import MailboxVerified  # noqa: E402
from laifaxin_shared.events.base import ServerEndpoint  # noqa: E402
from laifaxin_shared.events.mailbox import MailboxSyncStatus, SyncSettings  # noqa: E402
from laifaxin_shared.imap import client_tls_context, connect_imap  # noqa: E402
from laifaxin_shared.kafka import ensure_topics, serialize  # noqa: E402
from laifaxin_shared.mongo import make_mongo_client  # noqa: E402
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS  # noqa: E402
from laifaxin_shared.topics import spec  # noqa: E402

TOPICS = ("mailbox.verified", "mailbox.updated", "mailbox.removed", "mailbox.sync_status", "mail.received")
TOPICS_DLQ = ("mail.received.dlq", "mailbox.verified.dlq", "mailbox.updated.dlq", "mailbox.removed.dlq")
_TICK = os.sysconf("SC_CLK_TCK")  # /proc CPU times are in clock ticks
BODY = (
    "Hello,\n\nPlease send your best price for 500 pcs of the LED panel, FOB Shenzhen, delivery in March.\n"
    "We also need the datasheet and the certificate of conformity.\n\nBest regards,\nBuyer\n"
) * 8  # ~1.9 KB of text: a typical short business message


def message(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Buyer <buyer@example.com>"
    msg["To"] = "sales@laifaxin.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    msg.set_content(BODY)
    return msg.as_bytes()


def _infra_module() -> Any:
    path = ROOT / "deploy" / "local" / "infra.py"
    module_spec = importlib.util.spec_from_file_location("laifaxin_local_infra", path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module


class Accounts:
    """Dovecot users made for this run (added to the passwd-file in one write)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.infra = _infra_module()

    def make(self, n: int, tag: str) -> list[tuple[str, str]]:
        users = [
            (f"bs{tag}{i}x{uuid.uuid4().hex[:6]}@{self.info['mail_domain']}", secrets.token_urlsafe(12))
            for i in range(n)
        ]
        path = Path(self.info["passwd_file"])
        lines = path.read_text().splitlines() if path.exists() else []
        lines += [f"{email}:{{PLAIN}}{pw}::::::" for email, pw in users]
        tmp = path.with_suffix(".bench.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o644)
        tmp.replace(path)
        time.sleep(1.2)  # Dovecot re-reads the passwd-file at most once a second
        return users


class World:
    """A topic prefix, database and consumer group for one scenario, a registry producer and a collector."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.prefix = f"b{uuid.uuid4().hex[:8]}."
        self.db = f"bench_sync_{uuid.uuid4().hex[:8]}"
        self.keyring = KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0")
        self.arrivals: dict[str, float] = {}
        self.received = 0
        self.ok: set[str] = set()
        self.proc: subprocess.Popen[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> World:
        await ensure_topics(
            self.info["kafka_bootstrap_servers"],
            [spec(t) for t in TOPICS + TOPICS_DLQ],
            prefix=self.prefix,
            replication_factor=1,
        )
        self.producer = AIOKafkaProducer(bootstrap_servers=self.info["kafka_bootstrap_servers"], acks="all")
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            self.prefix + "mail.received",
            self.prefix + "mailbox.sync_status",
            bootstrap_servers=self.info["kafka_bootstrap_servers"],
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
        )
        await self.consumer.start()
        self._tasks.append(asyncio.create_task(self._collect()))
        return self

    async def _collect(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    if r.topic.endswith("mail.received"):
                        # json, not the pydantic model: this collector shares the worker's two cores, and the
                        # worker's own tests validate the events.
                        self.arrivals.setdefault(json.loads(r.value)["subject"], now)
                        self.received += 1
                    else:
                        status = MailboxSyncStatus.model_validate_json(r.value)
                        if status.state == "ok":
                            self.ok.add(status.mailbox_id)

    async def __aexit__(self, *exc: object) -> None:
        self.stop_worker()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.consumer.stop()
        await self.producer.stop()
        client = make_mongo_client(self.info["mongodb_url"])
        await client.drop_database(self.db)
        await client.close()

    def start_worker(self, **env: Any) -> None:
        full = {
            **os.environ,
            "LAIFAXIN_ENVIRONMENT": "test",
            "KAFKA_BOOTSTRAP_SERVERS": self.info["kafka_bootstrap_servers"],
            "MONGODB_URL": self.info["mongodb_url"],
            "LAIFAXIN_TOPIC_PREFIX": self.prefix,
            "LAIFAXIN_TLS_CA_FILE": self.info["ca_file"],
            "SYNC_MONGODB_DATABASE": self.db,
            "SYNC_GROUP_ID": f"sync-{self.prefix}",
            "SYNC_HOST_ALLOWLIST": "127.0.0.0/8",
            "SYNC_HTTP_PORT": "0",
            "LAIFAXIN_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            **{k: str(v) for k, v in env.items()},
        }
        log = (Path(tempfile.gettempdir()) / f"bench_sync_{self.prefix.strip('.')}.log").open(
            "wb"
        )  # lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "laifaxin_sync"], env=full, stdout=log, stderr=subprocess.STDOUT
        )

    def stop_worker(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def register(self, email: str, password: str, *, window_days: int = 30) -> str:
        mailbox_id = f"mbx_{uuid.uuid4().hex[:12]}"
        event = MailboxVerified(
            tenant_id="tenant-bench",
            mailbox_id=mailbox_id,
            user_id="u_bench",
            email=email,
            provider_id="custom",
            username=email,
            imap=ServerEndpoint(host=self.info["imap_host"], port=self.info["imaps_port"], security="ssl"),
            smtp=ServerEndpoint(host=self.info["imap_host"], port=self.info["smtps_port"], security="ssl"),
            credential=self.keyring.seal(password, tenant_id="tenant-bench", mailbox_id=mailbox_id),
            sync=SyncSettings(interval_seconds=180, initial_window_days=window_days),
        )
        await self.producer.send(self.prefix + "mailbox.verified", serialize(event), key=mailbox_id.encode())
        return mailbox_id

    def cpu_seconds(self, *, children: bool = True) -> float:
        """CPU time (user + system) of the worker and its live child processes (the parsing pool);
        ``children=False``: the worker process alone."""
        assert self.proc is not None
        pids = _process_tree(self.proc.pid) if children else [self.proc.pid]
        return sum(stat[1] for stat in map(_process_cpu, pids) if stat is not None)

    def rss_mb(self, *, children: bool = True) -> float:
        """Resident memory (MB) of the worker and its live child processes (the parsing pool and
        multiprocessing's resource tracker); ``children=False``: the worker process alone. Pages shared
        between them are counted once per process, so the sum errs on the high side."""
        assert self.proc is not None
        total = 0.0
        for pid in _process_tree(self.proc.pid) if children else [self.proc.pid]:
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except FileNotFoundError:
                continue
            total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:")) / 1024
        return total

    def processes(self) -> int:
        """The worker and its live child processes."""
        assert self.proc is not None
        return len([p for p in _process_tree(self.proc.pid) if Path(f"/proc/{p}").exists()])


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc/<pid>/task/<tid>/children``)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(x) for x in task.read_text().split())
            except FileNotFoundError:
                continue
    return out


def _process_cpu(pid: int) -> tuple[str, float] | None:
    """(comm, CPU seconds used so far, user + system) of one process from /proc/<pid>/stat; None once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / _TICK


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """:func:`_process_cpu` of every process: pid -> (comm, seconds)."""
    pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    return {pid: stat for pid in pids if (stat := _process_cpu(pid)) is not None}


def _machine_busy() -> float:
    """CPU seconds all cores spent busy so far (/proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / _TICK


class CpuWindow:
    """CPU used between construction and :meth:`stop`: by the whole machine, and per server (Dovecot's
    ``imap`` processes, Kafka's ``java``, ``ferretdb``) counting processes that started meanwhile."""

    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "dovecot": ("imap", "imap-login"),
        "kafka": ("java",),
        "ferretdb": ("ferretdb",),
    }

    def __init__(self) -> None:
        self.before, self.busy0, self.t0 = _cpu_by_process(), _machine_busy(), time.monotonic()

    def stop(self) -> dict[str, float]:
        """{"wall": s, "machine": busy CPU s, "dovecot"/"kafka"/"ferretdb": CPU s}."""
        after, busy, wall = _cpu_by_process(), _machine_busy(), time.monotonic() - self.t0
        used = {"wall": wall, "machine": busy - self.busy0}
        for group, comms in self.GROUPS.items():
            used[group] = sum(
                cpu - (self.before[pid][1] if self.before.get(pid, ("",))[0] == comm else 0.0)
                for pid, (comm, cpu) in after.items()
                if comm in comms
            )
        return used


async def login(info: dict[str, Any], email: str, password: str) -> aioimaplib.IMAP4:
    client = await connect_imap(
        info["imap_host"],
        info["imaps_port"],
        "ssl",
        ssl_context=client_tls_context(info["ca_file"]),
        timeout=60,
    )
    reply = await client.login(email, password)
    assert reply.result == "OK", reply
    return client


async def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def measure_latency(
    world: World, clients: list[tuple[aioimaplib.IMAP4, str]], n: int, gap: float, timeout: float
) -> list[float]:
    """APPEND ``n`` messages round-robin over ``clients``; seconds from APPEND to the event, per message."""
    sent: dict[str, float] = {}
    for i in range(n):
        client, tag = clients[i % len(clients)]
        subject = f"latency {tag} {i} {uuid.uuid4().hex[:6]}"
        sent[subject] = time.monotonic()
        reply = await client.append(message(subject), mailbox="INBOX")
        assert reply.result == "OK"
        await asyncio.sleep(gap)
    await wait(lambda: all(s in world.arrivals for s in sent), timeout, "latency events")
    return [world.arrivals[s] - t for s, t in sent.items()]


# ---------------------------------------------------------------------------------------------- scenarios


async def bench_latency(info: dict[str, Any], accounts: Accounts, quick: bool) -> None:
    """One message at a time (1 s apart). A second IDLE connection of the bench sees when Dovecot pushes EXISTS:
    Dovecot delays IDLE notifications by a fixed 500 ms (lib-storage mailbox-watch NOTIFY_DELAY_MSECS), so the
    worker's own share (EXISTS pushed -> event consumed) is reported too."""
    [(email, pw)] = accounts.make(1, "lat")
    async with World(info) as world:
        world.start_worker()
        mailbox_id = await world.register(email, pw)
        await wait(lambda: mailbox_id in world.ok, 60, "mailbox ok")
        await asyncio.sleep(1.0)
        writer = await login(info, email, pw)
        watcher = await login(info, email, pw)
        await watcher.select("INBOX")
        n = 30 if quick else 100
        total: list[float] = []
        after_push: list[float] = []
        for i in range(n):
            idle = await watcher.idle_start(timeout=60)
            subject = f"latency {i} {uuid.uuid4().hex[:6]}"
            t0 = time.monotonic()
            reply = await writer.append(message(subject), mailbox="INBOX")
            assert reply.result == "OK"
            while True:
                lines = await watcher.wait_server_push(timeout=10)
                if any(isinstance(x, bytes) and x.endswith(b"EXISTS") for x in lines):
                    break
            t_push = time.monotonic()
            watcher.idle_done()
            await asyncio.wait_for(idle, 10)
            await wait(lambda s=subject: s in world.arrivals, 10, "event")
            total.append(world.arrivals[subject] - t0)
            after_push.append(world.arrivals[subject] - t_push)
            await asyncio.sleep(0.5)
        await writer.logout()
        await watcher.logout()
        figure("idle_latency_p50", percentile(total, 50) * 1000, "ms")
        figure("idle_latency_p99", percentile(total, 99) * 1000, "ms")
        figure(
            "idle_dovecot_push_delay_p50",
            percentile([t - a for t, a in zip(total, after_push, strict=True)], 50) * 1000,
            "ms",
        )
        figure("idle_worker_after_push_p50", percentile(after_push, 50) * 1000, "ms")
        figure("idle_worker_after_push_p99", percentile(after_push, 99) * 1000, "ms")
        figure("idle_latency_n", len(total), "messages")


async def bench_folders(info: dict[str, Any], accounts: Accounts, quick: bool) -> None:
    """Mail filed into a user folder (as a filter rule does), one message at a time: with NOTIFY (RFC 5465,
    Dovecot pushes a STATUS for the folder during IDLE) against the mailbox's poll interval (180 s), which is
    what finds it without NOTIFY (Gmail, QQ, NetEase...)."""
    [(email, pw)] = accounts.make(1, "fold")
    writer = await login(info, email, pw)
    assert (await writer.create("Customers")).result == "OK"
    async with World(info) as world:
        world.start_worker()
        mailbox_id = await world.register(email, pw)
        await wait(lambda: mailbox_id in world.ok, 60, "mailbox ok")
        await asyncio.sleep(1.0)
        n = 10 if quick else 40
        took: list[float] = []
        for i in range(n):
            subject = f"folder {i} {uuid.uuid4().hex[:6]}"
            t0 = time.monotonic()
            assert (await writer.append(message(subject), mailbox="Customers")).result == "OK"
            await wait(lambda s=subject: s in world.arrivals, 60, "folder event")
            took.append(world.arrivals[subject] - t0)
            await asyncio.sleep(0.5)
        await writer.logout()
        p50 = percentile(took, 50)
        figure("folder_push_latency_p50", p50 * 1000, "ms")
        figure("folder_push_latency_p99", percentile(took, 99) * 1000, "ms")
        figure("folder_poll_interval", 180.0, "s")
        figure("folder_push_vs_poll_interval_ratio", p50 / 180.0, "x")
        figure("folder_latency_n", len(took), "messages")


async def _append_many(info: dict[str, Any], email: str, pw: str, n: int, tag: str, conns: int = 4) -> None:
    async def worker(k: int) -> None:
        client = await login(info, email, pw)
        for i in range(k, n, conns):
            reply = await client.append(message(f"catch-up {tag} {i:05d}"), mailbox="INBOX")
            assert reply.result == "OK"
        await client.logout()

    await asyncio.gather(*(worker(k) for k in range(conns)))


async def bare_fetch_rate(
    info: dict[str, Any], email: str, pw: str, batch: int = 50
) -> tuple[int, float, float]:
    """A bare aioimaplib loop: SELECT, UID SEARCH ALL, UID FETCH the same items in batches.
    (count, seconds, CPU seconds of this loop plus Dovecot's)."""
    window, cpu0 = CpuWindow(), time.process_time()
    t0 = time.monotonic()
    client = await login(info, email, pw)
    await client.select("INBOX")
    reply = await client.uid_search("ALL", charset=None)
    uids = [int(x) for x in reply.lines[0].split()]
    count = 0
    for start in range(0, len(uids), batch):
        chunk = uids[start : start + batch]
        r = await client.uid("fetch", f"{chunk[0]}:{chunk[-1]}", "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        count += sum(1 for x in r.lines if isinstance(x, bytearray))
    await client.logout()
    elapsed = time.monotonic() - t0
    return count, elapsed, time.process_time() - cpu0 + window.stop()["dovecot"]


async def bench_catchup(info: dict[str, Any], accounts: Accounts, quick: bool) -> None:
    """The bare loop runs before and after the worker (the machine is shared: its load changes); the ratio is
    taken against the faster of the two. Worker CPU counts its parsing processes too."""
    n = 1000 if quick else 10_000
    (email, pw), (warm_email, warm_pw) = accounts.make(2, "cu")
    t0 = time.monotonic()
    await _append_many(info, email, pw, n, "cu")
    print(f"appended {n} messages in {time.monotonic() - t0:.1f} s", flush=True)
    bare_n, bare_s, bare_cpu = await bare_fetch_rate(info, email, pw)
    assert bare_n == n, (bare_n, n)
    async with World(info) as world:
        world.start_worker()
        warm = await world.register(warm_email, warm_pw)  # the clock starts once the worker runs a mailbox
        await wait(lambda: warm in world.ok, 120, "warm-up mailbox ok")
        cpu0, main0 = world.cpu_seconds(), world.cpu_seconds(children=False)
        window = CpuWindow()
        t1 = time.monotonic()
        await world.register(email, pw, window_days=30)
        peak_rss = [world.rss_mb()]

        def done() -> bool:
            peak_rss.append(world.rss_mb())  # every 20 ms: the worker and its parsing pool
            return world.received >= n

        await wait(done, 600, "catch-up events")
        sync_s = max(world.arrivals.values()) - t1
        cpu, main = world.cpu_seconds(), world.cpu_seconds(children=False)
        used = window.stop()
    bare_after_n, bare_after_s, bare_after_cpu = await bare_fetch_rate(info, email, pw)
    assert bare_after_n == n, (bare_after_n, n)
    bare_rate, sync_rate = n / min(bare_s, bare_after_s), n / sync_s
    figure("catchup_messages", n, "messages")
    figure("catchup_bare_uid_fetch_rate_before", n / bare_s, "msg/s")
    figure("catchup_bare_uid_fetch_rate_after", n / bare_after_s, "msg/s")
    figure("catchup_bare_uid_fetch_rate", bare_rate, "msg/s")
    figure("catchup_sync_rate", sync_rate, "msg/s")
    figure("catchup_sync_vs_bare_fetch", sync_rate / bare_rate, "x")
    figure("catchup_worker_cpu", cpu, "s")
    figure("catchup_worker_cpu_per_message", (cpu - cpu0) / n * 1000, "ms")
    figure("catchup_worker_event_loop_cpu_per_message", (main - main0) / n * 1000, "ms")
    figure("catchup_parse_pool_cpu_per_message", (cpu - cpu0 - (main - main0)) / n * 1000, "ms")
    # Where the machine's CPU went while the worker caught up (everything runs on the same cores): the servers'
    # share, and how busy the machine was in all. The bare loop's CPU (client + Dovecot) is its whole cost.
    for group in ("dovecot", "kafka", "ferretdb"):
        figure(f"catchup_{group}_cpu_per_message", used[group] / n * 1000, "ms")
    figure("catchup_worker_rss_peak", max(peak_rss), "MB")
    figure("catchup_machine_cpu_per_message", used["machine"] / n * 1000, "ms")
    figure("catchup_machine_busy_cores", used["machine"] / used["wall"], "cores")
    figure("catchup_machine_cores", os.cpu_count() or 0, "cores")
    figure("catchup_bare_loop_cpu_per_message", min(bare_cpu, bare_after_cpu) / n * 1000, "ms")


async def bench_scale(
    info: dict[str, Any],
    accounts: Accounts,
    quick: bool,
    sizes: list[int] | None = None,
    modes: tuple[str, ...] = ("idle", "poll60"),
) -> None:
    """Dovecot needs one inotify instance per IDLE session (fs.inotify.max_user_instances, often 128): above
    that it checks mailboxes only every 30 s, which a worker cannot make faster."""
    sizes = sizes or ([50, 100] if quick else [100, 500, 1000])
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())  # noqa: ASYNC240  # one tiny /proc read
    figure("scale_inotify_max_user_instances", limit, "instances")
    steady_s = 15.0 if quick else 30.0
    users = accounts.make(max(sizes), "sc")
    for mode in modes:
        for size in sizes:
            chosen = users[:size]
            # Logins are paced by the worker itself (SYNC_START_CONCURRENCY, default 50); INFO shows its
            # "mailboxes started" progress lines in the worker log.
            env: dict[str, Any] = {"LAIFAXIN_LOG_LEVEL": "INFO"}
            if mode == "poll60":
                env.update(SYNC_IDLE_ENABLED="false", SYNC_POLL_INTERVAL_SECONDS=60)
            async with World(info) as world:
                world.start_worker(**env)
                t0 = time.monotonic()
                ids = [await world.register(e, p, window_days=0) for e, p in chosen]
                await world.producer.flush()
                await wait(lambda n=size: len(world.ok) >= n, 300, f"{size} mailboxes ok")
                figure(f"scale_{mode}_{size}_startup", time.monotonic() - t0, "s")
                await asyncio.sleep(3.0)
                c0, w0 = world.cpu_seconds(), time.monotonic()
                await asyncio.sleep(steady_s)
                cpu = (world.cpu_seconds() - c0) / (time.monotonic() - w0)
                figure(f"scale_{mode}_{size}_cpu_steady", cpu, "cores")
                rng = random.Random(size)
                sample = rng.sample(range(size), min(8 if mode == "idle" else 4, size))
                clients = [(await login(info, *chosen[i]), ids[i]) for i in sample]
                c1, w1 = world.cpu_seconds(), time.monotonic()
                lat = await measure_latency(
                    world, clients, len(clients) * (3 if mode == "idle" else 1), 0.3, 90
                )
                cpu_load = (world.cpu_seconds() - c1) / (time.monotonic() - w1)
                for client, _ in clients:
                    await client.logout()
                figure(f"scale_{mode}_{size}_cpu_with_mail", cpu_load, "cores")
                figure(f"scale_{mode}_{size}_rss", world.rss_mb(), "MB")  # worker + pool processes
                figure(f"scale_{mode}_{size}_rss_worker_only", world.rss_mb(children=False), "MB")
                figure(f"scale_{mode}_{size}_processes", world.processes(), "processes")
                figure(f"scale_{mode}_{size}_latency_p50", percentile(lat, 50) * 1000, "ms")
                figure(f"scale_{mode}_{size}_latency_max", max(lat) * 1000, "ms")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="latency,folders,catchup,scale")
    parser.add_argument(
        "--scale-sizes", default="", help="comma-separated mailbox counts (overrides the defaults)"
    )
    parser.add_argument("--scale-modes", default="idle,poll60", help="idle and/or poll60")
    args = parser.parse_args()
    info = infra()
    accounts = Accounts(info)
    only = set(args.only.split(","))
    if "latency" in only:
        await bench_latency(info, accounts, args.quick)
    if "folders" in only:
        await bench_folders(info, accounts, args.quick)
    if "catchup" in only:
        await bench_catchup(info, accounts, args.quick)
    if "scale" in only:
        sizes = [int(x) for x in args.scale_sizes.split(",") if x]
        await bench_scale(info, accounts, args.quick, sizes or None, tuple(args.scale_modes.split(",")))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
