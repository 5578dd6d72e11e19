"""Fencing and loop breakers against the real Kafka and FerretDB: a worker whose lease was taken over cannot
publish or move a cursor; a server that changes UIDVALIDITY at every SELECT is held back and reported once."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from laifaxin_shared.events.base import utc_now
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail
from tests.support.loopback import TcpServer

pytestmark = pytest.mark.integration


async def test_a_worker_whose_lease_was_taken_cannot_publish_or_move_the_cursor(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    worker = await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: worker.metrics.idle_connections._value.get() >= 1, what="IDLE")
    await imap.append(mail("while the lease is ours"))
    await sync_env.wait_subjects(mailbox_id, {"while the lease is ours"})
    await sync_env.wait_committed(1, mailbox_id)  # the cursor moves after the publish was acknowledged
    before = await sync_env.cursor(mailbox_id)
    loop = worker.supervisor.loops[mailbox_id]
    assert loop.lease is not None and before["lease_epoch"] == loop.lease.epoch

    # The worker "pauses": its lease renewal stops (supervisor task gone) and its heartbeat expires; another
    # worker then takes the mailbox over, as it would after a rebalance.
    [supervisor] = [t for t in worker.tasks if t.get_name() == "supervisor"]
    supervisor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await supervisor
    await worker.store.workers.update_one(
        {"_id": worker.settings.worker_id}, {"$set": {"expires_at": utc_now() - timedelta(seconds=1)}}
    )
    await worker.store.heartbeat("worker-b", 60)
    lease_b = await worker.store.claim_lease(mailbox_id, "worker-b")
    assert lease_b is not None and lease_b.epoch == loop.lease.epoch + 1
    assert (await sync_env.cursor(mailbox_id))["lease_epoch"] == lease_b.epoch  # fenced at once

    # The paused worker wakes up with new mail in IDLE: it must not publish it nor move the cursor.
    await imap.append(mail("after the takeover"))
    await sync_env.wait_for(lambda: loop.done, timeout=20, what="the fenced loop to stop")
    await asyncio.sleep(1.0)
    assert "after the takeover" not in sync_env.subjects(mailbox_id)
    assert loop.lease_lost and worker.metrics.errors.labels("lease_lost")._value.get() == 1
    after = await sync_env.cursor(mailbox_id)
    assert after["last_uid"] == before["last_uid"] and after["lease_epoch"] == lease_b.epoch
    lease_doc = await worker.store.leases.find_one({"_id": mailbox_id})
    assert lease_doc is not None and lease_doc["owner"] == "worker-b"  # not released by the loser


class UnstableImapServer(TcpServer):
    """A scripted IMAP server (implicit TLS) whose INBOX gets a new UIDVALIDITY at every EXAMINE/STATUS: the
    broken-server case of RFC 3501 2.3.1.1. Empty INBOX, no Junk, no IDLE (the loop polls)."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.uidvalidity = 1000
        self.examines = 0
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert_file, key_file)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(*lines: str) -> None:
            writer.write("".join(line + "\r\n" for line in lines).encode())

        try:
            send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] unstable ready")
            while line := await reader.readline():
                tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
                command = rest.split(" ", 1)[0].upper()
                if command == "UID":
                    command = "UID " + rest.split(" ", 2)[1].upper()
                if command == "CAPABILITY":
                    send("* CAPABILITY IMAP4rev1 AUTH=PLAIN", f"{tag} OK done")
                elif command == "LOGIN":
                    send(f"{tag} OK LOGIN completed")
                elif command == "LIST":
                    send('* LIST (\\HasNoChildren) "/" INBOX', f"{tag} OK done")
                elif command in ("EXAMINE", "SELECT"):
                    self.examines += 1
                    self.uidvalidity += 1
                    send(
                        "* 0 EXISTS",
                        f"* OK [UIDVALIDITY {self.uidvalidity}] UIDs valid",
                        "* OK [UIDNEXT 1] next",
                        f"{tag} OK [READ-ONLY] done",
                    )
                elif command == "UID SEARCH":
                    send("* SEARCH", f"{tag} OK done")
                elif command == "LOGOUT":
                    send("* BYE", f"{tag} OK done")
                    await writer.drain()
                    break
                else:
                    send(
                        f"{tag} OK done" if re.fullmatch(r"NOOP|STATUS|ENABLE|ID", command) else f"{tag} BAD"
                    )
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()


async def test_uidvalidity_changing_at_every_select_backs_off_and_is_reported_once(sync_env: Env) -> None:
    tls = Path(sync_env.servers.ca_file).parent
    async with UnstableImapServer(str(tls / "server.pem"), str(tls / "server.key")) as server:
        await sync_env.start_worker(
            SYNC_IDLE_ENABLED="false",
            SYNC_POLL_INTERVAL_SECONDS="1",
            SYNC_UIDVALIDITY_MAX_RESETS="2",
            SYNC_UIDVALIDITY_RESET_HOLD_SECONDS="3600",
        )
        account = SimpleNamespace(
            email="sales@laifaxin.test", password="pw", host="127.0.0.1", imaps_port=server.port,
            imap_port=server.port, smtps_port=server.port,
        )  # fmt: skip
        mailbox_id = await sync_env.register(account)  # type: ignore[arg-type]
        await sync_env.wait_for(
            lambda: any(s.mailbox_id == mailbox_id and s.state == "error" for s in sync_env.statuses),
            timeout=20,
            what="uidvalidity_unstable",
        )
        examines = server.examines
        await asyncio.sleep(4)  # several poll intervals: held, so no more SELECTs and no re-baseline loop
        assert server.examines == examines
    statuses = [s for s in sync_env.statuses if s.mailbox_id == mailbox_id]
    # Each of the first two resets is reported (then ok again); the third change is held and reported once.
    assert [s.state for s in statuses] == ["ok", "uidvalidity_reset", "ok", "uidvalidity_reset", "error"]
    unstable = statuses[-1]
    assert unstable.error_code == "uidvalidity_unstable" and unstable.folder == "INBOX"
    assert unstable.fix and unstable.fix_zh and unstable.retry_at is not None
    assert unstable.retry_at > utc_now() + timedelta(minutes=50)
