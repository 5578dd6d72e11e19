"""Quarantine against the real Dovecot, Kafka and FerretDB: a message the worker cannot publish never holds its
folder.

Before: a quarantined message went to ``mail.received.dlq`` whole; one over the producer's 1 MiB
``max_request_size`` failed with MessageSizeTooLargeError, a KafkaError handled as "broker unavailable", so the
same UID was fetched again with backoff for ever and every later message of the folder waited behind it. The
same held for a ``mail.received`` record the broker refused as too large.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from laifaxin_shared.mongo import make_mongo_client
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env, mail

pytestmark = pytest.mark.integration

BIG_UNPARSABLE = b"\r\n".join(
    b"line %06d of a text with no header field at all, so not a message" % i for i in range(18_000)
)  # about 1.2 MB


async def raw_doc(env: Env, raw_ref: str) -> dict[str, Any]:
    client = make_mongo_client(env.servers.mongodb_url)
    try:
        doc = await client[env.db_name]["raw_messages"].find_one({"_id": raw_ref})
    finally:
        await client.close()
    assert doc is not None, raw_ref
    return doc


async def ready(env: Env, mail_account: MailAccount, imap_factory: Any) -> tuple[Any, str, Any]:
    imap = await imap_factory(mail_account)
    worker = await env.start_worker()
    mailbox_id = await env.register(mail_account)
    await env.wait_for(
        lambda: any(s.mailbox_id == mailbox_id and s.state == "ok" for s in env.statuses), what="state ok"
    )
    return imap, mailbox_id, worker


async def test_a_message_over_a_mebibyte_that_cannot_be_parsed_is_quarantined_by_reference_and_sync_goes_on(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    imap, mailbox_id, worker = await ready(sync_env, mail_account, imap_factory)
    await imap.append(BIG_UNPARSABLE)
    await imap.append(mail("after the big one"))
    await sync_env.wait_subjects(mailbox_id, {"after the big one"})
    await sync_env.wait_for(lambda: len(sync_env.dlq) >= 1, what="dead letter")
    [dead] = sync_env.dlq
    headers = {k: v.decode() for k, v in dead.headers}
    size = int(headers["x-dlq-size-bytes"])
    assert size > 1024 * 1024 and headers["x-dlq-truncated"] == "true"
    assert len(dead.value) == 64 * 1024 and BIG_UNPARSABLE.startswith(dead.value)  # a bounded prefix
    assert headers["x-dlq-reason"] == "no_headers" and headers["x-dlq-error-type"] == "QuarantineError"
    assert dead.key == mailbox_id.encode()
    assert headers["x-ref-mailbox_id"] == mailbox_id and headers["x-ref-folder"] == "INBOX"
    # Nothing lost: the whole message is in sync's store, where the dead letter says.
    stored = await raw_doc(sync_env, headers["x-dlq-raw-ref"])
    assert stored["size_bytes"] == size == int(headers["x-dlq-raw-stored-bytes"]) and not stored["truncated"]
    assert hashlib.sha256(stored["data"]).hexdigest() == headers["x-dlq-content-sha256"]
    assert stored["_id"] == f"sync:raw_messages/{headers['x-ref-index_key']}"
    docs = await sync_env.wait_committed(2, mailbox_id)
    assert [d["reason"] for d in sorted(docs, key=lambda d: d["uid"])] == ["no_headers", None]
    assert headers["x-ref-uid"] == str(min(d["uid"] for d in docs))
    # The mailbox keeps syncing.
    await imap.append(mail("and the next one"))
    await sync_env.wait_subjects(mailbox_id, {"and the next one"})
    assert sorted(sync_env.subjects(mailbox_id)) == ["after the big one", "and the next one"]
    assert worker.metrics.quarantined.labels("no_headers")._value.get() == 1


async def test_a_message_larger_than_one_store_document_is_kept_whole_in_chunks(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    """SYNC_RAW_MAX_BYTES is the size of one raw_messages document (MongoDB caps a document at 16 MiB); a larger
    message is kept whole in continuation chunks, so a dead letter's reference names all of it."""
    imap = await imap_factory(mail_account)
    worker = await sync_env.start_worker(SYNC_RAW_MAX_BYTES=256 * 1024)
    mailbox_id = await sync_env.register(mail_account)
    await sync_env.wait_for(
        lambda: any(s.mailbox_id == mailbox_id and s.state == "ok" for s in sync_env.statuses),
        what="state ok",
    )
    await imap.append(BIG_UNPARSABLE)
    await sync_env.wait_for(lambda: len(sync_env.dlq) >= 1, what="dead letter")
    headers = {k: v.decode() for k, v in sync_env.dlq[0].headers}
    head = await raw_doc(sync_env, headers["x-dlq-raw-ref"])
    assert head["chunks"] == 5 and not head["truncated"] and len(head["data"]) == 256 * 1024
    client = make_mongo_client(sync_env.servers.mongodb_url)
    try:
        rest = [d async for d in client[sync_env.db_name]["raw_messages"].find({"part_of": head["_id"]})]
    finally:
        await client.close()
    whole = head["data"] + b"".join(d["data"] for d in sorted(rest, key=lambda d: d["n"]))
    assert hashlib.sha256(whole).hexdigest() == headers["x-dlq-content-sha256"]
    assert int(headers["x-dlq-raw-stored-bytes"]) == len(whole) == int(headers["x-dlq-size-bytes"])
    assert worker.metrics.quarantined.labels("no_headers")._value.get() == 1


async def test_a_mail_received_record_the_broker_refuses_as_too_large_is_that_messages_quarantine(
    sync_env: Env, mail_account: MailAccount, imap_factory: Any
) -> None:
    # The topic accepts at most 20 kB per record batch: a message with 30,000 characters of text makes a
    # mail.received record of about 31 kB, which the broker refuses (MESSAGE_TOO_LARGE).
    admin = AIOKafkaAdminClient(bootstrap_servers=sync_env.servers.kafka_bootstrap_servers)
    await admin.start()
    try:
        topic = sync_env.prefix + "mail.received"
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "20000"})]
        )
    finally:
        await admin.close()
    imap, mailbox_id, worker = await ready(sync_env, mail_account, imap_factory)
    await imap.append(mail("too big an event", body="Please quote 500 pcs. " * 1400))
    await imap.append(mail("a small one after it"))
    await sync_env.wait_subjects(mailbox_id, {"a small one after it"})
    await sync_env.wait_for(lambda: len(sync_env.dlq) >= 1, what="dead letter")
    [dead] = sync_env.dlq
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["x-dlq-reason"] == "event_too_large", headers
    assert "MessageSizeTooLargeError" in headers["x-dlq-error"]
    assert headers["x-dlq-truncated"] == "false" and b"too big an event" in dead.value
    docs = await sync_env.wait_committed(2, mailbox_id)
    big = next(d for d in docs if d["reason"])
    assert big["reason"] == "event_too_large" and big["event_id"] is None
    assert sync_env.subjects(mailbox_id) == ["a small one after it"]
    assert worker.metrics.quarantined.labels("event_too_large")._value.get() == 1
