"""Mailbox health alerts against the real MongoDB-wire server and the loopback Web Push service, with a clock
the test moves: one alert per incident, the recovery message, the unreachable threshold, the expiry schedule
(14 days, 3 days, expired), the owner's language, quiet hours, the preference switch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from laifaxin_notify.channels.webpush import WebPushSender
from laifaxin_notify.health import HealthLimits, MailboxHealth
from laifaxin_notify.models import Preferences, QuietHours
from laifaxin_notify.pipeline import DEFERRED_TOPIC
from laifaxin_notify.store import Binding, Store, push_target_id
from laifaxin_shared.events import MailboxRemoved, MailboxSyncStatus, MailboxVerified
from laifaxin_shared.providers.errors import ErrorCode, make_error
from laifaxin_shared.topics import spec
from tests.support.push_service import PushService

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def verified(mailbox_id: str, expires: datetime | None = None) -> MailboxVerified:
    base = MailboxVerified.model_validate(spec("mailbox.verified").examples()[0])
    return base.model_copy(
        update={"event_id": uuid.uuid4(), "mailbox_id": mailbox_id, "credential_expires_at": expires}
    )


def status(mailbox_id: str, at: datetime, state: str, code: ErrorCode | None = None, **extra: Any) -> Any:
    fields: dict[str, Any] = {"state": state, "error_code": None}
    if code is not None:
        fields.update(make_error(code).sync_status_fields())
    fields.update(extra)
    base = MailboxSyncStatus.model_validate(spec("mailbox.sync_status").examples()[0])
    return base.model_copy(
        update={"event_id": uuid.uuid4(), "mailbox_id": mailbox_id, "occurred_at": at, **fields}
    )


@pytest.fixture
async def setup(store: Store, push: PushService, push_sender: WebPushSender, make_notifier: Any) -> Any:
    clock = Clock(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    notifier, queue = make_notifier({"webpush": push_sender}, clock=clock)
    health = MailboxHealth(notifier, limits=HealthLimits(unreachable_after_s=1800, expiry_warn_days=(14, 3)))
    mailbox = f"mbx_{uuid.uuid4().hex[:10]}"
    ev = verified(mailbox)
    sub = push.subscribe()
    await store.put_binding(
        Binding(
            ev.tenant_id,
            ev.user_id,
            "webpush",
            push_target_id(sub["endpoint"]),
            {"endpoint": sub["endpoint"], "keys": sub["keys"]},
        )
    )

    def pushed() -> list[dict[str, Any]]:
        return [dict(p.json()) for p in push.for_endpoint(sub["endpoint"])]

    return clock, health, mailbox, ev, pushed, queue


async def test_auth_failure_alerts_once_then_recovery(setup: Any) -> None:
    clock, health, mailbox, ev, pushed, _ = setup
    await health.handle_verified(ev)
    assert pushed() == []
    first = status(
        mailbox,
        clock(),
        "auth_failed",
        ErrorCode.CREDENTIAL_EXPIRED,
        server_text="NO [EXPIRED] That password isn't valid any more",
    )
    assert await health.handle_status(first) == ["broken"]
    assert await health.handle_status(first) == []  # redelivered
    clock.now += timedelta(minutes=20)
    assert (
        await health.handle_status(status(mailbox, clock(), "auth_failed", ErrorCode.CREDENTIAL_EXPIRED))
        == []
    )
    [alert] = pushed()
    # the owner's language (default zh): the stable code, the taxonomy's message and fix
    assert "credential_expired" in alert["title"] and "邮箱已停止同步" in alert["title"]
    assert "生成新的授权密码" in alert["body"] and ev.email in alert["body"]
    assert "服务器：NO [EXPIRED] That password isn't valid any more" in alert["body"]
    assert alert["category"] == "mailbox_health" and alert["url"].endswith(f"/mailboxes/{mailbox}")
    assert await health.tick() == []  # the schedule adds nothing to an alerted incident

    clock.now += timedelta(minutes=5)
    assert await health.handle_status(status(mailbox, clock(), "ok")) == ["recovered"]
    assert await health.handle_status(status(mailbox, clock(), "ok")) == []
    assert [a["title"] for a in pushed()][1] == "邮箱已恢复正常"

    # a new incident (another code) after recovery alerts again, in English when the owner chose it
    await health.notifier.store.put_preferences(ev.tenant_id, ev.user_id, Preferences(language="en"))
    clock.now += timedelta(hours=1)
    assert await health.handle_status(status(mailbox, clock(), "auth_failed", ErrorCode.IP_DENIED)) == [
        "broken"
    ]
    last = pushed()[-1]
    assert last["title"] == "Mailbox stopped syncing (ip_denied)" and "IP" in last["body"]


async def test_every_stopping_code_alerts_and_oauth_revoked_is_generic(setup: Any) -> None:
    clock, health, mailbox, ev, pushed, _ = setup
    await health.handle_verified(ev)
    for code in ("protocol_disabled", "uidvalidity_unstable", "oauth_revoked"):
        clock.now += timedelta(minutes=1)
        kinds = await health.handle_status(
            status(
                mailbox, clock(), "error", None, error_code=code, message=f"m {code}", message_zh=f"中 {code}"
            )
        )
        assert kinds == ["broken"]
    assert [a["title"] for a in pushed()] == [
        "邮箱已停止同步（protocol_disabled）",
        "邮箱已停止同步（uidvalidity_unstable）",
        "邮箱已停止同步（oauth_revoked）",
    ]
    # throttling is a wait, never an alert
    assert await health.handle_status(status(mailbox, clock(), "throttled", ErrorCode.RATE_LIMITED)) == []


async def test_unreachable_alerts_only_after_the_threshold(setup: Any) -> None:
    clock, health, mailbox, ev, pushed, _ = setup
    await health.handle_verified(ev)
    assert await health.handle_status(status(mailbox, clock(), "unreachable", ErrorCode.TIMEOUT)) == []
    clock.now += timedelta(minutes=10)
    assert await health.tick() == []
    assert await health.handle_status(status(mailbox, clock(), "ok")) == []  # short outage: nobody is told
    assert pushed() == []

    assert (
        await health.handle_status(status(mailbox, clock(), "unreachable", ErrorCode.CONNECTION_REFUSED))
        == []
    )
    clock.now += timedelta(minutes=31)
    assert await health.tick() == [(mailbox, "unreachable")]
    assert await health.tick() == []
    assert await health.handle_status(status(mailbox, clock(), "ok")) == ["recovered"]
    assert [a["title"] for a in pushed()] == ["邮箱服务器无法连接（connection_refused）", "邮箱已恢复正常"]


async def test_sending_paused_from_the_send_service(setup: Any) -> None:
    clock, health, mailbox, ev, pushed, _ = setup
    await health.handle_verified(ev)
    paused = status(mailbox, clock(), "error", ErrorCode.AUTH_FAILED)
    object.__setattr__(paused, "source", "send")  # the send service's status names its source
    assert await health.handle_status(paused) == ["send"]
    # sync's own state is a separate incident: sync ok does not close sending's
    assert await health.handle_status(status(mailbox, clock(), "ok")) == []
    ok = status(mailbox, clock(), "ok")
    object.__setattr__(ok, "source", "send")
    assert await health.handle_status(ok) == ["recovered"]
    assert [a["title"] for a in pushed()] == ["发信已暂停（auth_failed）", "邮箱已恢复正常"]


async def test_expiry_schedule_with_a_controlled_clock(setup: Any) -> None:
    clock, health, mailbox, ev, pushed, _ = setup
    expires = clock() + timedelta(days=20)
    await health.handle_verified(ev.model_copy(update={"credential_expires_at": expires}))
    assert await health.tick() == []
    clock.now = expires - timedelta(days=14)
    assert await health.tick() == [(mailbox, "expiring_14d")]
    assert await health.tick() == []
    clock.now = expires - timedelta(days=10)
    assert await health.tick() == []
    clock.now = expires - timedelta(days=2, hours=23)
    assert await health.tick() == [(mailbox, "expiring_3d")]
    clock.now = expires + timedelta(minutes=1)
    assert await health.tick() == [(mailbox, "expired")]
    assert await health.tick() == []
    titles = [a["title"] for a in pushed()]
    assert titles == [
        "授权码将在 14 天后过期（credential_expired）",
        "授权码将在 3 天后过期（credential_expired）",
        "授权码已过期（credential_expired）",
    ]
    assert "2026-12-21" in pushed()[0]["body"]
    # the owner updates the code: a new expiry date, "working again", and a fresh schedule
    new_expiry = clock() + timedelta(days=90)
    assert await health.handle_verified(ev.model_copy(update={"credential_expires_at": new_expiry})) == [
        "recovered"
    ]
    assert await health.tick() == []


async def test_a_late_verification_skips_earlier_stages_and_quiet_hours_defer(setup: Any) -> None:
    clock, health, mailbox, ev, pushed, queue = setup
    prefs = Preferences(quiet_hours=QuietHours(start=time(0, 0), end=time(23, 59), timezone="UTC"))
    await health.notifier.store.put_preferences(ev.tenant_id, ev.user_id, prefs)
    await health.handle_verified(ev.model_copy(update={"credential_expires_at": clock() + timedelta(days=2)}))
    assert await health.tick() == [(mailbox, "expiring_3d")]
    assert await health.tick() == []
    assert pushed() == []
    [(topic, task)] = queue.items
    assert topic == DEFERRED_TOPIC and task.content.category == "mailbox_health"


async def test_the_preference_turns_health_alerts_off_and_removal_forgets(setup: Any) -> None:
    clock, health, mailbox, ev, pushed, _ = setup
    await health.notifier.store.put_preferences(ev.tenant_id, ev.user_id, Preferences(mailbox_health=False))
    await health.handle_verified(ev)
    await health.handle_status(status(mailbox, clock(), "auth_failed", ErrorCode.AUTH_FAILED))
    assert pushed() == []
    await health.handle_removed(MailboxRemoved(tenant_id=ev.tenant_id, mailbox_id=mailbox))
    assert await health.handle_status(status(mailbox, clock(), "auth_failed", ErrorCode.IP_DENIED)) == []


async def test_old_statuses_replayed_from_history_alert_nobody(setup: Any) -> None:
    clock, health, mailbox, ev, pushed, _ = setup
    await health.handle_verified(ev)
    old = clock() - timedelta(days=2)
    assert await health.handle_status(status(mailbox, old, "auth_failed", ErrorCode.AUTH_FAILED)) == []
    assert await health.handle_status(status(mailbox, old + timedelta(hours=1), "ok")) == []
    assert await health.tick() == []
    assert pushed() == []
    # news again: a fresh failure alerts
    assert await health.handle_status(status(mailbox, clock(), "auth_failed", ErrorCode.AUTH_FAILED)) == [
        "broken"
    ]
