"""Mailbox health through the whole notify service: mailbox.verified and mailbox.sync_status records on the real
Kafka reach notify's consumers, alerts go out once per incident, recovery is announced, and the periodic check
sends the expiry alert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from laifaxin_notify.store import Binding, Store, push_target_id
from laifaxin_shared.events import MailboxSyncStatus, MailboxVerified
from laifaxin_shared.kafka import publish_event
from laifaxin_shared.providers.errors import ErrorCode, make_error
from laifaxin_shared.topics import spec
from tests.integration.notify.test_service import make_settings, run_service, wait_for
from tests.support.infra import Servers
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration


async def test_health_alerts_through_kafka(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer, push: PushService
) -> None:
    settings = make_settings(real_servers, topic_prefix, wechat, health_check_interval_s=0.5)
    async with run_service(settings, topic_prefix) as running:
        store: Store = running["app"].state.runtime.store
        mailbox = f"mbx_{uuid.uuid4().hex[:10]}"
        verified = MailboxVerified.model_validate(spec("mailbox.verified").examples()[0]).model_copy(
            update={
                "event_id": uuid.uuid4(),
                "mailbox_id": mailbox,
                "credential_expires_at": datetime.now(UTC) + timedelta(days=2),
            }
        )
        sub = push.subscribe()
        await store.put_binding(
            Binding(
                verified.tenant_id,
                verified.user_id,
                "webpush",
                push_target_id(sub["endpoint"]),
                {"endpoint": sub["endpoint"], "keys": sub["keys"]},
            )
        )

        def titles() -> list[str]:
            return [str(p.json()["title"]) for p in push.for_endpoint(sub["endpoint"])]

        await publish_event(running["producer"], verified, prefix=topic_prefix)
        # the periodic check: the code expires within 3 days (the 14-day stage is passed over)
        await wait_for(lambda: titles() == ["授权码将在 2 天后过期（credential_expired）"], 30)

        base = MailboxSyncStatus.model_validate(spec("mailbox.sync_status").examples()[0])

        def status(state: str, code: ErrorCode | None) -> MailboxSyncStatus:
            fields: dict[str, Any] = {"state": state, "error_code": None}
            if code is not None:
                fields.update(make_error(code).sync_status_fields())
            return base.model_copy(
                update={
                    "event_id": uuid.uuid4(),
                    "mailbox_id": mailbox,
                    "tenant_id": verified.tenant_id,
                    "occurred_at": datetime.now(UTC),
                    **fields,
                }
            )

        for _ in range(2):  # the same failure reported twice: one alert
            await publish_event(
                running["producer"], status("auth_failed", ErrorCode.CREDENTIAL_EXPIRED), prefix=topic_prefix
            )
        await publish_event(running["producer"], status("ok", None), prefix=topic_prefix)
        await wait_for(lambda: len(titles()) == 3, 30)
        assert titles()[1:] == ["邮箱已停止同步（credential_expired）", "邮箱已恢复正常"]
