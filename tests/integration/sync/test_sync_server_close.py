"""A working connection the server closes (Dovecot's ``doveadm kick``: a ``BYE`` and a close, as a provider
recycling an IDLE session) is reconnected at once without an error report, and mail sent meanwhile arrives; a
second close before the connection was stable is reported (``server_unavailable`` with the server's text), and
the next good pass reports ``ok`` again. Before, aioimaplib left the running command (IDLE) waiting for its
whole timeout, and the close was reported as a ``timeout``. Real Dovecot, Kafka and FerretDB."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration


def kick(env: Env, account: MailAccount) -> None:
    """Close every IMAP session of ``account`` from the server side (doveadm kick: the session sends its BYE)."""
    conf = Path(str(env.servers.mail["state_dir"])) / "dovecot" / "dovecot.conf"
    subprocess.run(["doveadm", "-c", str(conf), "kick", account.email], check=True, capture_output=True)


async def test_a_connection_the_server_closes_is_reconnected_and_reported_only_when_it_repeats(
    sync_env: Env, mail_account: MailAccount, imap_factory: object
) -> None:
    worker = await sync_env.start_worker(SYNC_IMAP_TIMEOUT="60", SYNC_BACKOFF_MIN_SECONDS="0.2")
    mailbox_id = await sync_env.register(mail_account)
    idle = worker.metrics.idle_connections
    closed = worker.metrics.errors.labels("connection_closed")
    await sync_env.wait_for(lambda: idle._value.get() >= 1, what="IDLE")

    def states() -> list[str]:
        return [s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id]

    kick(sync_env, mail_account)
    # Ended by the close itself: with a 60 s command timeout, waiting for a timeout would fail this wait.
    await sync_env.wait_for(lambda: closed._value.get() == 1, timeout=20, what="close seen")
    await sync_env.wait_for(lambda: idle._value.get() >= 1, timeout=20, what="IDLE again")
    imap = await imap_factory(mail_account)  # type: ignore[operator]
    await imap.append(mail("sent after the server closed the connection"))
    await sync_env.wait_subjects(mailbox_id, {"sent after the server closed the connection"}, timeout=20)
    # nothing told the user about a close the worker mended by itself (waited for: the status consumer may lag)
    await sync_env.wait_for(lambda: states() == ["ok"], timeout=10, what="only the first ok")
    assert states() == ["ok"]

    kick(sync_env, mail_account)  # again, before the connection was up SYNC_STABLE_CONNECTION_SECONDS (300)
    await sync_env.wait_for(lambda: "ok" in states()[1:], timeout=30, what="reported, then ok again")
    reported = [s for s in sync_env.statuses if s.mailbox_id == mailbox_id][1]
    assert (
        reported.state == "unreachable" and reported.error_code == "server_unavailable" and reported.retry_at
    )
    assert closed._value.get() == 1
    assert worker.metrics.errors.labels("server_unavailable")._value.get() == 1
