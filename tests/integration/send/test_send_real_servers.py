"""Send through the real SMTP server and Dovecot: what the server recorded (headers, encodings, the Message-ID),
reply threading, the Sent copy, idempotent redelivery, the HTTP API with its tenant scoping, the system mailbox's
reply token."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import uuid
from email.header import decode_header, make_header
from typing import Any

import pytest

from laifaxin_send.message import message_id_for
from laifaxin_send.settings import DEV_REPLY_TOKEN_KEYS
from laifaxin_shared.events import MailSent, SendFailed
from laifaxin_shared.imap import client_tls_context
from laifaxin_shared.replytoken import ReplyTokens, token_from_address
from tests.conftest import MailAccount
from tests.integration.send.conftest import SendEnv

pytestmark = pytest.mark.integration


def sent_folder_ids(account: MailAccount) -> list[str]:
    """Message-IDs in the account's Sent folder on Dovecot (plain imaplib, independent of send's code)."""
    with imaplib.IMAP4_SSL(
        account.host, account.imaps_port, ssl_context=client_tls_context(account.servers.ca_file)
    ) as conn:
        conn.login(account.email, account.password)
        conn.select("Sent", readonly=True)
        _, data = conn.uid("search", None, "ALL")
        uids = data[0].split()
        ids = []
        for uid in uids:
            _, fetched = conn.uid("fetch", uid, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            raw = fetched[0][1].decode().strip() if fetched and isinstance(fetched[0], tuple) else ""
            ids.append(raw.partition(":")[2].strip())
        return ids


async def test_campaign_is_sent_with_its_headers_encodings_and_sent_copy(
    send_env: SendEnv, mail_account: MailAccount
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    async with send_env.app() as app:
        mailbox_id = await send_env.bind(mail_account, tenant=tenant)
        await send_env.wait_mailbox(app, mailbox_id)
        command = send_env.command(
            tenant,
            mailbox_id,
            "maria@buyer.example",
            to=[{"name": "玛丽亚 López", "email": "maria@buyer.example"}],
            cc=[{"name": "", "email": "boss@buyer.example"}],
            bcc=[{"name": "", "email": "archive@acme.example"}],
            from_name="张伟 (Acme)",
            subject="LED 面板报价 / quotation",
            text="您好，附件是报价。\nBest regards",
            html="<p>您好，附件是<b>报价</b>。</p>",
            attachments=[
                {
                    "filename": "报价.txt",
                    "content_type": "text/plain",
                    "content_base64": base64.b64encode(b"LED 12.50").decode(),
                }
            ],
            kind="campaign",
            campaign_id="cmp-1",
            unsubscribe_url="https://laifaxin.example/u/1/cmp-1/ab",
        )
        await send_env.publish(command)
        doc = await send_env.wait_state(app, tenant, command.command_id)
    assert doc["state"] == "sent", doc.get("error")
    expected_id = message_id_for(tenant, command.command_id, mail_account.email)
    assert doc["message_id"] == expected_id
    received = send_env.received(mail_account)
    assert len(received) == 1
    record, msg = received[0]
    raw = record["raw"]
    assert raw.isascii(), "7-bit clean: RFC 2047 headers, base64/quoted-printable bodies"
    assert b"=?utf-8?" in raw
    assert record["mail_from"] == mail_account.email
    assert sorted(record["rcpt_tos"]) == sorted(
        ["maria@buyer.example", "boss@buyer.example", "archive@acme.example"]
    )
    assert msg["Message-ID"] == f"<{expected_id}>"
    assert str(make_header(decode_header(msg["Subject"]))) == "LED 面板报价 / quotation"
    assert msg["From"].addresses[0].display_name == "张伟 (Acme)"
    assert msg["From"].addresses[0].addr_spec == mail_account.email
    assert msg["To"].addresses[0].display_name == "玛丽亚 López"
    assert "Bcc" not in msg and b"archive@acme.example" not in raw
    assert msg["Date"] is not None
    assert msg["List-Unsubscribe"] == "<https://laifaxin.example/u/1/cmp-1/ab>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_body(("plain",)).get_content().startswith("您好，附件是报价。")
    assert "<b>报价</b>" in msg.get_body(("html",)).get_content()
    attachment = next(msg.iter_attachments())
    assert attachment.get_filename() == "报价.txt" and attachment.get_content() == "LED 12.50"
    # the Sent copy on Dovecot (a custom provider: no catalog says the server files one itself)
    assert f"<{expected_id}>" in sent_folder_ids(mail_account)
    assert doc.get("copied") is True
    sent = [MailSent.model_validate(e) for e in await send_env.events("mail.sent", mailbox_id, expect=1)]
    assert len(sent) == 1
    assert sent[0].message_id == expected_id and sent[0].command_id == command.command_id
    assert sent[0].kind == "campaign" and sent[0].campaign_id == "cmp-1"
    assert [a.email for a in sent[0].bcc] == ["archive@acme.example"]


async def test_reply_threading_over_starttls(send_env: SendEnv, mail_account: MailAccount) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    async with send_env.app() as app:
        mailbox_id = await send_env.bind(mail_account, tenant=tenant, smtp_security="starttls")
        await send_env.wait_mailbox(app, mailbox_id)
        command = send_env.command(
            tenant,
            mailbox_id,
            "maria@buyer.example",
            subject="Re: quotation",
            in_reply_to="<CAFk2u7x+abc@mail.gmail.com>",
            references=["lfx.first@acme.example"],
            kind="reply",
        )
        await send_env.publish(command)
        doc = await send_env.wait_state(app, tenant, command.command_id)
    assert doc["state"] == "sent", doc.get("error")
    [(record, msg)] = send_env.received(mail_account)
    assert record["tls"] is True
    assert msg["In-Reply-To"] == "<CAFk2u7x+abc@mail.gmail.com>"
    assert msg["References"] == "<lfx.first@acme.example> <CAFk2u7x+abc@mail.gmail.com>"
    assert "List-Unsubscribe" not in msg
    [sent] = [MailSent.model_validate(e) for e in await send_env.events("mail.sent", mailbox_id, expect=1)]
    assert sent.in_reply_to == "CAFk2u7x+abc@mail.gmail.com"
    assert sent.references == ["lfx.first@acme.example"]


async def test_redelivered_command_is_sent_once(send_env: SendEnv, mail_account: MailAccount) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    async with send_env.app() as app:
        mailbox_id = await send_env.bind(mail_account, tenant=tenant)
        await send_env.wait_mailbox(app, mailbox_id)
        command = send_env.command(tenant, mailbox_id, "maria@buyer.example")
        await send_env.publish(command)
        await send_env.wait_state(app, tenant, command.command_id)
        await send_env.publish(command)  # redelivery after it was sent
        again = send_env.command(tenant, mailbox_id, "maria@buyer.example")
        await send_env.publish(again)
        await send_env.wait_state(
            app, tenant, again.command_id
        )  # the second command proves the first was handled
    assert len(send_env.received(mail_account)) == 2
    assert len(await send_env.events("mail.sent", mailbox_id)) == 2


async def test_api_accepts_reports_and_scopes_by_tenant(send_env: SendEnv, mail_account: MailAccount) -> None:
    tenant, other = f"tenant-{uuid.uuid4().hex[:6]}", f"tenant-{uuid.uuid4().hex[:6]}"
    async with send_env.app() as app:
        client = app.state.client
        mailbox_id = await send_env.bind(mail_account, tenant=tenant)
        await send_env.wait_mailbox(app, mailbox_id)
        body: dict[str, Any] = {
            "command_id": "api-1",
            "mailbox_id": mailbox_id,
            "to": [{"email": "maria@buyer.example"}],
            "subject": "Hi",
            "text": "Hi.",
            "kind": "reply",
        }
        unauthenticated = await client.post("/v1/send", json=body)
        assert unauthenticated.status_code == 401 and unauthenticated.json()["code"] == "unauthorized"
        foreign = await client.post("/v1/send", json=body, headers=send_env.auth(other))
        assert foreign.status_code == 404 and foreign.json()["code"] == "mailbox_unknown"
        invalid = await client.post("/v1/send", json={**body, "to": []}, headers=send_env.auth(tenant))
        assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_command"
        assert invalid.json()["fix_zh"]
        accepted = await client.post("/v1/send", json=body, headers=send_env.auth(tenant))
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["state"] == "queued"
        doc = await send_env.wait_state(app, tenant, "api-1")
        assert doc["state"] == "sent"
        got = await client.get("/v1/send/api-1", headers=send_env.auth(tenant))
        assert got.status_code == 200 and got.json()["state"] == "sent"
        assert got.json()["message_id"] == message_id_for(tenant, "api-1", mail_account.email)
        assert (await client.get("/v1/send/api-1", headers=send_env.auth(other))).status_code == 404
        again = await client.post("/v1/send", json=body, headers=send_env.auth(tenant))
        assert again.status_code == 202 and again.json()["state"] == "sent"  # idempotent on command_id
        plan = await client.get(f"/v1/send/mailboxes/{mailbox_id}/plan", headers=send_env.auth(tenant))
        assert plan.status_code == 200 and plan.json()["sends_in_window"] == 1
        assert (
            await client.get(f"/v1/send/mailboxes/{mailbox_id}/plan", headers=send_env.auth(other))
        ).status_code == 404
        await asyncio.sleep(0.5)
    assert len(send_env.received(mail_account)) == 1


async def test_system_mailbox_mail_carries_a_signed_reply_token(
    send_env: SendEnv, mail_account: MailAccount
) -> None:
    owner = f"tenant-{uuid.uuid4().hex[:6]}"
    async with send_env.app() as app:
        mailbox_id = await send_env.bind(mail_account, tenant="laifaxin-system", is_system=True)
        await send_env.wait_mailbox(app, mailbox_id)
        command = send_env.command(
            owner, mailbox_id, "maria@buyer.example", kind="campaign", campaign_id="c9"
        )
        await send_env.publish(command)
        doc = await send_env.wait_state(app, owner, command.command_id)
    assert doc["state"] == "sent", doc.get("error")
    [(_, msg)] = send_env.received(mail_account)
    reply_to = msg["Reply-To"].addresses[0].addr_spec
    token = token_from_address(reply_to)
    assert token is not None and reply_to.endswith("@" + mail_account.email.rpartition("@")[2])
    verified = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev").verify(token)
    assert getattr(verified, "digest", None) is not None
    [sent] = [MailSent.model_validate(e) for e in await send_env.events("mail.sent", mailbox_id, expect=1)]
    assert sent.system_mailbox and sent.tenant_id == owner and sent.reply_token == token


async def test_attachment_by_reference_is_refused_clearly(
    send_env: SendEnv, mail_account: MailAccount
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    async with send_env.app() as app:
        mailbox_id = await send_env.bind(mail_account, tenant=tenant)
        await send_env.wait_mailbox(app, mailbox_id)
        command = send_env.command(
            tenant,
            mailbox_id,
            "maria@buyer.example",
            attachments=[{"filename": "big.pdf", "content_ref": "s3://bucket/big.pdf"}],
        )
        await send_env.publish(command)
        doc = await send_env.wait_state(app, tenant, command.command_id)
    assert doc["state"] == "failed" and doc["error"]["code"] == "attachment_unsupported"
    [failed] = [
        SendFailed.model_validate(e) for e in await send_env.events("mail.send_failed", mailbox_id, expect=1)
    ]
    assert failed.code == "attachment_unsupported" and "512 KiB" in failed.message and failed.fix_zh
    assert send_env.received(mail_account) == []
