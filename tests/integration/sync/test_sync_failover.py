"""NetEase Enterprise failover: when the recommended (``hwhz``) pair answers ``ERR.LOGIN.DOMAINNOTEXIST`` or
cannot be reached, sync uses the backup pair that ``mailbox.verified`` carries, says so on ``mailbox.sync_status``,
and goes back to the recommended pair after ``SYNC_BACKUP_RETURN_SECONDS``. When both pairs fail, the status does
not tell the user to switch to the backup servers.

The two pairs: a loopback IMAP server answering NetEase's text, or a closed port that a TCP forwarder to the
shared Dovecot later opens; and the shared Dovecot itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from laifaxin_shared.crypto import CredentialContext
from laifaxin_shared.events import BackupServers, MailboxVerified, SyncSettings
from laifaxin_shared.events.base import ServerEndpoint
from laifaxin_shared.wire import serialize
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail
from tests.support.imap_responder import ImapResponder, refuse

pytestmark = pytest.mark.integration

DOMAINNOTEXIST = "NO ERR.LOGIN.DOMAINNOTEXIST"


def sealed(
    env: Env, mailbox_id: str, account: MailAccount, imap: ServerEndpoint, smtp: ServerEndpoint
) -> object:
    context = CredentialContext.of(
        {
            "tenant_id": "tenant-test",
            "mailbox_id": mailbox_id,
            "username": account.email,
            "imap": imap.model_dump(),
            "smtp": smtp.model_dump(),
        }
    )
    return env.keyring.seal_mailbox(account.password, context)


async def register(env: Env, account: MailAccount, primary: ServerEndpoint, backup: ServerEndpoint) -> str:
    """``mailbox.verified`` with ``primary`` as the recommended IMAP server and ``backup`` in the backup pair."""
    mailbox_id = f"mbx_{uuid.uuid4().hex[:12]}"
    smtp = ServerEndpoint(host=account.host, port=account.smtps_port, security="ssl")
    event = MailboxVerified(
        tenant_id="tenant-test",
        mailbox_id=mailbox_id,
        user_id="u_test",
        email=account.email,
        provider_id="netease_qiye",
        username=account.email,
        imap=primary,
        smtp=smtp,
        credential=sealed(env, mailbox_id, account, primary, smtp),  # type: ignore[arg-type]
        sync=SyncSettings(enabled=True, interval_seconds=180, initial_window_days=30),
        backup=BackupServers(
            imap=backup,
            smtp=smtp,
            credential=sealed(env, mailbox_id, account, backup, smtp),  # type: ignore[arg-type]
        ),
    )
    await env.send_raw("mailbox.verified", serialize(event), mailbox_id.encode())
    return mailbox_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def forwarder(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """A plain TCP forwarder on ``port`` to ``target`` (TLS passes through: the certificate is Dovecot's)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True)
    try:
        yield
    finally:
        server.close()


async def test_domainnotexist_moves_to_the_backup_pair_and_back(
    sync_env: Env, mail_account: MailAccount, imap_factory: object
) -> None:
    tls = Path(sync_env.servers.ca_file).parent
    async with ImapResponder(
        str(tls / "server.pem"), str(tls / "server.key"), refuse(DOMAINNOTEXIST)
    ) as hwhz:
        await sync_env.start_worker(SYNC_BACKUP_RETURN_SECONDS="3")
        primary = ServerEndpoint(host="127.0.0.1", port=hwhz.port, security="ssl")
        backup = ServerEndpoint(host=mail_account.host, port=mail_account.imaps_port, security="ssl")
        mailbox_id = await register(sync_env, mail_account, primary, backup)

        def on_backup() -> list[object]:
            return [
                s
                for s in sync_env.statuses
                if s.mailbox_id == mailbox_id and s.state == "ok" and "backup servers" in s.message
            ]

        await sync_env.wait_for(lambda: bool(on_backup()), what="ok on the backup pair")
        status = on_backup()[0]
        assert f"{mail_account.host} / {mail_account.host}" in status.message  # type: ignore[attr-defined]
        assert "备用服务器" in status.message_zh  # type: ignore[attr-defined]
        # the recommended pair's failure was not reported: the user sees a working mailbox
        assert not any(s.mailbox_id == mailbox_id and s.error_code for s in sync_env.statuses)
        imap = await imap_factory(mail_account)  # type: ignore[operator]
        await imap.append(mail("Synced through the backup pair"))
        await sync_env.wait_subjects(mailbox_id, {"Synced through the backup pair"})
        first_tries = len(hwhz.usernames)
        assert first_tries >= 1
        # after SYNC_BACKUP_RETURN_SECONDS the recommended pair is tried again (and fails again: back to backup)
        await sync_env.wait_for(lambda: len(hwhz.usernames) > first_tries, what="the recommended pair again")
        assert not any(s.mailbox_id == mailbox_id and s.error_code for s in sync_env.statuses)


async def test_unreachable_primary_fails_over_and_returns_when_it_answers(
    sync_env: Env, mail_account: MailAccount
) -> None:
    port = free_port()  # closed for now: connection refused
    await sync_env.start_worker(SYNC_BACKUP_RETURN_SECONDS="2")
    primary = ServerEndpoint(host="127.0.0.1", port=port, security="ssl")
    backup = ServerEndpoint(host=mail_account.host, port=mail_account.imaps_port, security="ssl")
    mailbox_id = await register(sync_env, mail_account, primary, backup)
    await sync_env.wait_for(
        lambda: any(
            s.mailbox_id == mailbox_id and s.state == "ok" and "backup servers" in s.message
            for s in sync_env.statuses
        ),
        what="ok on the backup pair",
    )
    mark = len(sync_env.statuses)
    async with forwarder(port, ("127.0.0.1", mail_account.imaps_port)):  # the recommended pair answers again
        await sync_env.wait_for(
            lambda: any(
                s.mailbox_id == mailbox_id and s.state == "ok" and "backup servers" not in s.message
                for s in sync_env.statuses[mark:]
            ),
            what="ok on the recommended pair",
        )


async def test_both_pairs_failing_does_not_send_the_user_to_the_backups(
    sync_env: Env, mail_account: MailAccount
) -> None:
    tls = Path(sync_env.servers.ca_file).parent
    cert, key = str(tls / "server.pem"), str(tls / "server.key")
    async with (
        ImapResponder(cert, key, refuse(DOMAINNOTEXIST)) as hwhz,
        ImapResponder(cert, key, refuse(DOMAINNOTEXIST)) as backup_server,
    ):
        await sync_env.start_worker()
        primary = ServerEndpoint(host="127.0.0.1", port=hwhz.port, security="ssl")
        backup = ServerEndpoint(host="127.0.0.1", port=backup_server.port, security="ssl")
        mailbox_id = await register(sync_env, mail_account, primary, backup)
        await sync_env.wait_for(
            lambda: any(s.mailbox_id == mailbox_id and s.error_code for s in sync_env.statuses),
            what="the failure of both pairs",
        )
        [status] = [s for s in sync_env.statuses if s.mailbox_id == mailbox_id and s.error_code]
        assert status.error_code == "backup_server_needed"
        assert "Neither the recommended nor the backup servers" in status.message
        assert "switch" not in status.fix.lower() and "备用服务器" not in status.fix_zh.replace(
            "推荐服务器和备用服务器都", ""
        )
        assert "imap.qiye.163.com" not in status.fix
        assert hwhz.usernames and backup_server.usernames  # both pairs were tried
