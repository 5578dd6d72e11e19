"""One sync worker in-process against the real Dovecot, Kafka and FerretDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from laifaxin_shared.mongo import make_mongo_client
from laifaxin_sync.supervisor import partition_for
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration


async def index_docs(env: Env, mailbox_id: str) -> list[dict[str, Any]]:
    client = make_mongo_client(env.servers.mongodb_url)
    try:
        return [d async for d in client[env.db_name]["messages"].find({"mailbox_id": mailbox_id})]
    finally:
        await client.close()


async def test_new_mail_under_idle_is_published_once(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap = await imap_factory(mail_account)
    worker = await sync_env.start_worker()
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(
        lambda: any(s.mailbox_id == mailbox_id and s.state == "ok" for s in sync_env.statuses), what="state ok"
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
    docs = await index_docs(sync_env, mailbox_id)
    assert len(docs) == 2 and all(d["state"] == "published" for d in docs)
    mailbox = await sync_env.workers[0].store.get_mailbox(mailbox_id)
    assert mailbox is not None and mailbox["partition"] == partition_for(mailbox_id)
    assert [s.state for s in sync_env.statuses if s.mailbox_id == mailbox_id] == ["ok"]
