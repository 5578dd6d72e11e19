"""The binding HTTP API on the real Kafka, FerretDB, Dovecot and SMTP servers (httpx over ASGI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from laifaxin_binding.verify import Verifier
from laifaxin_shared.crypto import CredentialContext, CredentialError, KeyRing
from laifaxin_shared.events import MailboxSyncStatus, MailboxVerified
from laifaxin_shared.kafka import make_broker, publish_event
from tests.conftest import MailAccount
from tests.integration.binding.conftest import Api

pytestmark = pytest.mark.integration


def body(account: MailAccount, password: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "email": account.email,
        "password": account.password if password is None else password,
        "nickname": "Sales",
        "imap": {"host": account.host, "port": account.imaps_port, "security": "ssl"},
        "smtp": {"host": account.host, "port": account.smtp_port, "security": "starttls"},
        **extra,
    }


async def create(api: Api, account: MailAccount, tenant: str | None = None) -> dict[str, Any]:
    response = await api.client.post("/v1/mailboxes", json=body(account), headers=api.auth(tenant))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def poll_for(
    current: Callable[[], Awaitable[dict[str, Any]]],
    done: Callable[[dict[str, Any]], bool],
    seconds: float = 30,
) -> dict[str, Any]:
    """The mailbox once ``done(mailbox)`` holds (the consumer applies events asynchronously)."""
    for _ in range(int(seconds / 0.2)):
        data = await current()
        if done(data):
            return data
        await asyncio.sleep(0.2)
    raise AssertionError(f"never reached: {data}")


async def poll(
    current: Callable[[], Awaitable[dict[str, Any]]], status: str, seconds: float = 30
) -> dict[str, Any]:
    """The mailbox once its status is ``status``."""
    return await poll_for(current, lambda m: m["status"] == status, seconds)


async def test_create_verifies_saves_and_emits_only_the_sealed_credential(
    api: Api, shared_account: MailAccount
) -> None:
    created = await create(api, shared_account)
    assert created["status"] == "normal"
    assert created["email"] == shared_account.email
    assert created["provider_id"] == "custom"
    assert created["username"] == shared_account.email
    assert created["sync"]["interval_seconds"] == 300  # default 5 minutes
    assert "password" not in json.dumps(created) and "credential" not in created
    [record] = await api.events("mailbox.verified", created["id"], expect=1)
    assert record.key == created["id"].encode()
    assert shared_account.password.encode() not in record.value
    event = MailboxVerified.model_validate_json(record.value)
    assert event.tenant_id == api.tenant and event.user_id == "u_1"
    assert event.imap.port == shared_account.imaps_port and event.smtp.security == "starttls"
    ring = KeyRing.parse(
        api.settings.credential_keys.get_secret_value(), api.settings.credential_active_key_id
    )
    assert event.credential.aad == "v2"  # bound to the servers and logins it was verified with
    assert (
        ring.open_mailbox(event.credential, CredentialContext.of(event.model_dump()))
        == shared_account.password
    )

    listed = (await api.client.get("/v1/mailboxes", headers=api.auth())).json()
    assert [m["id"] for m in listed["items"]] == [created["id"]]
    assert listed["items"][0]["status"] == "normal" and listed["limit"] == 3
    got = await api.client.get(f"/v1/mailboxes/{created['id']}", headers=api.auth())
    assert got.status_code == 200 and got.json()["last_error"] is None


async def test_wrong_password_is_refused_and_nothing_saved(api: Api, mail_account: MailAccount) -> None:
    response = await api.client.post(
        "/v1/mailboxes", json=body(mail_account, "wrong-pw-123"), headers=api.auth()
    )
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "auth_failed"
    assert "app password" in error["fix"] and error["fix_zh"]
    assert {e["protocol"] for e in error["errors"]} == {"imap", "smtp"}
    assert "wrong-pw-123" not in response.text
    assert (await api.client.get("/v1/mailboxes", headers=api.auth())).json()["items"] == []


async def test_tenant_b_can_neither_read_edit_nor_delete_tenant_a_mailbox(
    api: Api, shared_account: MailAccount
) -> None:
    created = await create(api, shared_account)
    url = f"/v1/mailboxes/{created['id']}"
    b = api.auth(api.tenant + "-b", "u_2")
    assert (await api.client.get(url, headers=b)).status_code == 404
    assert (await api.client.patch(url, json={"nickname": "mine"}, headers=b)).status_code == 404
    assert (await api.client.post(f"{url}/verify", headers=b)).status_code == 404
    assert (await api.client.delete(url, headers=b)).status_code == 404
    assert (await api.client.get("/v1/mailboxes", headers=b)).json()["items"] == []
    still = (await api.client.get(url, headers=api.auth())).json()
    assert still["nickname"] == "Sales"


async def test_edit_with_a_bad_password_changes_nothing(api: Api, mail_account: MailAccount) -> None:
    created = await create(api, mail_account)
    before = await api.db.mailboxes.find_one({"_id": created["id"]})
    response = await api.client.patch(
        f"/v1/mailboxes/{created['id']}",
        json={"password": "bad-password-1", "nickname": "changed"},
        headers=api.auth(),
    )
    assert response.status_code == 422 and response.json()["code"] == "auth_failed"
    after = await api.db.mailboxes.find_one({"_id": created["id"]})
    assert after == before
    records = await api.events("mailbox.verified", created["id"])
    assert len(records) == 1  # only the create


async def test_edit_password_and_server_reverifies_and_emits_verified(
    api: Api, shared_account: MailAccount
) -> None:
    created = await create(api, shared_account)
    response = await api.client.patch(
        f"/v1/mailboxes/{created['id']}",
        json={
            "password": f"  {shared_account.password}  ",
            "imap": {"host": shared_account.host, "port": shared_account.imap_port, "security": "starttls"},
        },
        headers=api.auth(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["imap"] == {
        "host": shared_account.host,
        "port": shared_account.imap_port,
        "security": "starttls",
    }
    records = await api.events("mailbox.verified", created["id"], expect=2)
    assert MailboxVerified.model_validate_json(records[-1].value).imap.security == "starttls"
    # The server change re-sealed the password for the new servers: it opens for them, not for the old ones.
    ring = KeyRing.parse(
        api.settings.credential_keys.get_secret_value(), api.settings.credential_active_key_id
    )
    before, after = (MailboxVerified.model_validate_json(r.value) for r in records[-2:])
    assert (
        ring.open_mailbox(after.credential, CredentialContext.of(after.model_dump()))
        == shared_account.password
    )
    with pytest.raises(CredentialError):
        ring.open_mailbox(after.credential, CredentialContext.of(before.model_dump()))


async def test_nickname_and_sync_edit_needs_no_verification(api: Api, shared_account: MailAccount) -> None:
    created = await create(api, shared_account)
    attempts = await api.db.verification_attempts.count_documents({"tenant_id": api.tenant})
    response = await api.client.patch(
        f"/v1/mailboxes/{created['id']}",
        json={"nickname": "Support", "sync": {"enabled": False, "interval_seconds": 600}},
        headers=api.auth(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["nickname"] == "Support" and response.json()["sync"]["interval_seconds"] == 600
    assert await api.db.verification_attempts.count_documents({"tenant_id": api.tenant}) == attempts
    assert response.json()["credential_expiring"] is False
    # An authorization password that lapses in 5 days (NetEase Enterprise shows the date) is reported.
    soon = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    expiring = await api.client.patch(
        f"/v1/mailboxes/{created['id']}", json={"credential_expires_at": soon}, headers=api.auth()
    )
    assert expiring.json()["credential_expiring"] is True
    assert await api.db.verification_attempts.count_documents({"tenant_id": api.tenant}) == attempts
    record, _expiry = await api.events("mailbox.updated", created["id"], expect=2)
    event = json.loads(record.value)
    assert event["nickname"] == "Support" and event["sync"]["enabled"] is False


async def test_sync_interval_under_three_minutes_is_refused_with_the_reason(
    api: Api, shared_account: MailAccount
) -> None:
    response = await api.client.post(
        "/v1/mailboxes", json=body(shared_account, sync={"interval_seconds": 120}), headers=api.auth()
    )
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "sync_interval_too_short" and error["minimum_seconds"] == 180
    assert "rate-limit" in error["message"] and "限制" in error["message_zh"]
    created = await create(api, shared_account)
    edit = await api.client.patch(
        f"/v1/mailboxes/{created['id']}", json={"sync": {"interval_seconds": 179}}, headers=api.auth()
    )
    assert edit.status_code == 422 and edit.json()["code"] == "sync_interval_too_short"


async def test_failed_verifications_are_rate_limited_per_address(
    api: Api, shared_account: MailAccount
) -> None:
    # Any failed verification counts; a refused IMAP port fails fast (Dovecot delays repeated bad logins).
    refused = body(shared_account, imap={"host": "127.0.0.1", "port": 1, "security": "ssl"})
    for _ in range(3):  # BINDING_RATE_MAX_FAILURES_PER_ADDRESS=3 in these tests
        response = await api.client.post("/v1/mailboxes", json=refused, headers=api.auth())
        assert response.json()["code"] == "connection_refused"
    limited = await api.client.post("/v1/mailboxes", json=body(shared_account), headers=api.auth())
    assert limited.status_code == 429
    assert limited.json()["code"] == "verification_rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    assert (
        await api.db.verification_attempts.count_documents({"tenant_id": api.tenant}) == 3
    )  # the 4th never reached the server
    other_tenant = await api.client.post(
        "/v1/mailboxes", json=body(shared_account), headers=api.auth(api.tenant + "-c")
    )
    assert other_tenant.status_code == 201


async def test_mailbox_limit_per_tenant(api: Api, shared_account: MailAccount) -> None:
    now = datetime.now(UTC)
    for i in range(3):
        await api.db.mailboxes.insert_one(
            {"_id": f"mbx_fill{i}", "tenant_id": api.tenant, "email": f"f{i}@x.test", "created_at": now}
        )
    response = await api.client.post("/v1/mailboxes", json=body(shared_account), headers=api.auth())
    assert response.status_code == 403 and response.json()["code"] == "mailbox_limit_reached"
    # The plan's limit comes with the caller's token (mailbox_limit claim) and wins over the deployment's.
    bigger_plan = api.auth(mailbox_limit=4)
    response = await api.client.post("/v1/mailboxes", json=body(shared_account), headers=bigger_plan)
    assert response.status_code == 201, response.text
    response = await api.client.post(
        "/v1/mailboxes", json=body(shared_account, email="other@x.test"), headers=bigger_plan
    )
    assert response.status_code == 403 and response.json()["code"] == "mailbox_limit_reached"
    assert "4 mailboxes" in response.json()["message"]
    await api.db.mailboxes.delete_many({"_id": {"$in": [f"mbx_fill{i}" for i in range(3)]}})
    listed = await api.client.get("/v1/mailboxes", headers=bigger_plan)
    assert listed.json()["limit"] == 4 and len(listed.json()["items"]) == 1


async def test_delete_emits_removed(api: Api, shared_account: MailAccount) -> None:
    created = await create(api, shared_account)
    response = await api.client.delete(f"/v1/mailboxes/{created['id']}", headers=api.auth())
    assert response.status_code == 204
    assert (await api.client.get(f"/v1/mailboxes/{created['id']}", headers=api.auth())).status_code == 404
    [record] = await api.events("mailbox.removed", created["id"], expect=1)
    assert json.loads(record.value)["mailbox_id"] == created["id"]


async def test_reverify_after_the_sync_reported_a_failure(api: Api, shared_account: MailAccount) -> None:
    created = await create(api, shared_account)
    response = await api.client.post(f"/v1/mailboxes/{created['id']}/verify", headers=api.auth())
    assert response.status_code == 200 and response.json()["status"] == "normal"
    await api.events("mailbox.verified", created["id"], expect=2)


async def test_sync_status_keeps_status_and_last_sync_current(api: Api, shared_account: MailAccount) -> None:
    created = await create(api, shared_account)
    broker = make_broker(api.settings, client_id="fake-sync")
    synced = datetime.now(UTC).replace(microsecond=0)
    failed = MailboxSyncStatus(
        tenant_id=api.tenant,
        mailbox_id=created["id"],
        state="auth_failed",
        error_code="auth_failed",
        message="The server rejected the username or password.",
        fix="Generate a new authorization code.",
        message_zh="服务器拒绝了用户名或密码。",
        fix_zh="请重新生成授权码。",
        last_synced_at=synced,
    )
    stale = MailboxSyncStatus(
        tenant_id=api.tenant,
        mailbox_id=created["id"],
        state="ok",
        occurred_at=failed.occurred_at - timedelta(minutes=5),
    )
    other_tenant = MailboxSyncStatus(tenant_id=api.tenant + "-b", mailbox_id=created["id"], state="stopped")

    async def current() -> dict[str, Any]:
        data: dict[str, Any] = (
            await api.client.get(f"/v1/mailboxes/{created['id']}", headers=api.auth())
        ).json()
        return data

    async with broker:
        await broker.start()
        for event in (failed, stale, other_tenant):
            await publish_event(broker, event, prefix=api.settings.topic_prefix)
        mailbox = await poll(current, "auth_failed")
        assert mailbox["state"] == "auth_failed"
        assert mailbox["last_error"]["code"] == "auth_failed"
        assert mailbox["last_error"]["fix_zh"] == "请重新生成授权码。"
        assert datetime.fromisoformat(mailbox["last_synced_at"]) == synced

        recovered = MailboxSyncStatus(
            tenant_id=api.tenant,
            mailbox_id=created["id"],
            state="ok",
            last_synced_at=synced + timedelta(minutes=5),
        )
        await publish_event(broker, recovered, prefix=api.settings.topic_prefix)
        mailbox = await poll(current, "normal")
        assert datetime.fromisoformat(mailbox["last_synced_at"]) == synced + timedelta(minutes=5)
        assert mailbox["last_error"]["code"] == "auth_failed"  # the last error stays visible after recovery
        assert mailbox["progress"] is None

        # A long catch-up shows its progress while it runs; the ok that ends it clears it.
        syncing = MailboxSyncStatus(
            tenant_id=api.tenant,
            mailbox_id=created["id"],
            state="syncing",
            progress_done=1200,
            progress_total=4000,
            progress_eta_seconds=95.0,
        )
        await publish_event(broker, syncing, prefix=api.settings.topic_prefix)
        mailbox = await poll_for(current, lambda m: m["state"] == "syncing")
        assert mailbox["status"] == "normal"
        assert mailbox["progress"] == {"done": 1200, "total": 4000, "eta_seconds": 95.0}
        done = MailboxSyncStatus(tenant_id=api.tenant, mailbox_id=created["id"], state="ok")
        await publish_event(broker, done, prefix=api.settings.topic_prefix)
        mailbox = await poll_for(current, lambda m: m["state"] == "ok")
        assert mailbox["progress"] is None


async def test_pop3_and_oauth_only_providers_are_refused_before_connecting(api: Api) -> None:
    pop3 = await api.client.post(
        "/v1/mailboxes",
        json={"email": "a@163.com", "password": "x", "incoming_protocol": "pop3"},
        headers=api.auth(),
    )
    assert pop3.status_code == 422 and pop3.json()["code"] == "pop3_unsupported"
    outlook = await api.client.post(
        "/v1/mailboxes", json={"email": "a@outlook.com", "password": "x"}, headers=api.auth()
    )
    assert outlook.status_code == 422 and outlook.json()["code"] == "oauth_required"
    unknown = await api.client.post(
        "/v1/mailboxes", json={"email": "a@unknown-domain.example", "password": "x"}, headers=api.auth()
    )
    assert unknown.status_code == 422 and unknown.json()["code"] == "servers_required"


async def test_requests_without_a_valid_token_are_refused(api: Api) -> None:
    assert (await api.client.get("/v1/mailboxes")).json()["code"] == "unauthorized"
    bad = await api.client.get("/v1/mailboxes", headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
    import jwt

    forged = jwt.encode(
        {"tenant": "tenant-a", "sub": "u", "exp": 9999999999},
        "another-key-0123456789abcdef0123",
        algorithm="HS256",
    )
    assert (
        await api.client.get("/v1/mailboxes", headers={"Authorization": f"Bearer {forged}"})
    ).status_code == 401


async def test_provider_lookup_detection_health_and_openapi(api: Api) -> None:
    qq = await api.client.get("/v1/providers", params={"domain": "qq.com"}, headers=api.auth())
    assert [p["id"] for p in qq.json()] == ["qq"]
    shown = await api.client.get("/v1/providers/netease_qiye", headers=api.auth())
    assert shown.json()["imap"]["backups"][0]["host"] == "imap.qiye.163.com"
    detected = await api.client.post(
        "/v1/providers/detect", json={"email": "sales@163.com", "offline": True}, headers=api.auth()
    )
    assert detected.json()["provider"] == "netease" and detected.json()["source"] == "catalog"
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["mongodb"] is True and ready.json()["kafka"] is True
    spec = (await api.client.get("/openapi.json")).json()
    assert "/v1/mailboxes/{mailbox_id}/verify" in spec["paths"]
    assert "password" not in spec["components"]["schemas"]["MailboxOut"]["properties"]


def test_verifier_type_is_exported() -> None:
    assert Verifier.__name__ == "Verifier"


async def test_edit_address_reverifies_with_the_new_account_and_refuses_a_duplicate(
    api: Api, new_mail_account: Any
) -> None:
    first: MailAccount = new_mail_account()
    second: MailAccount = new_mail_account()
    a = await create(api, first)
    response = await api.client.patch(
        f"/v1/mailboxes/{a['id']}",
        json={"email": second.email, "password": second.password},
        headers=api.auth(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == second.email and response.json()["username"] == second.email
    assert response.json()["imap"]["port"] == first.imaps_port  # same provider: the servers are kept
    b = await create(api, first)
    clash = await api.client.patch(
        f"/v1/mailboxes/{b['id']}", json={"email": second.email}, headers=api.auth()
    )
    assert clash.status_code == 409 and clash.json()["code"] == "mailbox_exists"
