"""Foundation overheads, each as a ratio to the bare library measured in the same run.

- credential seal+open through the key ring vs bare AESGCM encrypt+decrypt;
- publish_event (validation-free serialisation, registry lookup, headers, acks=all) vs a bare aiokafka send with
  acks=all of the same bytes;
- event validation (model_validate_json) throughput for mail.received;
- mailbox credentials bound to their servers (v2 associated data: seal_mailbox/open_mailbox) vs the same through
  v1 (tenant and mailbox only);
- log redaction (redact_text) of a typical line and of an aioimaplib LOGIN line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(__file__))
from common import figure, infra

from laifaxin_shared.crypto import CredentialContext, KeyRing, associated_data, generate_key
from laifaxin_shared.events import MailReceived
from laifaxin_shared.kafka import ensure_topics, make_broker, publish_event, serialize
from laifaxin_shared.settings import ServiceSettings
from laifaxin_shared.topics import spec


def bench_crypto(n: int) -> None:
    key = generate_key()
    ring = KeyRing.parse(f"k:{key}", "k")
    t0 = time.perf_counter()
    for i in range(n):
        env = ring.seal("abcd efgh ijkl mnop", tenant_id="t", mailbox_id=f"m{i}")
        ring.open(env, tenant_id="t", mailbox_id=f"m{i}")
    ours = time.perf_counter() - t0
    import base64

    aead = AESGCM(base64.b64decode(key))
    t0 = time.perf_counter()
    for i in range(n):
        nonce = os.urandom(12)
        ct = aead.encrypt(nonce, b"abcd efgh ijkl mnop", associated_data("t", f"m{i}"))
        aead.decrypt(nonce, ct, associated_data("t", f"m{i}"))
    bare = time.perf_counter() - t0
    figure("credential_seal_open_rate", n / ours, "ops/s")
    figure("credential_seal_open_overhead", ours / bare, "x")
    mailbox = {
        "tenant_id": "t",
        "username": "sales@163.com",
        "imap": {"host": "imap.163.com", "port": 993, "security": "ssl"},
        "smtp": {"host": "smtp.163.com", "port": 465, "security": "ssl"},
    }
    t0 = time.perf_counter()
    for i in range(n):
        context = CredentialContext.of(mailbox, mailbox_id=f"m{i}")
        ring.open_mailbox(ring.seal_mailbox("abcd efgh ijkl mnop", context), context)
    v2 = time.perf_counter() - t0
    figure("credential_v2_seal_open_rate", n / v2, "ops/s")
    figure("credential_v2_vs_v1_seal_open", v2 / ours, "x")


def bench_redaction(n: int) -> None:
    from laifaxin_shared.logging import redact_text

    lines = [
        "mailbox bound mailbox_id=mbx_01JD5X6Q8ZK3 tenant_id=tenant-acme provider=netease163 folder=INBOX uid=4711",
        'Sending : b\'A001 LOGIN sales@163.com "p\\"w\\\\d"\\r\\n\'',
    ]
    for name, line in zip(("plain", "imap_login"), lines, strict=True):
        t0 = time.perf_counter()
        for _ in range(n):
            redact_text(line)
        figure(f"log_redact_text_{name}_rate", n / (time.perf_counter() - t0), "lines/s")


def bench_validation(n: int) -> None:
    raw = serialize(MailReceived.model_validate(spec("mail.received").examples()[0]))
    t0 = time.perf_counter()
    for _ in range(n):
        MailReceived.model_validate_json(raw)
    figure("mail_received_validate_rate", n / (time.perf_counter() - t0), "events/s")


async def bench_publish(n: int) -> None:
    bootstrap = infra()["kafka_bootstrap_servers"]
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, [spec("mail.received")], prefix=prefix, replication_factor=1)
    example = MailReceived.model_validate(spec("mail.received").examples()[0])
    events = [example.model_copy(update={"event_id": uuid.uuid4()}) for _ in range(n)]
    broker = make_broker(ServiceSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix))
    async with broker:
        await broker.start()
        await publish_event(broker, events[0], prefix=prefix)  # warm up metadata
        t0 = time.perf_counter()
        for ev in events:
            await publish_event(broker, ev, prefix=prefix)
        ours = time.perf_counter() - t0
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        payloads = [serialize(ev) for ev in events]
        await producer.send_and_wait(prefix + "mail.received", payloads[0], key=b"mbx")
        t0 = time.perf_counter()
        for p in payloads:
            await producer.send_and_wait(prefix + "mail.received", p, key=b"mbx_01JD5X6Q8ZK3")
        bare = time.perf_counter() - t0
    finally:
        await producer.stop()
    figure("publish_event_sequential_rate", n / ours, "events/s")
    figure("publish_event_overhead_vs_bare_aiokafka", ours / bare, "x")


async def bench_imap_connections(n: int) -> None:
    """Hold ``n`` concurrent authenticated IMAP connections to Dovecot (its process limits allow 2,000)."""
    import importlib.util
    import secrets
    from pathlib import Path

    from laifaxin_shared.imap import client_tls_context, connect_imap

    ep = infra()
    spec_ = importlib.util.spec_from_file_location(
        "infra_mod", Path(__file__).parents[1] / "deploy/local/infra.py"
    )
    assert spec_ and spec_.loader
    mod = importlib.util.module_from_spec(spec_)
    sys.modules["infra_mod"] = mod
    spec_.loader.exec_module(mod)
    email, password = f"bench{uuid.uuid4().hex[:6]}@{ep['mail_domain']}", secrets.token_urlsafe(12)
    mod.add_user(email, password, Path(ep["passwd_file"]))
    await asyncio.sleep(1.1)  # Dovecot re-reads the passwd-file at most once a second
    ctx = client_tls_context(ep["ca_file"])
    limit = asyncio.Semaphore(100)  # bound concurrent handshakes, not connections

    async def open_one() -> object:
        async with limit:
            client = await connect_imap(ep["imap_host"], ep["imaps_port"], "ssl", ssl_context=ctx, timeout=60)
            response = await client.login(email, password)
            if response.result != "OK":
                raise RuntimeError(f"login failed: {response.lines[-1:]!r}")
            return client

    t0 = time.perf_counter()
    results = await asyncio.gather(*(open_one() for _ in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - t0
    clients = [r for r in results if not isinstance(r, BaseException)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        print(f"first failure: {failures[0]!r}", flush=True)
    figure("imap_concurrent_connections_held", len(clients), "connections")
    figure("imap_concurrent_connections_failed", len(failures), "connections")
    figure("imap_connect_login_rate", len(clients) / elapsed, "connections/s")
    await asyncio.gather(*(c.logout() for c in clients), return_exceptions=True)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scale = 1 if args.quick else 10
    bench_crypto(2_000 * scale)
    bench_validation(2_000 * scale)
    bench_redaction(2_000 * scale)
    asyncio.run(bench_publish(200 * scale))
    asyncio.run(bench_imap_connections(200 if args.quick else 1000))


if __name__ == "__main__":
    main()
