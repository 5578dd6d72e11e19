"""Send-time replies the shared SMTP server never gives, from a loopback aiosmtpd server that answers each
provider's exact text (tests/support/smtp_responder.py): every rule of the send-time taxonomy through the whole
path (Kafka command -> worker -> SMTP -> state and mail.send_failed), a 4xx retried with backoff, an SMTP auth
failure reported on mailbox.sync_status, and an outcome in doubt (connection dropped after DATA) settled by the
Sent folder on the real Dovecot, never by a resend."""

from __future__ import annotations

import asyncio
import imaplib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from laifaxin_send.message import message_id_for
from laifaxin_shared.events import MailboxSyncStatus, MailSent, SendFailed
from laifaxin_shared.imap import client_tls_context
from laifaxin_shared.providers.errors import ErrorCode
from tests.conftest import MailAccount
from tests.integration.send.conftest import SendEnv
from tests.support.smtp_responder import Behaviour, SmtpResponder
from tests.unit.providers.test_send_errors import EXACT_SEND_TEXTS

pytestmark = pytest.mark.integration


@pytest.fixture
async def responder(mail_account: MailAccount) -> AsyncIterator[SmtpResponder]:
    tls = Path(mail_account.servers.ca_file).parent
    async with SmtpResponder(str(tls / "server.pem"), str(tls / "server.key")) as server:
        yield server


