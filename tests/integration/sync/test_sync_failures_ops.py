"""Throttling backoff and IMAP ID against a scripted loopback IMAP server; HTTP probes, metrics and SIGTERM
of a worker process."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail
from tests.support.imap_responder import ImapResponder, accept, refuse

pytestmark = pytest.mark.integration


def responder(env: Env, login: Any, **kwargs: Any) -> ImapResponder:
    tls = Path(env.servers.ca_file).parent
    return ImapResponder(str(tls / "server.pem"), str(tls / "server.key"), login, **kwargs)


def fake_account(port: int, email: str = "sales@laifaxin.test", password: str = "pw-right") -> Any:  # noqa: S107  # a test account of the loopback responder
    return SimpleNamespace(
        email=email, password=password, host="127.0.0.1", imaps_port=port, imap_port=port, smtps_port=port
    )


async def test_throttling_backs_off_exponentially_and_reports_once(sync_env: Env) -> None:
    text = "NO [UNAVAILABLE] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"
    async with responder(sync_env, refuse(text)) as server:
        await sync_env.start_worker(SYNC_THROTTLE_MIN_SECONDS="0.4", SYNC_THROTTLE_MAX_SECONDS="30")
        mailbox_id = await sync_env.register(fake_account(server.port))  # type: ignore[arg-type]
        await sync_env.wait_for(
            lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status"
        )
        started = time.monotonic()
        await asyncio.sleep(6)
        logins = len(server.usernames)
    statuses = [s for s in sync_env.statuses if s.mailbox_id == mailbox_id]
    assert [(s.state, s.error_code) for s in statuses] == [("throttled", "too_many_connections")]
    assert statuses[0].retry_at is not None
    # 0.4 s doubling with jitter: at most ~6 attempts in 6 s (a tight loop would make hundreds).
    assert 2 <= logins <= 7, (logins, time.monotonic() - started)


async def test_imap_id_is_sent_before_select_when_required(sync_env: Env) -> None:
    account = fake_account(0)
    async with responder(
        sync_env, accept(account.email, account.password), capabilities="IMAP4rev1 ID", select_needs_id=True
    ) as server:
        account.imaps_port = server.port
        await sync_env.start_worker()
        import uuid

        from laifaxin_shared.events import MailboxVerified
        from laifaxin_shared.events.base import ServerEndpoint
        from laifaxin_shared.kafka import serialize

        mailbox_id = f"mbx_{uuid.uuid4().hex[:12]}"
        event = MailboxVerified(
            tenant_id="tenant-test",
            mailbox_id=mailbox_id,
            user_id="u_test",
            email=account.email,
            provider_id="netease163",
            username=account.email,
            imap=ServerEndpoint(host="127.0.0.1", port=server.port, security="ssl"),
            smtp=ServerEndpoint(host="127.0.0.1", port=server.port, security="ssl"),
            credential=sync_env.keyring.seal(
                account.password, tenant_id="tenant-test", mailbox_id=mailbox_id
            ),
            imap_id_required=True,
        )
        await sync_env.send_raw("mailbox.verified", serialize(event), mailbox_id.encode())
        await sync_env.wait_for(lambda: "EXAMINE" in server.commands, what="EXAMINE")
        assert server.commands.index("ID") < server.commands.index("EXAMINE")
        assert "LOGIN" in server.commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_probes_metrics_and_graceful_sigterm(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any, tmp_path: Path
) -> None:
    port = free_port()
    proc = sync_env.spawn("ops", tmp_path, SYNC_HTTP_PORT=port, SYNC_HTTP_HOST="127.0.0.1")
    try:
        mailbox_id = await sync_env.register(mail_account)
        imap = await imap_factory(mail_account)
        await sync_env.wait_for(
            lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), timeout=30, what="ok"
        )
        await imap.append(mail("observed"))
        await sync_env.wait_subjects(mailbox_id, {"observed"})
        expected = [
            "sync_mailboxes_owned 1.0",
            # IDLE is re-entered only after the cursor was saved and the Junk poll (every 2 s here) is done.
            "sync_idle_connections 1.0",
            'sync_messages_published_total{folder_role="inbox",initial_sync="false"} 1.0',
            "sync_arrival_to_publish_seconds_count 1.0",
        ]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            metrics = ""
            for _ in range(150):  # up to ~15 s
                metrics = (await http.get("/metrics")).text
                if all(line in metrics for line in expected):
                    break
                await asyncio.sleep(0.1)
        assert [line for line in expected if line not in metrics] == []
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
        assert time.monotonic() - started < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = (tmp_path / "ops.log").read_text()
    assert "sync worker stopped" in log
    assert mail_account.password not in log


@pytest.mark.parametrize("uidvalidity", ["0", "7" * 5000])
async def test_a_uidvalidity_out_of_range_is_reported_and_retried_without_ending_the_loop(
    sync_env: Env, uidvalidity: str
) -> None:
    """RFC 3501 / RFC 9051: UIDVALIDITY is an nz-number (1..2^32-1). A server answering 0 or a number of 5,000
    digits (beyond Python's int conversion limit: a ValueError from int()) gets a clear error reported on
    mailbox.sync_status, and the mailbox keeps retrying with backoff."""
    login = accept("sales@laifaxin.test", "pw-right")
    async with responder(sync_env, login, uidvalidity=uidvalidity) as server:
        account = fake_account(server.port)
        worker = await sync_env.start_worker()
        mailbox_id = await sync_env.register(account)  # type: ignore[arg-type]
        await sync_env.wait_for(
            lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status"
        )
        await sync_env.wait_for(lambda: server.commands.count("EXAMINE") >= 2, what="a second EXAMINE")
        [status] = [s for s in sync_env.statuses if s.mailbox_id == mailbox_id][:1]
        assert status.state == "error" and status.error_code == "unknown", status
        # The log line names it: server_text='ImapResponseError: server sent UIDVALIDITY 0: must be
        # 1..4294967295 (RFC 3501/RFC 9051 nz-number)'; the status carries the taxonomy code.
        assert worker.metrics.errors.labels("unknown")._value.get() >= 2
        loop = worker.supervisor.loops[mailbox_id]
        assert not loop.done and loop.crash() is None  # the loop goes on
