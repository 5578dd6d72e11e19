"""Send service throughput and latency against its own SMTP server, with a bare aiosmtplib loop as the yardstick.

Starts its own instance of the local SMTP server (deploy/local/smtp_server.py on free ports, its own state
folder and accounts; the shared one is left to the tests), binds N mailboxes on it through ``mailbox.verified``,
and runs the send app in this process (pacing off, no Sent copy: this measures submission) on the real Kafka and
MongoDB. Every command is published to ``mail.send`` at once; the clock runs from its publish to its 250 (the
``sent_at`` the worker stores after the reply).

Figures: ``send_submissions_rate`` (messages/s, one worker, many mailboxes), ``send_command_to_250_p50/p99``
(ms), ``send_bare_aiosmtplib_rate`` (the same number of messages through aiosmtplib directly, the same
concurrency, one reused session per task) and ``send_vs_bare_ratio`` (both measured in this run).
``--quick``: 20 mailboxes, 300 messages.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure, infra, percentile

from laifaxin_send.app import SEND_TOPICS, create_app
from laifaxin_send.settings import SendSettings
from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.events import MailboxVerified, SendCommand
from laifaxin_shared.events.base import ServerEndpoint
from laifaxin_shared.imap import client_tls_context
from laifaxin_shared.kafka import delete_topics, ensure_topics, event_key, serialize, topic_for
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from laifaxin_shared.topics import spec

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def own_smtp_server(
    state: Path, shared_tls: Path, users: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """The local SMTP server on a free port with its own state folder (the shared TLS certificate)."""
    (state / "tls").mkdir(parents=True)
    for name in ("server.pem", "server.key"):
        (state / "tls" / name).write_bytes((shared_tls / name).read_bytes())
    (state / "dovecot").mkdir()
    (state / "dovecot" / "users").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in users.items()))
    port = free_port()
    proc = subprocess.Popen(  # our own server script
        [
            sys.executable,
            str(ROOT / "deploy/local/smtp_server.py"),
            "--state",
            str(state),
            "--tls-port",
            str(port),
            "--starttls-port",
            str(free_port()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("own SMTP server did not start")


async def bare_loop(port: int, ca: str, users: dict[str, str], n: int, concurrency: int) -> float:
    """Messages/s through aiosmtplib directly: ``concurrency`` tasks, one reused session each."""
    ctx = client_tls_context(ca)
    accounts = list(users.items())
    per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]

    async def worker(i: int, count: int) -> None:
        user, password = accounts[i % len(accounts)]
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=True, tls_context=ctx, timeout=30)
        await smtp.connect()
        await smtp.login(user, password)
        for k in range(count):
            msg = EmailMessage()
            msg["From"] = user
            msg["To"] = f"buyer{k}@buyer.example"
            msg["Subject"] = "Offer"
            msg["Message-ID"] = f"<bare.{uuid.uuid4().hex}@bench.example>"
            msg.set_content("Hello, here is our offer.")
            await smtp.send_message(msg)
        await smtp.quit()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i, c) for i, c in enumerate(per) if c))
    return n / (time.perf_counter() - t0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    mailboxes, n = (20, 300) if args.quick else (200, 3000)
    servers = infra()
    kafka, mongo_url = servers["kafka_bootstrap_servers"], servers["mongodb_url"]
    prefix = f"bsend{uuid.uuid4().hex[:8]}."
    users = {
        f"b{i}-{uuid.uuid4().hex[:6]}@bench.example": f"pw-{uuid.uuid4().hex[:12]}" for i in range(mailboxes)
    }
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = own_smtp_server(Path(tmp) / "state", Path(servers["ca_file"]).parent, users)
        try:
            await ensure_topics(kafka, [spec(t) for t in SEND_TOPICS], prefix=prefix, replication_factor=1)
            settings = SendSettings(
                environment="test",
                kafka_bootstrap_servers=kafka,
                mongodb_url=mongo_url,
                topic_prefix=prefix,
                mongodb_database=f"bench_send_{uuid.uuid4().hex[:8]}",
                group_id=f"send-{prefix}",
                ca_file=servers["ca_file"],
                pacing=False,
                sent_copy=False,
                poll_seconds=1.0,
                log_level="WARNING",
            )
            keyring = KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0")
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka.split(","), acks="all", enable_idempotence=True
            )
            await producer.start()
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                svc = app.state.service
                ids = []
                for i, (user, password) in enumerate(users.items()):
                    mailbox_id = f"mbx_bench_{i}"
                    ids.append(mailbox_id)
                    event = MailboxVerified(
                        tenant_id="tenant-bench",
                        mailbox_id=mailbox_id,
                        user_id="u",
                        email=user,
                        provider_id="custom",
                        username=user,
                        imap=ServerEndpoint(host="127.0.0.1", port=993, security="ssl"),
                        smtp=ServerEndpoint(host="127.0.0.1", port=port, security="ssl"),
                        credential=keyring.seal(password, tenant_id="tenant-bench", mailbox_id=mailbox_id),
                    )
                    await producer.send(prefix + topic_for(event), serialize(event), key=event_key(event))
                await producer.flush()
                while any([await svc.store.mailbox(m) is None for m in ids]):  # noqa: ASYNC110  # polls the store
                    await asyncio.sleep(0.2)
                published: dict[str, float] = {}
                commands = [
                    SendCommand(
                        tenant_id="tenant-bench",
                        user_id="u",
                        command_id=f"c{k}",
                        mailbox_id=ids[k % mailboxes],
                        to=[{"email": f"buyer{k}@buyer.example"}],
                        subject="Offer",
                        text="Hello, here is our offer.",
                        kind="campaign",
                    )
                    for k in range(n)
                ]
                for command in commands:
                    published[command.command_id] = time.time()
                    await producer.send(
                        prefix + topic_for(command), serialize(command), key=event_key(command)
                    )
                await producer.flush()
                db = svc.store.commands
                deadline = time.monotonic() + 600
                while await db.count_documents({"state": {"$in": ["sent", "failed", "unknown"]}}) < n:
                    if time.monotonic() > deadline:
                        raise TimeoutError("commands not finished")
                    await asyncio.sleep(2.0)  # a count is a full scan on FerretDB: not too often
                docs = [d async for d in db.find({}, {"command_id": 1, "state": 1, "sent_at": 1})]
                failed = [d for d in docs if d["state"] != "sent"]
                lat = [
                    (d["sent_at"].timestamp() - published[d["command_id"]]) * 1000
                    for d in docs
                    if d["state"] == "sent"
                ]
                first = min(published.values())
                last = max(d["sent_at"].timestamp() for d in docs if d["state"] == "sent")
                rate = len(lat) / (last - first)
                await app.state.mongo.drop_database(settings.mongodb_database)
            await producer.stop()
            bare = await bare_loop(port, servers["ca_file"], users, n, settings.concurrency)
            figure("send_mailboxes", mailboxes, "mailboxes")
            figure("send_commands", n, "commands")
            figure("send_not_sent", len(failed), "commands")
            figure("send_submissions_rate", rate, "messages/s")
            figure("send_command_to_250_p50", percentile(lat, 50), "ms")
            figure("send_command_to_250_p99", percentile(lat, 99), "ms")
            figure("send_bare_aiosmtplib_rate", bare, "messages/s")
            figure("send_vs_bare_ratio", rate / bare, "x")
            figure("send_smtp_connections", svc.pool.connects, "connections")
        finally:
            proc.terminate()
            proc.wait(10)
            await delete_topics(kafka, prefix)


if __name__ == "__main__":
    asyncio.run(main())
