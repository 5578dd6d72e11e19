"""Rotating the credential key: every stored credential resealed under the new key, events re-emitted."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from laifaxin_binding.app import build_verifier, create_app, rotate_credentials
from laifaxin_binding.auth import issue_token
from laifaxin_binding.service import MailboxService
from laifaxin_binding.store import AttemptLog, MailboxStore
from laifaxin_shared.crypto import CredentialContext, CredentialError, KeyRing, generate_key
from laifaxin_shared.events import EncryptedCredential, MailboxVerified
from laifaxin_shared.kafka import ensure_topics
from laifaxin_shared.topics import spec
from tests.conftest import MailAccount, wait_until_login_works
from tests.support.infra import Servers

from .conftest import make_settings
from .kafka_read import read_topic

pytestmark = pytest.mark.integration


async def test_rotation_reseals_and_re_emits(
    real_servers: Servers, topic_prefix: str, mongo_db: Any, mail_account: MailAccount
) -> None:
    old_key, new_key = generate_key(), generate_key()
    base = make_settings(real_servers, topic_prefix, mongo_db.name)
    before = base.model_copy(
        update={"credential_keys": SecretStr(f"old:{old_key}"), "credential_active_key_id": "old"}
    )
    after = base.model_copy(
        update={
            "credential_keys": SecretStr(f"old:{old_key},new:{new_key}"),
            "credential_active_key_id": "new",
        }
    )
    await ensure_topics(
        base.kafka_bootstrap_servers,
        [spec("mailbox.verified"), spec("mailbox.sync_status")],
        prefix=topic_prefix,
        replication_factor=1,
    )
    app = create_app(before)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client,
    ):
        r = await client.post(
            "/v1/mailboxes",
            headers={"Authorization": f"Bearer {issue_token(before, 'tenant-r', 'u1')}"},
            json={
                "email": mail_account.email,
                "password": mail_account.password,
                "imap": {"host": mail_account.host, "port": mail_account.imaps_port, "security": "ssl"},
                "smtp": {"host": mail_account.host, "port": mail_account.smtps_port, "security": "ssl"},
            },
        )
        assert r.status_code == 201, r.text
    mailbox_id = r.json()["id"]

    assert await rotate_credentials(after) == {"checked": 1, "resealed": 1, "failed": 0}
    assert await rotate_credentials(after) == {"checked": 1, "resealed": 0, "failed": 0}  # idempotent

    doc = await mongo_db.mailboxes.find_one({"_id": mailbox_id})
    assert doc["credential"]["key_id"] == "new"
    records = await read_topic(base.kafka_bootstrap_servers, base.topic("mailbox.verified"), expect=2)
    rotated = MailboxVerified.model_validate_json(records[-1].value)
    assert rotated.credential.key_id == "new"
    only_new = KeyRing.parse(f"new:{new_key}", "new")  # the old key can now be dropped everywhere
    assert (
        only_new.open_mailbox(rotated.credential, CredentialContext.of(rotated.model_dump()))
        == mail_account.password
    )


async def test_rotation_reseals_v1_envelopes_to_v2(
    real_servers: Servers, topic_prefix: str, mongo_db: Any, mail_account: MailAccount
) -> None:
    """A mailbox sealed before v2 (associated data: tenant and mailbox only) is resealed with v2 for its stored
    servers and logins by `credentials rotate`, under the same key, even with v1 already refused; the re-emitted
    envelope opens for those servers only."""
    key = generate_key()
    settings = make_settings(real_servers, topic_prefix, mongo_db.name).model_copy(
        update={"credential_keys": SecretStr(f"k1:{key}"), "credential_active_key_id": "k1"}
    )
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [spec("mailbox.verified"), spec("mailbox.sync_status")],
        prefix=topic_prefix,
        replication_factor=1,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client,
    ):
        r = await client.post(
            "/v1/mailboxes",
            headers={"Authorization": f"Bearer {issue_token(settings, 'tenant-r', 'u1')}"},
            json={
                "email": mail_account.email,
                "password": mail_account.password,
                "imap": {"host": mail_account.host, "port": mail_account.imaps_port, "security": "ssl"},
                "smtp": {"host": mail_account.host, "port": mail_account.smtps_port, "security": "ssl"},
            },
        )
        assert r.status_code == 201, r.text
    mailbox_id = r.json()["id"]
    ring = KeyRing.parse(f"k1:{key}", "k1")
    legacy = ring.seal(mail_account.password, tenant_id="tenant-r", mailbox_id=mailbox_id)  # as before v2
    await mongo_db.mailboxes.update_one({"_id": mailbox_id}, {"$set": {"credential": legacy.model_dump()}})

    strict = settings.model_copy(update={"credential_accept_v1": False})
    assert await rotate_credentials(strict) == {"checked": 1, "resealed": 1, "failed": 0}
    assert await rotate_credentials(strict) == {"checked": 1, "resealed": 0, "failed": 0}  # idempotent

    doc = await mongo_db.mailboxes.find_one({"_id": mailbox_id})
    assert doc["credential"]["aad"] == "v2" and doc["credential"]["key_id"] == "k1"
    records = await read_topic(settings.kafka_bootstrap_servers, settings.topic("mailbox.verified"), expect=2)
    event = MailboxVerified.model_validate_json(records[-1].value)
    assert event.credential.aad == "v2"
    context = CredentialContext.of(event.model_dump())
    assert ring.open_mailbox(event.credential, context) == mail_account.password
    moved = CredentialContext.of(
        {**event.model_dump(), "imap": {**event.imap.model_dump(), "host": "evil.example"}}
    )
    with pytest.raises(CredentialError):
        ring.open_mailbox(event.credential, moved)


async def test_rotation_never_reverts_a_password_changed_meanwhile(
    real_servers: Servers, topic_prefix: str, mongo_db: Any, mail_account: MailAccount, infra_module: Any
) -> None:
    """Security review: the reseal read a credential, resealed it, and wrote it back unconditionally, so a
    password the user changed in between (through the API, verified against the real Dovecot) was reverted to
    the old one. The reseal is now a compare-and-set on the envelope it read."""
    old_key, new_key = generate_key(), generate_key()
    base = make_settings(real_servers, topic_prefix, mongo_db.name)
    before = base.model_copy(
        update={"credential_keys": SecretStr(f"old:{old_key}"), "credential_active_key_id": "old"}
    )
    after = base.model_copy(
        update={
            "credential_keys": SecretStr(f"old:{old_key},new:{new_key}"),
            "credential_active_key_id": "new",
        }
    )
    await ensure_topics(
        base.kafka_bootstrap_servers,
        [spec("mailbox.verified"), spec("mailbox.sync_status")],
        prefix=topic_prefix,
        replication_factor=1,
    )
    servers = {
        "imap": {"host": mail_account.host, "port": mail_account.imaps_port, "security": "ssl"},
        "smtp": {"host": mail_account.host, "port": mail_account.smtps_port, "security": "ssl"},
    }
    app = create_app(before)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client,
    ):
        headers = {"Authorization": f"Bearer {issue_token(before, 'tenant-r', 'u1')}"}
        r = await client.post(
            "/v1/mailboxes",
            headers=headers,
            json={"email": mail_account.email, "password": mail_account.password, **servers},
        )
        assert r.status_code == 201, r.text
    mailbox_id = r.json()["id"]

    # The user changes the app password at the provider, then in Laifaxin while the rotation runs.
    new_password = "pw-changed-" + uuid.uuid4().hex[:8]
    infra_module.add_user(mail_account.email, new_password, Path(real_servers.mail["passwd_file"]))
    changed_account = MailAccount(mail_account.email, new_password, real_servers)
    wait_until_login_works(changed_account, timeout=20)
    edit_app = create_app(after)  # step 1 of a rotation: binding already runs with the new active key

    async def user_changes_the_password() -> None:
        async with (
            edit_app.router.lifespan_context(edit_app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=edit_app), base_url="http://b") as client,
        ):
            edit = await client.patch(
                f"/v1/mailboxes/{mailbox_id}",
                headers={"Authorization": f"Bearer {issue_token(after, 'tenant-r', 'u1')}"},
                json={"password": new_password},
            )
            assert edit.status_code == 200, edit.text

    class RacingStore(MailboxStore):
        """The rotation's store; the user's edit lands between the reseal's read and its write."""

        raced = False

        async def update(self, *args: Any, **kwargs: Any) -> Any:
            if not self.raced:
                self.raced = True
                await user_changes_the_password()
            return await super().update(*args, **kwargs)

    published: list[Any] = []

    async def publish(event: Any) -> None:
        published.append(event)

    ring = KeyRing.parse(after.credential_keys.get_secret_value(), "new")
    rotation = MailboxService(
        store=RacingStore(mongo_db),
        attempts=AttemptLog(mongo_db, timedelta(minutes=15)),
        verifier=build_verifier(after),
        keyring=ring,
        publish=publish,
    )
    counts = await rotation.reseal_credentials()
    assert counts == {"checked": 1, "resealed": 0, "failed": 0} and published == []
    doc = await mongo_db.mailboxes.find_one({"_id": mailbox_id})
    stored = ring.open_mailbox(
        EncryptedCredential.model_validate(doc["credential"]), CredentialContext.of(doc)
    )
    assert stored == new_password  # not the old password the reseal read
    assert doc["credential"]["key_id"] == "new"
