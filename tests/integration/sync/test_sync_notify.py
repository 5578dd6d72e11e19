"""NOTIFY (RFC 5465) against the real Dovecot, which advertises it: with the other folders' poll 10 minutes away,
mail filed into Junk or a user folder is synced at once, because Dovecot pushes a STATUS for that folder during
IDLE; INBOX works as before. With SYNC_IMAP_NOTIFY=false the same mail waits for the poll."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration


async def idle_with_a_user_folder(
    sync_env: Env, account: MailAccount, imap_factory: Any, **settings: str
) -> tuple[Any, Any, str]:
    """A worker whose other folders are polled every 600 s, IDLE on ``account`` with a user folder
    ``Customers``; returns the worker, a second IMAP session and the mailbox id."""
    imap = await imap_factory(account)
    await imap.command("create", "Customers")
    worker = await sync_env.start_worker(SYNC_POLL_INTERVAL_SECONDS="600", **settings)
    mailbox_id = await sync_env.register(account)
    await sync_env.wait_for(lambda: worker.metrics.idle_connections._value.get() >= 1, what="IDLE")
    return worker, imap, mailbox_id


async def test_mail_filed_into_junk_or_a_user_folder_is_pushed_at_once(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    worker, imap, mailbox_id = await idle_with_a_user_folder(sync_env, mail_account, imap_factory)
    await imap.append(mail("filed into Customers by a rule"), folder="Customers")
    await sync_env.wait_subjects(
        mailbox_id, {"filed into Customers by a rule"}, timeout=20
    )  # the poll: 600 s
    await imap.append(mail("filed into Junk"), folder="Junk")
    await imap.append(mail("straight to INBOX"))
    await sync_env.wait_subjects(mailbox_id, {"filed into Junk", "straight to INBOX"}, timeout=20)
    events = {e.subject: e for e in sync_env.received_for(mailbox_id)}
    assert events["filed into Customers by a rule"].folder_role == "other"
    assert events["filed into Junk"].folder_role == "junk"
    assert worker.metrics.notify_wakeups._value.get() >= 2
    assert {s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id} == {"ok"}


async def test_without_notify_other_folders_wait_for_their_poll(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    worker, imap, mailbox_id = await idle_with_a_user_folder(
        sync_env, mail_account, imap_factory, SYNC_IMAP_NOTIFY="false"
    )
    await imap.append(mail("filed into Junk"), folder="Junk")
    await imap.append(mail("straight to INBOX"))
    await sync_env.wait_subjects(mailbox_id, {"straight to INBOX"}, timeout=20)
    await asyncio.sleep(3)  # Dovecot would have pushed the Junk change within ~0.5 s
    assert sync_env.subjects(mailbox_id) == ["straight to INBOX"]
    assert worker.metrics.notify_wakeups._value.get() == 0
