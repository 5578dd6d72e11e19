"""Pacing with a controllable clock (warm-up cap and spacing, replies skip the spacing, over-cap commands
deferred to the next day's window), and the bounce-rate guard (mail.classified bounces matched to the mailbox
pause its campaigns, replies still go, it resumes when the rate falls or the user resumes), with the pause shown
by binding from mailbox.sync_status."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from laifaxin_send.pacing import ManualClock
from laifaxin_shared.events import MailboxSyncStatus, MailClassified
from tests.conftest import MailAccount
from tests.integration.send.conftest import SendEnv

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai, the sending zone
NEXT_DAY = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)  # midnight of the 22nd in Shanghai


async def test_warmup_cap_spacing_replies_and_next_day_deferral(
    send_env: SendEnv, mail_account: MailAccount
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    clock = ManualClock(START)
    async with send_env.app(clock=clock, run_dispatcher=False, pacing=True) as app:
        svc = app.state.service
        mailbox_id = await send_env.bind(
            mail_account, tenant=tenant, provider_id="netease", occurred_at=START
        )
        await send_env.wait_mailbox(app, mailbox_id)
        campaigns = [
            send_env.command(tenant, mailbox_id, f"b{i}@buyer.example", kind="campaign") for i in range(48)
        ]
        replies = [
            send_env.command(tenant, mailbox_id, f"r{i}@buyer.example", kind="reply") for i in range(2)
        ]
        over = send_env.command(tenant, mailbox_id, "late@buyer.example", kind="campaign")
        for command in [*campaigns, *replies, over]:
            await send_env.publish(command)
        docs = {
            c.command_id: await send_env.wait_state(app, tenant, c.command_id, ("queued", "deferred"))
            for c in [*campaigns, *replies, over]
        }
        dues = [docs[c.command_id]["due_at"] for c in campaigns]
        assert dues[0] == START
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(dues)]
        assert all(300 <= g <= 600 for g in gaps), gaps  # week 1: 5-10 minutes between campaign sends
        assert len(set(gaps)) > 10  # random within the range
        assert all(docs[c.command_id]["due_at"] == START for c in replies)  # replies skip the spacing
        assert docs[over.command_id]["state"] == "deferred" and docs[over.command_id]["reason"] == "daily_cap"
        assert docs[over.command_id]["due_at"] == NEXT_DAY  # 50 a day in week 1: the 51st waits for tomorrow
        api = await app.state.client.get(f"/v1/send/{over.command_id}", headers=send_env.auth(tenant))
        assert api.json()["state"] == "deferred" and api.json()["reason"] == "daily_cap"
        plan = (
            await app.state.client.get(f"/v1/send/mailboxes/{mailbox_id}/plan", headers=send_env.auth(tenant))
        ).json()
        assert plan["daily_cap"] == 50 and plan["reserved_today"] == 50 and plan["min_spacing_seconds"] == 300

        await svc.dispatch_once(wait=True)  # at START: the two replies and the first campaign
        sent = {
            c.command_id
            for c in [*campaigns, *replies]
            if (await svc.store.command(f"{tenant}/{c.command_id}"))["state"] == "sent"
        }
        assert sent == {replies[0].command_id, replies[1].command_id, campaigns[0].command_id}
        clock.set(dues[1] - timedelta(seconds=1))
        await svc.dispatch_once(wait=True)
        assert (await svc.store.command(f"{tenant}/{campaigns[1].command_id}"))["state"] == "queued"
        clock.set(dues[1])
        await svc.dispatch_once(wait=True)
        assert (await svc.store.command(f"{tenant}/{campaigns[1].command_id}"))["state"] == "sent"
        assert (await svc.store.command(f"{tenant}/{over.command_id}"))["state"] == "deferred"
    assert len(send_env.received(mail_account)) == 4


def bounce(mailbox_id: str, tenant: str, recipient: str, kind: str = "hard") -> MailClassified:
    return MailClassified.model_validate(
        {
            "tenant_id": tenant,
            "user_id": "u_1",
            "ref": {
                "mailbox_id": mailbox_id,
                "folder": "INBOX",
                "uidvalidity": 1,
                "uid": 1,
                "message_id": f"{uuid.uuid4().hex}@mx.example",
            },
            "received_event_id": str(uuid.uuid4()),
            "category": "bounce",
            "confidence": 0.99,
            "bounce": {
                "kind": kind,
                "recipient": recipient,
                "status": "5.1.1",
                "diagnostic": "550 5.1.1 User unknown",
            },
            "match": {
                "sent_message_id": "lfx.x@laifaxin.test",
                "sent_mailbox_id": mailbox_id,
                "owner_tenant_id": tenant,
                "owner_user_id": "u_1",
                "recipient": recipient,
                "method": "dsn",
                "confidence": 1.0,
            },
        }
    )


async def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110  # polls the store
            await asyncio.sleep(0.1)


async def test_bounce_guard_pauses_campaigns_and_resumes(
    send_env: SendEnv, mail_account: MailAccount
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    clock = ManualClock(START)
    async with send_env.app(clock=clock, run_dispatcher=False, bounce_min_sends=4) as app:
        svc = app.state.service
        mailbox_id = await send_env.bind(mail_account, tenant=tenant, occurred_at=START)
        await send_env.wait_mailbox(app, mailbox_id)
        first = [
            send_env.command(tenant, mailbox_id, f"b{i}@buyer.example", kind="campaign") for i in range(4)
        ]
        for command in first:
            await send_env.publish(command)
        for command in first:
            await send_env.wait_state(app, tenant, command.command_id, ("queued",))
        await svc.dispatch_once(wait=True)
        for command in first:
            assert (await svc.store.command(f"{tenant}/{command.command_id}"))["state"] == "sent"
        await send_env.publish(bounce(mailbox_id, tenant, "b0@buyer.example", kind="soft"))  # not counted
        await send_env.publish(bounce(mailbox_id, tenant, "b1@buyer.example"))  # 1 of 4 = 25 % > 3 %

        async def paused() -> bool:
            return bool((await svc.store.mailbox(mailbox_id)).get("sending_paused"))

        await wait_for(paused)
        assert await svc.store.bounce_count(mailbox_id, START) == 1
        [status] = [
            MailboxSyncStatus.model_validate(e)
            for e in await send_env.events("mailbox.sync_status", mailbox_id, expect=1)
        ]
        assert status.source == "send" and status.error_code == "sending_paused" and status.fix_zh
        campaign = send_env.command(tenant, mailbox_id, "c@buyer.example", kind="campaign")
        reply = send_env.command(tenant, mailbox_id, "r@buyer.example", kind="reply")
        await send_env.publish(campaign)
        await send_env.publish(reply)
        held = await send_env.wait_state(app, tenant, campaign.command_id, ("deferred",))
        assert held["reason"] == "sending_paused"
        await send_env.wait_state(app, tenant, reply.command_id, ("queued",))
        await svc.dispatch_once(wait=True)
        assert (await svc.store.command(f"{tenant}/{reply.command_id}"))[
            "state"
        ] == "sent"  # replies still go
        assert (await svc.store.command(f"{tenant}/{campaign.command_id}"))["state"] == "deferred"

        clock.advance(8 * 86400)  # the bounce leaves the 7-day window: the rate falls, campaigns resume
        svc._last_guard_check = None
        await svc.dispatch_once(wait=True)
        assert not await paused()
        await svc.dispatch_once(wait=True)
        assert (await svc.store.command(f"{tenant}/{campaign.command_id}"))["state"] == "sent"
        statuses = [
            MailboxSyncStatus.model_validate(e)
            for e in await send_env.events("mailbox.sync_status", mailbox_id, expect=2)
        ]
        assert [s.state for s in statuses] == ["error", "ok"]

        # paused again (two more bounces: 2 of the 5 sends in the window), then resumed through the API
        for recipient in ("x@buyer.example", "y@buyer.example"):
            await send_env.publish(bounce(mailbox_id, tenant, recipient))
        svc.settings.bounce_min_sends = 1
        await wait_for(paused)
        clock.advance(60)
        other = await app.state.client.post(
            f"/v1/send/mailboxes/{mailbox_id}/resume", headers=send_env.auth("someone-else")
        )
        assert other.status_code == 404
        resumed = await app.state.client.post(
            f"/v1/send/mailboxes/{mailbox_id}/resume", headers=send_env.auth(tenant)
        )
        assert resumed.status_code == 200 and resumed.json()["sending_paused"] is False
        assert resumed.json()["bounces_in_window"] == 0  # the window restarts at the resume
