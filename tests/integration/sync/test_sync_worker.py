"""One sync worker in-process against the real Dovecot, Kafka and FerretDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from laifaxin_sync.supervisor import partition_for
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration


async def test_new_mail_under_idle_is_published_once(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    worker = await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(
        lambda: any(s.mailbox_id == mailbox_id and s.state == "ok" for s in sync_env.statuses),
        what="state ok",
    )
    await sync_env.wait_for(lambda: worker.metrics.idle_connections._value.get() >= 1, what="IDLE")
    await imap.append(mail("first new mail"))
    await sync_env.wait_subjects(mailbox_id, {"first new mail"}, timeout=10)
    await imap.append(mail("second new mail"))
    await sync_env.wait_subjects(mailbox_id, {"second new mail"}, timeout=10)
    await asyncio.sleep(1.0)
    events = sync_env.received_for(mailbox_id)
    assert sorted(e.subject for e in events) == ["first new mail", "second new mail"]
    assert all(not e.initial_sync and e.folder_role == "inbox" and e.ref.folder == "INBOX" for e in events)
    assert all(e.raw_ref.startswith("sync:raw_messages/") for e in events)
    docs = await sync_env.wait_committed(2, mailbox_id)
    assert len(docs) == 2
    mailbox = await sync_env.workers[0].store.get_mailbox(mailbox_id)
    # The shard is the partition Kafka's producer chose for the key: murmur2 as in the Java client.
    assert (
        mailbox is not None
        and mailbox["partition"] == partition_for(mailbox_id) == sync_env.partitions[mailbox_id]
    )
    assert [s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id] == ["ok"]


async def test_baseline_publishes_the_window_as_initial_and_skips_older_mail(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    now = datetime.now(UTC)
    await imap.append(mail("history 2020"), date=now - timedelta(days=400))
    await imap.append(mail("history last week"), date=now - timedelta(days=7))
    await imap.append(mail("history 40 days"), date=now - timedelta(days=40))
    await imap.append(mail("history yesterday"), date=now - timedelta(days=1))
    await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account, window_days=30)
    await sync_env.wait_subjects(mailbox_id, {"history last week", "history yesterday"})
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    await imap.append(mail("after baseline"))
    await sync_env.wait_subjects(mailbox_id, {"after baseline"})
    await asyncio.sleep(0.5)
    by_subject = {e.subject: e for e in sync_env.received_for(mailbox_id)}
    assert set(by_subject) == {"history last week", "history yesterday", "after baseline"}
    assert by_subject["history last week"].initial_sync and by_subject["history yesterday"].initial_sync
    assert not by_subject["after baseline"].initial_sync
    assert len(sync_env.received_for(mailbox_id)) == 3


async def test_window_zero_publishes_no_history(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    await imap.append(mail("old but today"))
    await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account, window_days=0)
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    await imap.append(mail("fresh"))
    await sync_env.wait_subjects(mailbox_id, {"fresh"})
    await asyncio.sleep(0.5)
    assert sync_env.subjects(mailbox_id) == ["fresh"]


async def test_junk_folder_is_polled_and_duplicates_across_folders_are_indexed_once(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    await imap.append(mail("filtered as spam"), folder="Junk")
    await sync_env.wait_subjects(mailbox_id, {"filtered as spam"}, timeout=15)
    [junk] = sync_env.received_for(mailbox_id)
    assert junk.folder_role == "junk" and junk.ref.folder == "Junk" and not junk.initial_sync
    same = mail("copy in two folders", message_id="<same-message@example.com>")
    await imap.append(same, folder="Junk")
    await imap.append(same, folder="INBOX")
    await sync_env.wait_subjects(mailbox_id, {"copy in two folders"}, timeout=15)
    await asyncio.sleep(5)  # two more Junk polls
    assert sync_env.subjects(mailbox_id).count("copy in two folders") == 1
    docs = await sync_env.index_docs(mailbox_id)
    assert sum(1 for d in docs if d["dedupe_key"].endswith("same-message@example.com")) == 1


async def test_uidvalidity_change_rebaselines_quietly_and_reports_once(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    await imap.append(mail("junk before reset"), folder="Junk")
    await sync_env.wait_subjects(mailbox_id, {"junk before reset"}, timeout=15)
    # Replace the folder: the new one has another UIDVALIDITY, and old mail comes back in it with new UIDs. It
    # is filled under another name and renamed, so no poll of the worker sees it half restored.
    await imap.command("create", "JunkRestore")
    await imap.append(mail("restored old mail 1"), folder="JunkRestore")
    await imap.append(mail("restored old mail 2"), folder="JunkRestore")
    await imap.command("delete", "Junk")
    await imap.command("rename", "JunkRestore", "Junk")
    await sync_env.wait_for(
        lambda: any(s.mailbox_id == mailbox_id and s.state == "uidvalidity_reset" for s in sync_env.statuses),
        timeout=15,
        what="uidvalidity_reset",
    )
    await imap.append(mail("junk after reset"), folder="Junk")
    await sync_env.wait_subjects(mailbox_id, {"junk after reset"}, timeout=15)
    await asyncio.sleep(3)
    assert sorted(sync_env.subjects(mailbox_id)) == ["junk after reset", "junk before reset"]
    resets = [s for s in sync_env.statuses if s.mailbox_id == mailbox_id and s.state == "uidvalidity_reset"]
    assert len(resets) == 1 and resets[0].folder == "Junk"


async def test_unparsable_message_is_quarantined_and_later_mail_flows(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    await imap.append(mail("before the bad one"))
    await imap.append(b"\r\n\r\nthis is not a message, there is no header at all\r\n")
    await imap.append(mail("after the bad one"))
    await sync_env.wait_subjects(mailbox_id, {"before the bad one", "after the bad one"})
    await sync_env.wait_for(lambda: len(sync_env.dlq) >= 1, what="dead letter")
    [dead] = sync_env.dlq
    headers = {k: v.decode() for k, v in dead.headers}
    assert b"no header at all" in dead.value
    assert headers["x-dlq-error-type"] == "QuarantineError" and headers["x-dlq-reason"]
    assert dead.key == mailbox_id.encode()
    docs = await sync_env.wait_committed(3, mailbox_id)  # two messages and the quarantined one
    quarantined = [d for d in docs if d.get("reason")]
    assert len(docs) == 3 and len(quarantined) == 1
    assert len(sync_env.received_for(mailbox_id)) == 2


async def test_wrong_password_reports_auth_failed_once_without_a_retry_loop(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    worker = await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account, password="not-the-password")
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    await asyncio.sleep(3)
    statuses = [s for s in sync_env.statuses if s.mailbox_id == mailbox_id]
    assert [s.state for s in statuses] == ["auth_failed"]
    assert statuses[0].error_code == "auth_failed" and statuses[0].fix and statuses[0].fix_zh
    assert statuses[0].retry_at is not None and statuses[0].retry_at > datetime.now(UTC) + timedelta(hours=1)
    assert "not-the-password" not in statuses[0].model_dump_json()
    assert worker.metrics.errors.labels("auth_failed")._value.get() == 1
    # New credentials on mailbox.verified restart the mailbox at once.
    imap = await imap_factory(mail_account)
    await sync_env.register(mail_account, mailbox_id=mailbox_id)
    await sync_env.wait_for(
        lambda: any(s.mailbox_id == mailbox_id and s.state == "ok" for s in sync_env.statuses), what="ok"
    )
    await imap.append(mail("after new password"))
    await sync_env.wait_subjects(mailbox_id, {"after new password"})


async def test_starttls_and_polling_without_idle(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    worker = await sync_env.start_worker(SYNC_IDLE_ENABLED="false")
    mailbox_id = await sync_env.register(mail_account, security="starttls")
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    await imap.append(mail("polled"))
    await sync_env.wait_subjects(mailbox_id, {"polled"}, timeout=10)
    assert worker.metrics.idle_connections._value.get() == 0


async def test_removed_mailbox_stops_and_its_state_is_dropped(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    from laifaxin_shared.events import MailboxRemoved
    from laifaxin_shared.kafka import serialize

    worker = await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: mailbox_id in worker.supervisor.loops, what="loop")
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    removed = MailboxRemoved(tenant_id="tenant-test", mailbox_id=mailbox_id)
    record = await sync_env.send_raw("mailbox.removed", serialize(removed), mailbox_id.encode())
    await sync_env.wait_applied(worker, record)  # the loop stopped and the store dropped the mailbox
    assert mailbox_id not in worker.supervisor.loops
    await sync_env.wait_for(lambda: worker.metrics.connections._value.get() == 0, what="closed")
    assert await worker.store.get_mailbox(mailbox_id) is None
    # A poison registry record goes to the registry topic's DLQ and does not stop the consumer.
    await sync_env.send_raw("mailbox.verified", b'{"not": "an event"}', b"mbx_poison")
    other = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: other in worker.supervisor.loops, what="consumer still running")


async def test_registry_is_last_writer_wins_by_event_time(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    """mailbox.verified and mailbox.removed are different topics, read in no guaranteed order: a removal older
    than the stored binding is ignored, and so is a verification older than the mailbox's removal."""
    from datetime import timedelta

    from laifaxin_shared.events import MailboxRemoved
    from laifaxin_shared.events.base import utc_now
    from laifaxin_shared.kafka import serialize

    worker = await sync_env.start_worker()

    async def send_and_wait(topic: str, event: Any, mailbox_id: str) -> None:
        await sync_env.wait_applied(
            worker, await sync_env.send_raw(topic, serialize(event), mailbox_id.encode())
        )

    kept = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: kept in worker.supervisor.loops, what="loop")
    stale = MailboxRemoved(
        tenant_id="tenant-test", mailbox_id=kept, occurred_at=utc_now() - timedelta(minutes=1)
    )
    await send_and_wait("mailbox.removed", stale, kept)
    assert kept in worker.supervisor.loops
    assert await worker.store.get_mailbox(kept) is not None

    gone = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: gone in worker.supervisor.loops, what="loop")
    removal = MailboxRemoved(tenant_id="tenant-test", mailbox_id=gone)
    await send_and_wait("mailbox.removed", removal, gone)
    assert gone not in worker.supervisor.loops
    await sync_env.register(
        mail_account, mailbox_id=gone, occurred_at=removal.occurred_at - timedelta(seconds=5)
    )
    await sync_env.wait_applied(worker, sync_env.verified_records[gone])
    assert gone not in worker.supervisor.loops
    assert await worker.store.get_mailbox(gone) is None


async def test_disabling_and_enabling_through_mailbox_updated(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    from laifaxin_shared.events import MailboxUpdated
    from laifaxin_shared.events.mailbox import SyncSettings
    from laifaxin_shared.kafka import serialize

    worker = await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="ok")

    async def update(enabled: bool) -> None:
        event = MailboxUpdated(
            tenant_id="tenant-test",
            mailbox_id=mailbox_id,
            sync=SyncSettings(enabled=enabled, interval_seconds=600),
        )
        await sync_env.send_raw("mailbox.updated", serialize(event), mailbox_id.encode())

    await update(False)
    await sync_env.wait_for(lambda: mailbox_id not in worker.supervisor.loops, what="stopped loop")
    await sync_env.wait_for(
        lambda: [s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id] == ["ok", "stopped"],
        what="stopped status",
    )
    imap = await imap_factory(mail_account)
    await imap.append(mail("while disabled"))
    await update(True)
    await sync_env.wait_subjects(mailbox_id, {"while disabled"})  # the cursor kept its place: nothing is lost
    stored = await worker.store.get_mailbox(mailbox_id)
    assert stored is not None and stored["sync"]["interval_seconds"] == 600
