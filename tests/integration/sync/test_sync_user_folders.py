"""The user's own folders (SYNC_USER_FOLDERS) against the real Dovecot: a folder made after the worker started is
found at the next LIST and polled like Junk; Sent, Drafts and Trash (SPECIAL-USE, deploy/local/dovecot) are not;
a message in two folders is published once; off, only INBOX and Junk are synced."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from imapclient import imap_utf7

from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration

_HEALTHY = {"ok", "syncing"}


async def test_a_new_user_folder_is_found_and_polled_but_sent_drafts_trash_are_not(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    worker = await sync_env.start_worker(SYNC_FOLDER_LIST_SECONDS="2")
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    assert worker.metrics.user_folders._value.get() == 0  # Dovecot's own folders are all special-use
    for folder in ("Sent", "Drafts", "Trash"):
        await imap.append(mail(f"kept in {folder}"), folder=folder)

    await imap.command("create", "Customers")  # after the worker's first LIST: found by the next one
    await sync_env.wait_for(lambda: worker.metrics.user_folders._value.get() == 1, timeout=15, what="LIST")
    await imap.append(mail("filed by a rule"), folder="Customers")
    same = mail("copy in two folders", message_id="<same-user-folder@example.com>")
    await imap.append(same, folder="Customers")
    await imap.append(same, folder="INBOX")
    await sync_env.wait_subjects(mailbox_id, {"filed by a rule", "copy in two folders"}, timeout=15)

    # Renamed (gone under its old name): dropped, LISTed again, and its new name is polled (modified UTF-7).
    inquiries = imap_utf7.encode("询盘").decode("ascii")
    await imap.command("rename", "Customers", inquiries)
    await imap.append(mail("filed after the rename"), folder=inquiries)
    await sync_env.wait_subjects(mailbox_id, {"filed after the rename"}, timeout=15)
    await asyncio.sleep(5)  # two more polls of every folder

    events = {e.subject: e for e in sync_env.received_for(mailbox_id)}
    assert sorted(sync_env.subjects(mailbox_id)) == [
        "copy in two folders",
        "filed after the rename",
        "filed by a rule",
    ]
    filed = events["filed by a rule"]
    assert filed.folder_role == "other" and filed.ref.folder == "Customers" and not filed.initial_sync
    renamed = events["filed after the rename"]
    assert renamed.folder_role == "other" and renamed.ref.folder == "询盘"
    docs = await sync_env.wait_committed(3, mailbox_id)
    assert sum(1 for d in docs if d["dedupe_key"].endswith("same-user-folder@example.com")) == 1
    assert {s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id} <= _HEALTHY
    # the renamed folder is a new one: baselined with the initial window, so its mail may count as initial
    published = worker.metrics.published
    assert sum(published.labels("other", initial)._value.get() for initial in ("true", "false")) >= 2


async def test_user_folders_off_syncs_inbox_and_junk_only(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    await imap.command("create", "Customers")
    await imap.append(mail("history in a user folder"), folder="Customers")
    worker = await sync_env.start_worker(SYNC_USER_FOLDERS="false", SYNC_FOLDER_LIST_SECONDS="1")
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(lambda: any(s.mailbox_id == mailbox_id for s in sync_env.statuses), what="status")
    await imap.append(mail("new in a user folder"), folder="Customers")
    await imap.append(mail("new in junk"), folder="Junk")
    await sync_env.wait_subjects(mailbox_id, {"new in junk"}, timeout=15)
    await asyncio.sleep(4)  # two more polls
    assert sync_env.subjects(mailbox_id) == ["new in junk"]
    assert worker.metrics.user_folders._value.get() == 0
