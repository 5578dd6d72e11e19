"""Binding shows the send service's status of a mailbox (``mailbox.sync_status`` with source ``send``: the
bounce-rate guard's pause, an SMTP auth failure) beside the sync state, which it never replaces, and the other
way round."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from laifaxin_shared.events import MailboxSyncStatus
from laifaxin_shared.kafka import make_broker, publish_event
from laifaxin_shared.providers.errors import ErrorCode, make_error
from tests.conftest import MailAccount
from tests.integration.binding.conftest import Api
from tests.integration.binding.test_api import create, poll_for

pytestmark = pytest.mark.integration


async def test_sending_pause_is_shown_beside_the_sync_state(api: Api, shared_account: MailAccount) -> None:
    created = await create(api, shared_account)
    broker = make_broker(api.settings, client_id="fake-send")
    paused = MailboxSyncStatus(
        tenant_id=api.tenant,
        mailbox_id=created["id"],
        source="send",
        **make_error(ErrorCode.SENDING_PAUSED, protocol="smtp").sync_status_fields(),
    )
    synced_ok = MailboxSyncStatus(
        tenant_id=api.tenant,
        mailbox_id=created["id"],
        state="ok",
        occurred_at=paused.occurred_at + timedelta(seconds=1),
    )
    stale_send_ok = MailboxSyncStatus(
        tenant_id=api.tenant,
        mailbox_id=created["id"],
        source="send",
        state="ok",
        occurred_at=paused.occurred_at - timedelta(minutes=1),
    )

    async def current() -> dict[str, Any]:
        data: dict[str, Any] = (
            await api.client.get(f"/v1/mailboxes/{created['id']}", headers=api.auth())
        ).json()
        return data

    async with broker:
        await broker.start()
        for event in (paused, synced_ok, stale_send_ok):
            await publish_event(broker, event, prefix=api.settings.topic_prefix)
        mailbox = await poll_for(
            current, lambda m: (m.get("sending") or {}).get("status") == "sending_paused"
        )
        mailbox = await poll_for(current, lambda m: m["state"] == "ok")
        assert mailbox["status"] == "normal"  # the sync state is untouched by the send status
        assert mailbox["sending"]["status"] == "sending_paused"  # and the later sync ok does not clear it
        assert mailbox["sending"]["fix_zh"] and "3%" in mailbox["sending"]["message"]
        resumed = MailboxSyncStatus(
            tenant_id=api.tenant,
            mailbox_id=created["id"],
            source="send",
            state="ok",
            occurred_at=paused.occurred_at + timedelta(seconds=5),
        )
        await publish_event(broker, resumed, prefix=api.settings.topic_prefix)
        mailbox = await poll_for(current, lambda m: m["sending"]["status"] == "normal")
        assert mailbox["status"] == "normal" and mailbox["last_error"] is None
