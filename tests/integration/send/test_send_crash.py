"""SIGKILL of a send worker in the middle of a batch: another worker takes over the orphaned claims, the real
SMTP server records no message twice, and every command ends sent or (an outcome in doubt) unknown, never lost.
Also: no plaintext password in Kafka, MongoDB, the workers' logs or the API's answers."""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import json_util

from laifaxin_shared.mongo import make_mongo_client
from tests.conftest import MailAccount
from tests.integration.binding.kafka_read import read_topic
from tests.integration.send.conftest import SendEnv
from tests.support.infra import ROOT

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(env: SendEnv, name: str, log_dir: Path, port: int, **overrides: Any) -> subprocess.Popen[bytes]:
    variables = {
        **os.environ,
        **env.env(
            worker_id=name,
            http_port=port,
            http_host="127.0.0.1",
            claim_lease_seconds=4,
            poll_seconds=0.3,
            **overrides,
        ),
        "LAIFAXIN_LOG_LEVEL": "DEBUG",
    }
    out = (log_dir / f"{name}.log").open("wb")
    return subprocess.Popen(  # our own interpreter and module
        [sys.executable, "-m", "laifaxin_send"], env=variables, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
    )


async def states(env: SendEnv) -> list[dict[str, Any]]:
    client = make_mongo_client(env.servers.mongodb_url)
    try:
        return [d async for d in client[env.db_name]["commands"].find({})]
    finally:
        await client.close()


async def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(timeout):
        while True:
            assert proc.poll() is None, "the worker exited"
            try:
                if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)


async def test_sigkill_mid_batch_no_duplicates_nothing_lost(
    send_env: SendEnv, new_mail_account: Any, tmp_path: Path
) -> None:
    accounts: list[MailAccount] = [new_mail_account() for _ in range(3)]
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    mailboxes = [await send_env.bind(a, tenant=tenant) for a in accounts]
    commands = []
    for i in range(60):
        mailbox_id = mailboxes[i % 3]
        command = send_env.command(
            tenant, mailbox_id, f"buyer{i}@buyer.example", kind="campaign", subject=f"Offer {i}"
        )
        commands.append(command)
        await send_env.publish(command)
    first_port, second_port = free_port(), free_port()
    first = spawn(send_env, "send-a", tmp_path, first_port)
    second: subprocess.Popen[bytes] | None = None
    try:
        await wait_ready(first_port, first)
        async with asyncio.timeout(120):
            while sum(d["state"] == "sent" for d in await states(send_env)) < 8:
                assert first.poll() is None
                await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = collections.Counter(d["state"] for d in await states(send_env))
        second = spawn(send_env, "send-b", tmp_path, second_port)
        await wait_ready(second_port, second)
        async with asyncio.timeout(180):
            while True:
                docs = await states(send_env)
                if len(docs) == 60 and all(d["state"] in ("sent", "failed", "unknown") for d in docs):
                    break
                await asyncio.sleep(0.3)
        # the API answers for every command, without secrets
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second_port}") as http:
            answers = [
                (await http.get(f"/v1/send/{c.command_id}", headers=send_env.auth(tenant))).text
                for c in commands[:10]
            ]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    docs = {d["command_id"]: d for d in await states(send_env)}
    assert set(docs) == {c.command_id for c in commands}, "every command stored"
    final = collections.Counter(d["state"] for d in docs.values())
    print(f"states when killed: {dict(killed_at)}; final: {dict(final)}")  # shown with -s
    assert set(final) <= {"sent", "unknown"}, final
    assert killed_at["sent"] < 60, "the worker was killed before the batch ended"
    delivered: collections.Counter[str] = collections.Counter()
    for account in accounts:
        for _, msg in send_env.received(account):
            delivered[str(msg["Message-ID"]).strip("<>")] += 1
    duplicates = {mid: n for mid, n in delivered.items() if n > 1}
    assert not duplicates, f"delivered twice: {duplicates}"
    for d in docs.values():
        if d["state"] == "sent":
            assert delivered[d["message_id"]] == 1, d["command_id"]
    assert sum(delivered.values()) >= final["sent"]
    sent_events = await read_topic(send_env.servers.kafka_bootstrap_servers, send_env.prefix + "mail.sent")
    assert {json_util.loads(r.value)["command_id"] for r in sent_events} == {
        cid for cid, d in docs.items() if d["state"] == "sent"
    }
    unknown = [d for d in docs.values() if d["state"] == "unknown"]
    failed_events = await send_env.events("mail.send_failed")
    assert {e["command_id"] for e in failed_events} == {d["command_id"] for d in unknown}
    # secrets: never in Kafka, MongoDB, logs or answers
    haystacks: list[bytes] = [r.value or b"" for r in sent_events]
    for name in ("mail.send_failed", "mailbox.sync_status", "mail.send"):
        haystacks += [
            r.value or b""
            for r in await read_topic(send_env.servers.kafka_bootstrap_servers, send_env.prefix + name)
        ]
    client = make_mongo_client(send_env.servers.mongodb_url)
    try:
        for collection in ("mailboxes", "commands", "days", "bounces"):
            haystacks += [
                json_util.dumps(d).encode() async for d in client[send_env.db_name][collection].find({})
            ]
    finally:
        await client.close()
    logs = {p.name: p.read_bytes() for p in sorted(tmp_path.glob("*.log"))}  # noqa: ASYNC240  # after the run
    haystacks += list(logs.values())
    haystacks += [a.encode() for a in answers]
    for account in accounts:
        for form in (account.password, base64.b64encode(account.password.encode()).decode()):
            assert not any(form.encode() in h for h in haystacks), "a plaintext credential leaked"
    assert b"recovering orphaned command" in logs["send-b.log"] or killed_at["sending"] == 0
