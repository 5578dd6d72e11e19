"""Sync workers as separate processes (``python -m laifaxin_sync``): sharding, rebalancing, SIGKILL recovery."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from laifaxin_shared.mongo import make_mongo_client
from laifaxin_sync.prepare import default_processes
from laifaxin_sync.supervisor import partition_for
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration


def mailbox_ids(ranges: list[range], per_range: int) -> list[str]:
    """Mailbox ids whose murmur2 partitions fall ``per_range`` into each partition range."""
    out: list[str] = []
    for r in ranges:
        found = 0
        while found < per_range:
            candidate = f"mbx_{uuid.uuid4().hex[:12]}"
            if partition_for(candidate) in r:
                out.append(candidate)
                found += 1
    return out


async def lease_owners(env: Env) -> dict[str, str]:
    client = make_mongo_client(env.servers.mongodb_url)
    try:
        return {d["_id"]: d["owner"] async for d in client[env.db_name]["leases"].find({})}
    finally:
        await client.close()


async def wait_owners(env: Env, expected: dict[str, str], timeout: float = 40.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        owners = await lease_owners(env)
        if owners == expected:
            return
        if loop.time() > deadline:
            raise AssertionError(f"lease owners {owners} != {expected}")
        await asyncio.sleep(0.3)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


@pytest.fixture
def procs() -> Any:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def test_scaling_one_to_three_workers_and_back_moves_mailboxes_without_loss_or_double_sync(
    sync_env: Env, new_mail_account: Any, imap_factory: Any, procs: list[Any], tmp_path: Path
) -> None:
    # RangeAssignor with 3 members over 12 partitions: 0-3, 4-7, 8-11. Two mailboxes in each range.
    ids = mailbox_ids([range(0, 4), range(4, 8), range(8, 12)], 2)
    accounts: list[MailAccount] = [new_mail_account() for _ in ids]
    imaps = [await imap_factory(a) for a in accounts]
    procs.append(sync_env.spawn("wa", tmp_path))
    for mailbox_id, account in zip(ids, accounts, strict=True):
        await sync_env.register(account, mailbox_id=mailbox_id)
    await wait_owners(sync_env, dict.fromkeys(ids, "wa"))
    for i, imap in enumerate(imaps):
        await imap.append(mail(f"one worker {i}"))

    procs.append(sync_env.spawn("wb", tmp_path))
    procs.append(sync_env.spawn("wc", tmp_path))
    for i, imap in enumerate(imaps):  # mail arriving while the group rebalances
        await imap.append(mail(f"during rebalance {i}"))
    owners = await _wait_split(sync_env, ids)
    assert Counter(owners.values()) == {"wa": 2, "wb": 2, "wc": 2}
    for i, imap in enumerate(imaps):
        await imap.append(mail(f"three workers {i}"))

    assert stop(procs[1]) == 0
    assert stop(procs[2]) == 0
    await wait_owners(sync_env, dict.fromkeys(ids, "wa"))
    for i, imap in enumerate(imaps):
        await imap.append(mail(f"back to one {i}"))

    phases = ("one worker", "during rebalance", "three workers", "back to one")
    expected = {f"{p} {i}" for p in phases for i in range(len(ids))}
    await sync_env.wait_for(
        lambda: expected <= {e.subject for e in sync_env.received}, timeout=40, what="all phases published"
    )
    await asyncio.sleep(2)
    counts = Counter(e.subject for e in sync_env.received)
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values()), {s: n for s, n in counts.items() if n > 1}
    docs = await sync_env.wait_committed(len(expected))
    assert len(docs) == len(expected)
    assert stop(procs[0]) == 0


async def _wait_split(env: Env, ids: list[str], timeout: float = 40.0) -> dict[str, str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        owners = await lease_owners(env)
        if len(owners) == len(ids) and set(owners.values()) == {"wa", "wb", "wc"}:
            return owners
        if loop.time() > deadline:
            raise AssertionError(f"mailboxes not split over three workers: {owners}")
        await asyncio.sleep(0.3)


async def test_sigkill_in_the_middle_of_a_batch_loses_nothing_and_indexes_once(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any, procs: list[Any], tmp_path: Path
) -> None:
    imap = await imap_factory(mail_account)
    total = 200
    for i in range(total):
        await imap.append(mail(f"catch-up {i:03d}"))
    mailbox_id = await sync_env.register(mail_account)
    procs.append(sync_env.spawn("victim", tmp_path, SYNC_FETCH_BATCH=10, SYNC_CATCHUP_BATCH=10))
    await sync_env.wait_for(lambda: len(sync_env.received) >= 35, timeout=40, what="first batches")
    pool = children(procs[0].pid)
    assert pool or default_processes() == 0, "the worker parses catch-up batches in pool processes"
    procs[0].kill()  # SIGKILL: no cleanup, the lease and group membership are left to expire
    procs[0].wait(timeout=10)
    seen_at_kill = len(sync_env.received)
    assert seen_at_kill < total, "the worker finished before it could be killed; make the mailbox larger"
    for i in range(total, total + 10):  # mail that arrives while nobody syncs
        await imap.append(mail(f"catch-up {i:03d}"))
    procs.append(sync_env.spawn("survivor", tmp_path, SYNC_FETCH_BATCH=10, SYNC_CATCHUP_BATCH=10))
    expected = {f"catch-up {i:03d}" for i in range(total + 10)}
    await sync_env.wait_for(
        lambda: expected <= set(sync_env.subjects(mailbox_id)), timeout=60, what="every message published"
    )
    await asyncio.sleep(1)
    docs = await sync_env.wait_committed(total + 10)
    assert len(docs) == total + 10
    assert len({(d["uidvalidity"], d["uid"]) for d in docs}) == total + 10
    counts = Counter(sync_env.subjects(mailbox_id))
    assert set(counts) == expected
    # At-least-once: a message may be published twice (killed after the ack, before the mark) but then with
    # the same event_id, so consumers dedupe.
    by_subject: dict[str, set[str]] = {}
    for e in sync_env.received_for(mailbox_id):
        by_subject.setdefault(e.subject, set()).add(str(e.event_id))
    assert all(len(ids) == 1 for ids in by_subject.values())
    assert stop(procs[1]) == 0
    # the killed worker's parse pool processes noticed and ended (no orphans left behind)
    await sync_env.wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pool), 15, "pool exit")


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc/<pid>/stat, field 4)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
