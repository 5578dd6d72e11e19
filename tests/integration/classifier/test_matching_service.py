"""Reply matching inside the classifier service, through the real Kafka broker and FerretDB; the alerts it leads
to through notify's pipeline (real FerretDB, loopback WeChat): a system-mailbox reply alerts the campaign owner
and never the system tenant, a late mail.sent still matches once, redelivery adds nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from laifaxin_classifier.matching.cli import DEV_REPLY_TOKEN_KEYS, received_event
from laifaxin_classifier.matching.corpus import (
    SYSTEM_ADDRESS,
    SYSTEM_MAILBOX,
    SYSTEM_TENANT,
    Mailbox,
    bounce_rfc3464,
    reply_gmail,
    reply_qq,
    sent_event,
)
from laifaxin_classifier.matching.pipeline import late_event_id
from laifaxin_classifier.matching.service import SENT_GROUP
from laifaxin_classifier.service import GROUP_ID, ClassifierSettings, create_app
from laifaxin_notify.channels.wechat import WeChatSender
from laifaxin_notify.pipeline import Limits, MemoryQueue, Notifier
from laifaxin_notify.store import Binding, Store
from laifaxin_shared.events import ContactStatus, MailClassified, MailReceived, MailSent
from laifaxin_shared.kafka import ensure_topics, make_broker, publish_event
from laifaxin_shared.replytoken import ReplyTokens
from tests.support.infra import Servers
from tests.support.kafka import committed_offsets
from tests.support.wechat_server import WeChatServer

pytestmark = pytest.mark.integration

TOKENS = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev")
ACME = Mailbox("tenant-acme", "u_acme", "mbx_acme", "sales@acme.example")
SYSTEM = Mailbox(SYSTEM_TENANT, "system", SYSTEM_MAILBOX, SYSTEM_ADDRESS, system=True)
NOW = datetime.now(UTC).replace(microsecond=0)


def sent(box: Mailbox, n: int, rcpt: str, subject: str) -> MailSent:
    mid = f"lfx.{uuid.UUID(int=n).hex[-12:]}.cmd-{n:05d}@mail.laifaxin.test"
    return sent_event(
        mailbox=box,
        owner=(ACME.tenant_id, ACME.user_id),
        rcpt=rcpt,
        subject=subject,
        when=NOW - timedelta(hours=3),
        n=n,
        token=TOKENS.sign(mid) if box.system else None,
    )


def token_to(ev: MailSent) -> str:
    local, _, domain = SYSTEM_ADDRESS.partition("@")
    return f"{local}+{ev.reply_token}@{domain}"


def received(raw: bytes, box: Mailbox, uid: int) -> MailReceived:
    ev = received_event(raw, tenant_id=box.tenant_id, mailbox_id=box.mailbox_id, uid=uid)
    assert ev is not None
    return ev.model_copy(update={"user_id": box.user_id})


async def read_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 60) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[Any] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(out) < expect:
                for recs in (await consumer.getmany(timeout_ms=300)).values():
                    out.extend(recs)
    finally:
        await consumer.stop()
    return out


async def all_committed(bootstrap: str, group: str, topic: str, count: int, timeout_s: float = 60) -> None:
    """Wait until ``group`` committed ``count`` records of ``topic`` over its partitions."""
    async with asyncio.timeout(timeout_s):
        while sum((await committed_offsets(bootstrap, group, topic)).values()) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.2)


async def test_replies_are_matched_routed_and_alert_the_owner_once(
    real_servers: Servers, topic_prefix: str, mongo_db: Any
) -> None:
    boot = real_servers.kafka_bootstrap_servers
    settings = ClassifierSettings(
        kafka_bootstrap_servers=boot,
        mongodb_url=real_servers.mongodb_url,
        mongodb_database=f"test_match_{uuid.uuid4().hex[:8]}",
        topic_prefix=topic_prefix,
        workers=1,
        system_tenant_id=SYSTEM_TENANT,
    )
    await ensure_topics(boot, prefix=topic_prefix, replication_factor=1)
    direct = sent(ACME, 1, "maria@buyer.example", "Quotation for LED panels")
    bounced = sent(ACME, 2, "nobody@buyer.example", "Quotation for LED panels")
    campaign = sent(SYSTEM, 3, "zhangwei@qq.com", "LED 面板报价")
    late = sent(SYSTEM, 4, "anna@import.example.de", "Free samples of our PCB assemblies")
    replies = [
        received(bytes(reply_gmail(direct, "maria@buyer.example", ACME.address, NOW, "g1", True)), ACME, 1),
        received(
            bytes(bounce_rfc3464(bounced, "nobody@buyer.example", ACME.address, NOW, "b1", False)), ACME, 2
        ),
        received(
            bytes(reply_qq(campaign, "zhangwei@qq.com", token_to(campaign), NOW, "q1", False)), SYSTEM, 3
        ),
    ]
    early = received(
        bytes(reply_gmail(late, "anna@import.example.de", token_to(late), NOW, "g2", True)), SYSTEM, 4
    )
    stray = received(
        bytes(
            reply_qq(
                campaign, "x@spam.example", f"campaigns+dev.{'a' * 36}@mail.laifaxin.test", NOW, "s1", False
            )
        ),
        SYSTEM,
        5,
    )
    app = create_app(settings)
    producer = make_broker(settings)
    await app.start()
    try:
        async with producer:
            await producer.start()
            for ev in (direct, bounced, campaign):
                await publish_event(producer, ev, prefix=topic_prefix)
            await all_committed(boot, SENT_GROUP, topic_prefix + "mail.sent", 3)
            for ev in (*replies, early, stray):
                await publish_event(producer, ev, prefix=topic_prefix)
            first = await read_all(boot, topic_prefix + "mail.classified", expect=5)
            await publish_event(producer, late, prefix=topic_prefix)  # after its reply
            classified_records = await read_all(boot, topic_prefix + "mail.classified", expect=6)
            # redelivery: the same mail.sent and mail.received again
            await publish_event(producer, late, prefix=topic_prefix)
            await publish_event(producer, early, prefix=topic_prefix)
            await publish_event(producer, replies[2], prefix=topic_prefix)
            await producer.publish(b"{not json", topic_prefix + "mail.sent", key=b"mbx_acme")  # poison
            await all_committed(boot, SENT_GROUP, topic_prefix + "mail.sent", 6)
            await all_committed(boot, GROUP_ID, topic_prefix + "mail.received", 7)
            await asyncio.sleep(1.0)
            classified_records = await read_all(boot, topic_prefix + "mail.classified", expect=6)
            status_records = await read_all(boot, topic_prefix + "contact.status", expect=4)
            dead = await read_all(boot, topic_prefix + "mail.sent.dlq", expect=1)
    finally:
        await app.stop()
    assert len(first) == 5
    assert dead[0].value == b"{not json" and dict(dead[0].headers)["x-dlq-group"] == SENT_GROUP.encode()
    events = [MailClassified.model_validate_json(r.value) for r in classified_records]
    assert len(events) == 6, [(e.ref.uid, e.match) for e in events]  # nothing more after the redeliveries
    by_uid: dict[int, list[MailClassified]] = {}
    for e in events:
        by_uid.setdefault(e.ref.uid, []).append(e)
    [gmail] = by_uid[1]
    assert (
        gmail.match is not None and gmail.match.method == "in_reply_to" and gmail.tenant_id == ACME.tenant_id
    )
    [bounce] = by_uid[2]
    assert bounce.category == "bounce" and bounce.match is not None and bounce.match.method == "dsn"
    assert bounce.match.sent_message_id == bounced.message_id
    [qq] = by_uid[3]
    assert qq.match is not None and qq.match.method == "reply_token" and qq.system_mailbox
    assert (qq.tenant_id, qq.user_id) == (ACME.tenant_id, ACME.user_id)
    before, after = by_uid[4]  # unmatched first, then re-published with the late match
    assert before.match is None and before.tenant_id == SYSTEM_TENANT and before.system_mailbox
    assert after.match is not None and after.match.sent_message_id == late.message_id
    assert after.tenant_id == ACME.tenant_id and after.event_id == late_event_id(after.ref.natural_key())
    [forged] = by_uid[5]
    assert forged.match is None and forged.tenant_id == SYSTEM_TENANT
    statuses = [ContactStatus.model_validate_json(r.value) for r in status_records]
    assert len(statuses) == 4
    assert {(s.recipient, s.status) for s in statuses} == {
        ("maria@buyer.example", "replied"),
        ("nobody@buyer.example", "bounced_hard"),
        ("zhangwei@qq.com", "replied"),
        ("anna@import.example.de", "replied"),
    }
    assert all(s.tenant_id == ACME.tenant_id for s in statuses)
    assert {r.key for r in status_records} == {f"{ACME.tenant_id}:{s.recipient}".encode() for s in statuses}

    # notify: the owner is alerted for each reply, the system tenant never, each once even when redelivered
    store = Store(mongo_db)
    await store.ensure_indexes()
    async with WeChatServer(apps={"wx-app": "secret"}, templates={"TPL"}) as wechat:
        sender = WeChatSender(
            base_url=wechat.base_url, appid="wx-app", secret="secret", template_id="TPL", quota_delay_s=7200
        )
        try:
            await store.put_binding(Binding(ACME.tenant_id, ACME.user_id, "wechat", "oOWNER", {}))
            await store.put_binding(Binding(SYSTEM_TENANT, "system", "wechat", "oSYSTEM", {}))
            notifier = Notifier(
                store,
                {"wechat": sender},
                MemoryQueue(),
                retry_delays_s=[0.05],
                limits=Limits(digest_threshold_per_minute=50, rate_limit_per_hour=1000, digest_window_s=60),
            )
            await notifier.handle_batch(events)
            await notifier.handle_batch(events)  # a redelivered batch
        finally:
            await sender.aclose()
        alerted = {m.openid for m in wechat.sent}
        assert "oSYSTEM" not in alerted
        owner_alertable = [
            e for e in events if e.tenant_id == ACME.tenant_id and e.category in ("to_reply", "inquiry")
        ]
        assert len(wechat.messages_for("oOWNER")) == len(owner_alertable) >= 3  # gmail, qq, the late one