async def test_every_send_time_rule_end_to_end(
    send_env: SendEnv, mail_account: MailAccount, responder: SmtpResponder
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    mismatches: list[str] = []
    async with send_env.app(rate_limit_max_attempts=1) as app:
        mailbox_id = await send_env.bind(mail_account, tenant=tenant, smtp_port=responder.port)
        await send_env.wait_mailbox(app, mailbox_id)
        expected_failures = 0
        for text, stage, code in EXACT_SEND_TEXTS:
            responder.behaviour = Behaviour(**{stage: text})
            if stage == "auth":  # a new session logs in; an open one is reused without AUTH
                await app.state.service.pool.drop(mailbox_id)
            command = send_env.command(tenant, mailbox_id, "maria@buyer.example", kind="campaign")
            await send_env.publish(command)
            doc = await send_env.wait_state(
                app, tenant, command.command_id, ("failed", "unknown", "sent", "deferred")
            )
            if code is ErrorCode.DAILY_QUOTA_REACHED:
                got = (doc["state"], (doc.get("last_error") or {}).get("code"), doc.get("reason"))
                if got != ("deferred", code.value, "daily_quota_reached") or doc["due_at"] <= datetime.now(
                    UTC
                ):
                    mismatches.append(f"{text!r}: {got}")
                continue
            expected_failures += 1
            error = doc.get("error") or {}
            if doc["state"] != "failed" or error.get("code") != code.value:
                mismatches.append(
                    f"{text!r} at {stage}: {doc['state']} {error.get('code')} ({error.get('rule')})"
                )
            elif text.splitlines()[-1].split(" ", 1)[-1][:20] not in (error.get("server_text") or ""):
                mismatches.append(f"{text!r}: server text not kept: {error.get('server_text')!r}")
        assert not mismatches, "\n".join(mismatches)
        failed = [
            SendFailed.model_validate(e)
            for e in await send_env.events("mail.send_failed", mailbox_id, expect=expected_failures, wait=30)
        ]
    assert len(failed) == expected_failures
    assert all(f.state == "failed" and f.message and f.fix and f.message_zh and f.fix_zh for f in failed)
    assert responder.accepted == []
    quota = next(f for f in failed if f.code == "content_rejected_spam")
    assert quota.stage == "data" and quota.smtp_code is not None


async def test_rate_limited_reply_is_retried_with_backoff_then_sent(
    send_env: SendEnv, mail_account: MailAccount, responder: SmtpResponder
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    responder.behaviour = Behaviour(
        mail="451 MI:SFQ 163 smtp10,DsCowAD3l6pQ8gVnTL0XAA--.1 1728440913", times=1
    )
    async with send_env.app(rate_limit_max_attempts=3, rate_limit_retry_seconds=0.5) as app:
        mailbox_id = await send_env.bind(mail_account, tenant=tenant, smtp_port=responder.port)
        await send_env.wait_mailbox(app, mailbox_id)
        command = send_env.command(tenant, mailbox_id, "maria@buyer.example")
        await send_env.publish(command)
        doc = await send_env.wait_state(app, tenant, command.command_id)
    assert doc["state"] == "sent", doc.get("error")
    assert doc["attempts"] == 2 and doc["retries"] == 1
    assert doc["last_error"]["code"] == "rate_limited"
    assert len(responder.accepted) == 1
    [sent] = [MailSent.model_validate(e) for e in await send_env.events("mail.sent", mailbox_id, expect=1)]
    assert sent.provider_message_id == "MSG0001.responder@prod.outlook.example"  # from the 250 text


async def test_smtp_auth_failure_fails_the_command_and_reports_the_mailbox(
    send_env: SendEnv, mail_account: MailAccount, responder: SmtpResponder
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    responder.behaviour = Behaviour(auth="535 5.7.8 Authentication credentials invalid")
    async with send_env.app() as app:
        mailbox_id = await send_env.bind(
            mail_account, tenant=tenant, smtp_port=responder.port, provider_id="netease"
        )
        await send_env.wait_mailbox(app, mailbox_id)
        command = send_env.command(tenant, mailbox_id, "maria@buyer.example")
        await send_env.publish(command)
        doc = await send_env.wait_state(app, tenant, command.command_id)
    assert doc["state"] == "failed" and doc["error"]["code"] == "auth_failed"
    assert doc["error"]["stage"] == "auth"
    [status] = [
        MailboxSyncStatus.model_validate(e)
        for e in await send_env.events("mailbox.sync_status", mailbox_id, expect=1)
    ]
    assert status.source == "send" and status.state == "auth_failed" and status.error_code == "auth_failed"
    assert status.fix_zh
    assert responder.logins == [mail_account.email]


def append_to_sent(account: MailAccount, message_id: str) -> None:
    msg = EmailMessage()
    msg["From"] = account.email
    msg["To"] = "maria@buyer.example"
    msg["Subject"] = "Hello"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("Hello there.")
    with imaplib.IMAP4_SSL(
        account.host, account.imaps_port, ssl_context=client_tls_context(account.servers.ca_file)
    ) as conn:
        conn.login(account.email, account.password)
        conn.append("Sent", "(\\Seen)", imaplib.Time2Internaldate(time.time()), msg.as_bytes())


@pytest.mark.parametrize("copy_in_sent", [False, True])
async def test_connection_lost_after_data_is_never_resent(
    send_env: SendEnv, mail_account: MailAccount, responder: SmtpResponder, copy_in_sent: bool
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    responder.behaviour = Behaviour(drop_after_data=True)
    async with send_env.app(rate_limit_max_attempts=5, rate_limit_retry_seconds=0.2) as app:
        mailbox_id = await send_env.bind(mail_account, tenant=tenant, smtp_port=responder.port)
        await send_env.wait_mailbox(app, mailbox_id)
        command = send_env.command(tenant, mailbox_id, "maria@buyer.example")
        if copy_in_sent:  # the provider filed it (as Gmail and Outlook do) before the 250 was lost
            await asyncio.to_thread(
                append_to_sent, mail_account, message_id_for(tenant, command.command_id, mail_account.email)
            )
        await send_env.publish(command)
        doc = await send_env.wait_state(app, tenant, command.command_id)
        await asyncio.sleep(1.5)  # time for any (wrong) retry
        doc = await send_env.wait_state(app, tenant, command.command_id)
    assert responder.dropped == 1
    if copy_in_sent:
        assert doc["state"] == "sent" and doc["found_in_sent"] is True
        [sent] = await send_env.events("mail.sent", mailbox_id, expect=1)
        assert sent["message_id"] == doc["message_id"]
    else:
        assert doc["state"] == "unknown"
        assert doc["error"]["code"] == "unknown_outcome"
        [failed] = [
            SendFailed.model_validate(e)
            for e in await send_env.events("mail.send_failed", mailbox_id, expect=1)
        ]
        assert failed.state == "unknown" and failed.code == "unknown_outcome" and failed.stage == "sent_check"
        assert "Sent" in failed.fix and failed.fix_zh
