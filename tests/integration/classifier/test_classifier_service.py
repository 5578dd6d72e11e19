"""The classifier service against the real Kafka broker and MongoDB-wire server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from laifaxin_classifier.service import ClassifierSettings, create_app
from laifaxin_shared.events import EmailAddress, MailClassified, MailReceived
from laifaxin_shared.kafka import ensure_topics, make_broker, publish_event
from laifaxin_shared.topics import spec
from tests.support.infra import Servers

pytestmark = pytest.mark.integration


def received(uid: int, subject: str, text: str, headers: dict[str, str] | None = None) -> MailReceived:
    base = MailReceived.model_validate(spec("mail.received").examples()[0])
    return base.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "ref": base.ref.model_copy(update={"uid": uid, "message_id": f"m{uid}@example.com"}),
            "subject": subject,
            "text": text,
            "headers": headers or {},
            "from_": EmailAddress(name="Buyer", email="buyer@example.com"),
        }
    )


async def read(bootstrap: str, topic: str, expect: int, timeout_s: float = 30) -> list[Any]:
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


async def test_classifies_each_message_once_and_dead_letters_poison(
    real_servers: Servers, topic_prefix: str
) -> None:
    db_name = f"test_clf_{uuid.uuid4().hex[:8]}"
    settings = ClassifierSettings(
        kafka_bootstrap_servers=real_servers.kafka_bootstrap_servers,
        mongodb_url=real_servers.mongodb_url,
        mongodb_database=db_name,
        topic_prefix=topic_prefix,
        log_json=True,
    )
    await ensure_topics(settings.kafka_bootstrap_servers, prefix=topic_prefix, replication_factor=1)
    events = [
        received(1, "Re: LED panels", "Please send your best price and MOQ for 2000 pcs, FOB Shenzhen."),
        received(
            2,
            "Automatic reply: LED panels",
            "I am out of the office until 1 December.",
            {"auto-submitted": "auto-replied"},
        ),
        received(3, "Re: LED panels", "Please remove me from your mailing list. Not interested."),
    ]
    app = create_app(settings)
    producer = make_broker(settings)
    await app.start()
    try:
        async with producer:
            await producer.start()
            for ev in events:
                await publish_event(producer, ev, prefix=topic_prefix)
            await producer.publish(b"{not json", topic_prefix + "mail.received", key=b"mbx_01JD5X6Q8ZK3")
            # redelivery of the first message, and the same message re-published by sync with a new event id
            await publish_event(producer, events[0], prefix=topic_prefix)
            await publish_event(
                producer, events[0].model_copy(update={"event_id": uuid.uuid4()}), prefix=topic_prefix
            )
            records = await read(settings.kafka_bootstrap_servers, topic_prefix + "mail.classified", expect=3)
            await asyncio.sleep(2.0)  # let the duplicates arrive (and be skipped)
            records = await read(settings.kafka_bootstrap_servers, topic_prefix + "mail.classified", expect=3)
    finally:
        await app.stop()
    classified = [MailClassified.model_validate_json(r.value) for r in records]
    by_uid = {c.ref.uid: c for c in classified}
    assert len(classified) == 3, [c.ref.uid for c in classified]
    assert by_uid[1].category == "inquiry"
    assert by_uid[2].category == "ooo" and by_uid[2].flags.auto_submitted
    assert by_uid[3].category == "rejection"
    for c in classified:
        assert c.event_id == c.ref.derived_event_id("mail.classified")
        assert c.reasons and c.language
    dead = await read(settings.kafka_bootstrap_servers, topic_prefix + "mail.received.dlq", expect=1)
    assert dead[0].value == b"{not json"
    assert dict(dead[0].headers)["x-dlq-group"] == b"classifier"


async def test_message_over_budget_is_published_as_fallback_and_the_rest_flow(
    real_servers: Servers, topic_prefix: str
) -> None:
    """A message that spins its worker (test hook) is abandoned at the CPU budget, its worker replaced, and
    it is published once as to_reply / budget:exceeded; the messages around it are classified normally."""
    db_name = f"test_clf_{uuid.uuid4().hex[:8]}"
    settings = ClassifierSettings(
        kafka_bootstrap_servers=real_servers.kafka_bootstrap_servers,
        mongodb_url=real_servers.mongodb_url,
        mongodb_database=db_name,
        topic_prefix=topic_prefix,
        workers=1,
        message_budget_seconds=1.0,
        test_spin_marker="SPIN-THIS-WORKER",
    )
    await ensure_topics(settings.kafka_bootstrap_servers, prefix=topic_prefix, replication_factor=1)
    before = [received(10 + i, "Re: LED panels", "Please quote 500 pcs, FOB Ningbo.") for i in range(3)]
    slow = received(20, "Re: SPIN-THIS-WORKER", "Please quote 500 pcs.")
    after = [received(30 + i, "Re: LED panels", "Please remove me from your list.") for i in range(3)]
    exceeded = REGISTRY.get_sample_value("classifier_budget_exceeded_total") or 0.0
    app = create_app(settings)
    producer = make_broker(settings)
    await app.start()
    try:
        async with producer:
            await producer.start()
            for ev in [*before, slow, *after]:
                await publish_event(producer, ev, prefix=topic_prefix)
            records = await read(settings.kafka_bootstrap_servers, topic_prefix + "mail.classified", expect=7)
            # a later message is classified by the replacement worker
            later = received(40, "Re: LED panels", "Please send the catalogue and price list.")
            await publish_event(producer, later, prefix=topic_prefix)
            records = await read(settings.kafka_bootstrap_servers, topic_prefix + "mail.classified", expect=8)
            await asyncio.sleep(2.0)  # a redelivery of the slow message would arrive now
            records = await read(settings.kafka_bootstrap_servers, topic_prefix + "mail.classified", expect=8)
    finally:
        await app.stop()
    classified = [MailClassified.model_validate_json(r.value) for r in records]
    assert len(classified) == 8, sorted(c.ref.uid for c in classified)
    by_uid = {c.ref.uid: c for c in classified}
    assert by_uid[20].category == "to_reply" and by_uid[20].reasons == ["budget:exceeded"]
    assert by_uid[20].confidence == 0.0 and by_uid[20].snippet
    assert all(by_uid[uid].category == "inquiry" for uid in (10, 11, 12, 40))
    assert all(by_uid[uid].category == "rejection" for uid in (30, 31, 32))
    assert REGISTRY.get_sample_value("classifier_budget_exceeded_total") == exceeded + 1
