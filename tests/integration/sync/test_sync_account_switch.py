"""Switching a mailbox to another account through Edit (binding keeps the mailbox id): the new account gets a
fresh baseline with its initial window and none of the old account's cursors or index; a new password keeps
everything. Against the real Dovecot (two users), Kafka and FerretDB; the store's part also under fencing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.events import MailboxVerified
from laifaxin_shared.events.base import ServerEndpoint
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from laifaxin_sync.store import Cursor, IndexEntry, LeaseLost, SyncStore
from tests.conftest import MailAccount, wait_until_login_works
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration


async def test_switching_the_account_resyncs_the_new_one_and_a_new_password_keeps_the_cursor(
    sync_env: Env,
    mail_account: MailAccount,
    new_mail_account: Any,
    infra_module: Any,
    imap_factory: Any,
) -> None:
    account_a, account_b = mail_account, new_mail_account()
    imap_a, imap_b = await imap_factory(account_a), await imap_factory(account_b)
    worker = await sync_env.start_worker()
    mailbox_id = await sync_env.register(account_a)
    await sync_env.wait_for(lambda: worker.metrics.idle_connections._value.get() >= 1, what="IDLE")
    shared_id = "<sent-to-both@example.com>"
    await imap_a.append(mail("to A", message_id=shared_id))
    await sync_env.wait_subjects(mailbox_id, {"to A"})
    await sync_env.wait_committed(1, mailbox_id)

    now = datetime.now(UTC)
    await imap_b.append(mail("B last week"), date=now - timedelta(days=7))
    await imap_b.append(mail("B 60 days ago"), date=now - timedelta(days=60))
    await imap_b.append(mail("B copy of A's mail", message_id=shared_id), date=now - timedelta(days=1))

    # Edit -> "Verify and Save" with B's address: same mailbox id, another account.
    await sync_env.register(account_b, mailbox_id=mailbox_id)
    await sync_env.wait_subjects(mailbox_id, {"B last week", "B copy of A's mail"})
    docs = await sync_env.wait_committed(2, mailbox_id)
    assert len(docs) == 2  # A's entry went with A's cursor; B's two are indexed
    by_subject = {e.subject: e for e in sync_env.received_for(mailbox_id)}
    assert by_subject["B last week"].initial_sync and by_subject["B copy of A's mail"].initial_sync
    assert "B 60 days ago" not in by_subject  # outside the 30-day window
    await imap_b.append(mail("B new"))
    await sync_env.wait_subjects(mailbox_id, {"B new"})
    assert not {e.subject: e for e in sync_env.received_for(mailbox_id)}["B new"].initial_sync

    def states() -> list[str]:
        return [s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id]

    await sync_env.wait_for(lambda: states().count("ok") == 2, what="ok of the new account")
    assert states() == ["ok", "ok"]  # no uidvalidity_reset
    stored = await worker.store.get_mailbox(mailbox_id)
    assert stored is not None and "account_reset" not in stored

    # B changes its password; the user saves it: same account, so the cursor and the index stay.
    await sync_env.wait_committed(3, mailbox_id)
    before = await sync_env.cursor(mailbox_id)
    new_password = "pw-changed-" + account_b.password[3:]
    infra_module.add_user(account_b.email, new_password, Path(account_b.servers.mail["passwd_file"]))
    account_b.password = new_password
    await asyncio.to_thread(wait_until_login_works, account_b)
    await sync_env.register(account_b, mailbox_id=mailbox_id)
    await sync_env.wait_applied(worker, sync_env.verified_records[mailbox_id])
    await sync_env.wait_for(lambda: states().count("ok") == 3, what="ok after the new password")
    await imap_b.append(mail("B after the new password"))
    await sync_env.wait_subjects(mailbox_id, {"B after the new password"})
    await asyncio.sleep(1.0)
    subjects = sync_env.subjects(mailbox_id)
    assert sorted(subjects) == sorted(
        ["to A", "B last week", "B copy of A's mail", "B new", "B after the new password"]
    )  # nothing republished
    assert states() == ["ok", "ok", "ok"]
    after = await sync_env.cursor(mailbox_id)
    assert after["uidvalidity"] == before["uidvalidity"]
    assert after["baseline_uidnext"] == before["baseline_uidnext"] and after["last_uid"] > before["last_uid"]
    assert len(await sync_env.wait_committed(4, mailbox_id)) == 4


def verified(mailbox_id: str, email: str, *, host: str = "imap.example.com") -> MailboxVerified:
    keyring = KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0")
    return MailboxVerified(
        tenant_id="t1",
        mailbox_id=mailbox_id,
        user_id="u1",
        email=email,
        provider_id="custom",
        username=email,
        imap=ServerEndpoint(host=host, port=993, security="ssl"),
        smtp=ServerEndpoint(host="smtp.example.com", port=465, security="ssl"),
        credential=keyring.seal("pw", tenant_id="t1", mailbox_id=mailbox_id),
    )


async def test_the_account_reset_is_pending_until_done_and_fenced_by_the_lease(mongo_db: Any) -> None:
    store = SyncStore(mongo_db)
    await store.ensure_indexes()
    await store.heartbeat("w1", 60)
    [doc] = await store.upsert_mailboxes([(verified("m1", "a@example.com"), 0)])
    assert "account_reset" not in doc
    lease1 = await store.claim_lease("m1", "w1")
    assert lease1 is not None
    cursor = Cursor(
        "m1", "INBOX", uidvalidity=7, uidnext=11, last_uid=10, baseline_uidnext=5, window_start=None
    )
    await store.save_cursor(cursor, lease1, create=True)
    await store.index_many([IndexEntry("m1:INBOX:7:10", "m1", "INBOX", 7, 10, "m1:mid:<x@y>", event_id="e")])
    await store.store_raw([{"_id": "sync:raw_messages/m1:INBOX:7:10", "mailbox_id": "m1", "data": b"x"}])

    # A new password (a re-sealed credential) or a re-verify: nothing to reset.
    [doc] = await store.upsert_mailboxes([(verified("m1", "A@example.com"), 0)])
    assert "account_reset" not in doc and await store.reset_account(lease1) is None
    # Another address: the reset is pending, stored in the same write; a later re-verify keeps it pending.
    switch = verified("m1", "b@example.com")
    [doc] = await store.upsert_mailboxes([(switch, 0)])
    assert doc["account_reset"] == str(switch.event_id)
    [doc] = await store.upsert_mailboxes([(verified("m1", "b@example.com"), 0)])
    assert doc["account_reset"] == str(switch.event_id)

    # Another worker took the mailbox over: the old lease can neither reset nor write.
    await store.release_lease(lease1)
    lease2 = await store.claim_lease("m1", "w2")
    assert lease2 is not None and lease2.epoch == lease1.epoch + 1
    with pytest.raises(LeaseLost):
        await store.reset_account(lease1)
    assert await store.reset_account(lease2) == {"cursors": 1, "messages": 1, "raw_messages": 1}
    assert await store.load_cursor("m1", "INBOX") is None and await store.load_cursors(["m1"]) == {}
    assert (await store.get_mailbox("m1") or {}).get("account_reset") is None
    assert await store.reset_account(lease2) is None  # done: a repeat changes nothing
    void = await store.cursors.find_one({"_id": "m1:INBOX"})
    assert void is not None and void["void"] and void["lease_epoch"] == lease2.epoch  # the fence stays

    stale = Cursor(
        "m1", "INBOX", uidvalidity=7, uidnext=12, last_uid=11, baseline_uidnext=5, window_start=None
    )
    with pytest.raises(LeaseLost):  # even a first-cursor insert of the old holder meets the fence
        await store.save_cursor(stale, lease1, create=True)
    fresh = Cursor("m1", "INBOX", uidvalidity=3, uidnext=4, last_uid=0, baseline_uidnext=4, window_start=None)
    await store.save_cursor(fresh, lease2, create=True)
    loaded = await store.load_cursor("m1", "INBOX")
    assert loaded is not None and loaded.uidvalidity == 3 and loaded.last_uid == 0
    # Another IMAP server is another account too.
    [doc] = await store.upsert_mailboxes([(verified("m1", "b@example.com", host="imap2.example.com"), 0)])
    assert doc.get("account_reset")
