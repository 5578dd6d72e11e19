"""Sync of a mailbox bound with OAuth: XOAUTH2 logins at the real Dovecot with tokens from the real Hydra, new mail
under IDLE, and an access token that expires while the mailbox syncs (the refreshed one arrives on
``mailbox.verified``; the session the server then ends is reopened with it, with no error status and no lost
mail). The test plays binding's part: it refreshes the token at Hydra and publishes the configuration."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from laifaxin_shared.crypto import CredentialContext
from laifaxin_shared.events import MailboxVerified
from laifaxin_shared.events.base import ServerEndpoint
from laifaxin_shared.events.mailbox import SyncSettings
from laifaxin_shared.kafka import serialize
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail
from tests.support.infra import Servers
from tests.support.oauth import Hydra, OAuthClient, Tokens, hydra_from

TTL_S = 15


@pytest.fixture(scope="module")
def hydra(real_servers: Servers) -> Hydra:
    found = hydra_from(real_servers.mail)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("infra.json names no Hydra: start the stack with deploy/local/infra.py up")
        pytest.skip("no local Hydra in this stack")
    return found


@pytest.fixture(scope="module")
def short_lived_client(hydra: Hydra) -> OAuthClient:
    return hydra.create_client("http://127.0.0.1:9/cb", access_token_ttl=f"{TTL_S}s")


def refresh(hydra: Hydra, client: OAuthClient, refresh_token: str) -> Tokens:
    resp = httpx.post(
        hydra.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
        timeout=10,
    )
    resp.raise_for_status()
    data = resp.json()
    return Tokens(data["access_token"], data.get("refresh_token"), data.get("id_token"), data["expires_in"])


async def publish(env: Env, account: MailAccount, mailbox_id: str, tokens: Tokens) -> None:
    tenant = "tenant-test"
    imap = {"host": account.host, "port": account.imaps_port, "security": "ssl"}
    smtp = {"host": account.host, "port": account.smtps_port, "security": "ssl"}
    context = CredentialContext.of(
        {"tenant_id": tenant, "imap": imap, "smtp": smtp, "username": account.email}, mailbox_id=mailbox_id
    )
    event = MailboxVerified(
        tenant_id=tenant,
        mailbox_id=mailbox_id,
        user_id="u_test",
        email=account.email,
        provider_id="outlook",
        username=account.email,
        imap=ServerEndpoint(host=account.host, port=account.imaps_port, security="ssl"),  # type: ignore[arg-type]
        smtp=ServerEndpoint(host=account.host, port=account.smtps_port, security="ssl"),  # type: ignore[arg-type]
        credential=env.keyring.seal_mailbox(tokens.access_token, context),
        sync=SyncSettings(enabled=True, interval_seconds=180, initial_window_days=0),
        auth="oauth2",
        access_token_expires_at=datetime.now(UTC) + timedelta(seconds=tokens.expires_in),
    )
    await env.send_raw("mailbox.verified", serialize(event), mailbox_id.encode())


def kick(servers: Servers, email: str) -> None:
    """End the user's IMAP sessions at Dovecot, as Microsoft ends a session whose token expired."""
    conf = Path(servers.mail["state_dir"]) / "dovecot" / "dovecot.conf"
    subprocess.run(["doveadm", "-c", str(conf), "kick", email], check=True, capture_output=True, timeout=30)


async def test_oauth_mailbox_syncs_and_survives_token_expiry(
    sync_env: Env,
    mail_account: MailAccount,
    imap_factory: Any,
    hydra: Hydra,
    short_lived_client: OAuthClient,
    real_servers: Servers,
) -> None:
    imap = await imap_factory(mail_account)  # the test's own (password) session to deliver mail
    first = hydra.tokens_for(short_lived_client, mail_account.email)
    assert first.refresh_token and first.expires_in <= TTL_S
    worker = await sync_env.start_worker()
    mailbox_id = f"mbx_{uuid.uuid4().hex[:12]}"
    await publish(sync_env, mail_account, mailbox_id, first)
    await sync_env.wait_for(
        lambda: any(s.mailbox_id == mailbox_id and s.state == "ok" for s in sync_env.statuses), what="ok"
    )
    await sync_env.wait_for(lambda: worker.metrics.idle_connections._value.get() >= 1, what="IDLE")
    await imap.append(mail("over xoauth2"))
    await sync_env.wait_subjects(mailbox_id, {"over xoauth2"}, timeout=15)

    # Binding's part: refresh at about half the token's life and send each new token; the running
    # session is kept (no new status), and every later login uses the newest token.
    async def refresher() -> None:
        token = first
        while True:
            await asyncio.sleep(TTL_S / 2)
            assert token.refresh_token
            token = await asyncio.to_thread(refresh, hydra, short_lived_client, token.refresh_token)
            await publish(sync_env, mail_account, mailbox_id, token)

    task = asyncio.create_task(refresher())
    try:
        await asyncio.sleep(TTL_S + 1)
        assert hydra.introspect(first.access_token)["active"] is False, "the first token has expired"
        await imap.append(mail("during expiry"))
        await sync_env.wait_subjects(mailbox_id, {"during expiry"}, timeout=15)

        # The server ends the session (as Microsoft does when the token it was opened with expires).
        kick(real_servers, mail_account.email)  # the test's own session too
        await asyncio.sleep(2)
        imap = await imap_factory(mail_account)
        await imap.append(mail("after reconnect"))
        await sync_env.wait_subjects(mailbox_id, {"after reconnect"}, timeout=30)

    finally:
        task.cancel()
    subjects = sorted(e.subject for e in sync_env.received_for(mailbox_id))
    assert subjects == ["after reconnect", "during expiry", "over xoauth2"]
    states = [s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id]
    assert set(states) == {"ok"}, states
