"""Every event type through the real Kafka broker, and poison records to the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker

from laifaxin_shared.events import Envelope, MailReceived
from laifaxin_shared.kafka import ensure_topics, make_broker, publish_event, subscriber_options
from laifaxin_shared.settings import ServiceSettings
from laifaxin_shared.topics import event_topics, spec
from tests.support.infra import Servers
from tests.support.kafka import committed_offsets, wait_committed

pytestmark = pytest.mark.integration


def settings_for(servers: Servers, prefix: str) -> ServiceSettings:
    return ServiceSettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap_servers, topic_prefix=prefix, service_name="test"
    )


async def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 20.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < expect:
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def test_every_event_type_round_trips_through_the_broker(
    real_servers: Servers, topic_prefix: str
) -> None:
    settings = settings_for(real_servers, topic_prefix)
    await ensure_topics(settings.kafka_bootstrap_servers, prefix=topic_prefix, replication_factor=1)
    broker = make_broker(settings)
    received: dict[str, list[Envelope]] = {}
    expected: dict[str, list[Envelope]] = {}
    models: dict[str, type[Envelope]] = {}
    for s in event_topics():
        assert s.model is not None
        models[s.name] = s.model
        expected[s.name] = [s.model.model_validate(p) for p in s.examples()]
    total = sum(map(len, expected.values()))
    done = asyncio.Event()

    def make_handler(name: str, model: type[Envelope]) -> Any:
        async def handler(event: Envelope) -> None:
            received.setdefault(name, []).append(event)
            if sum(map(len, received.values())) == total:
                done.set()

        handler.__annotations__ = {"event": model, "return": None}  # the model FastStream validates against
        return handler

    for name, model in models.items():
        broker.subscriber(topic_prefix + name, **subscriber_options(f"roundtrip-{name}"))(
            make_handler(name, model)
        )

    async with broker:
        await broker.start()
        for events in expected.values():
            for event in events:
                meta = await publish_event(broker, event, prefix=topic_prefix)
                assert meta.offset >= 0
        await asyncio.wait_for(done.wait(), 30)

    for name, events in expected.items():
        assert sorted(received[name], key=lambda e: str(e.event_id)) == sorted(
            events, key=lambda e: str(e.event_id)
        )


async def test_keys_route_one_mailbox_to_one_partition(real_servers: Servers, topic_prefix: str) -> None:
    settings = settings_for(real_servers, topic_prefix)
    await ensure_topics(
        settings.kafka_bootstrap_servers, [spec("mail.received")], prefix=topic_prefix, replication_factor=1
    )
    example = MailReceived.model_validate(spec("mail.received").examples()[0])
    broker = make_broker(settings)
    async with broker:
        await broker.start()
        partitions = set()
        for i in range(5):
            ev = example.model_copy(update={"ref": example.ref.model_copy(update={"uid": 100 + i})})
            partitions.add((await publish_event(broker, ev, prefix=topic_prefix)).partition)
    assert len(partitions) == 1


async def test_malformed_payload_goes_to_the_dlq_and_the_consumer_goes_on(
    real_servers: Servers, topic_prefix: str
) -> None:
    settings = settings_for(real_servers, topic_prefix)
    topic = topic_prefix + "mail.received"
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [spec("mail.received"), spec("mail.received.dlq")],
        prefix=topic_prefix,
        replication_factor=1,
    )
    good = MailReceived.model_validate(spec("mail.received").examples()[0])
    seen: list[MailReceived] = []
    got_good = asyncio.Event()
    broker = make_broker(settings)

    @broker.subscriber(topic, **subscriber_options("classifier-test"))
    async def handle(event: MailReceived) -> None:
        seen.append(event)
        got_good.set()

    raw_producer = KafkaBroker(settings.kafka_bootstrap_servers)
    async with broker, raw_producer:
        await broker.start()
        await raw_producer.start()
        await raw_producer.publish(
            b"\xff\xfenot json at all", topic, key=good.ref.mailbox_id.encode(), headers={"x-origin": "test"}
        )
        await raw_producer.publish(
            json.dumps({"tenant_id": "t", "ref": {}}).encode(), topic, key=good.ref.mailbox_id.encode()
        )
        good_record = await publish_event(broker, good, prefix=topic_prefix)
        await asyncio.wait_for(got_good.wait(), 30)
        # the consumer went on past the poison records and committed their offsets (after the handler returned)
        await wait_committed(
            settings.kafka_bootstrap_servers,
            "classifier-test",
            topic,
            good_record.partition,
            good_record.offset,
        )

    assert [e.event_id for e in seen] == [good.event_id]
    dead = await read_all(settings.kafka_bootstrap_servers, topic + ".dlq", expect=2)
    assert next(r.value for r in dead) == b"\xff\xfenot json at all"
    headers = [dict((k, v.decode()) for k, v in r.headers) for r in dead]
    assert headers[0]["x-origin"] == "test"
    assert headers[0]["x-dlq-topic"] == topic and headers[0]["x-dlq-group"] == "classifier-test"
    assert headers[0]["x-dlq-error-type"] == "ValidationError" and headers[0]["x-dlq-error"]
    assert "ref.mailbox_id" in headers[1]["x-dlq-error"]
    assert {h["x-dlq-offset"] for h in headers} == {"0", "1"}

    assert (
        max((await committed_offsets(settings.kafka_bootstrap_servers, "classifier-test", topic)).values())
        == 3
    )


async def test_a_poison_record_too_large_for_the_dlq_topic_is_dead_lettered_by_its_start_and_not_replayed(
    real_servers: Servers, topic_prefix: str
) -> None:
    """Before: the dead letter (the record plus its x-dlq-* headers) was refused as too large, the handler
    failed, and the consumer was handed the same poison record again for ever."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from laifaxin_shared.kafka import DLQ_PREFIX_BYTES, replay_dead_letters

    settings = settings_for(real_servers, topic_prefix)
    topic = topic_prefix + "mail.received"
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [spec("mail.received"), spec("mail.received.dlq")],
        prefix=topic_prefix,
        replication_factor=1,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic + ".dlq", configs={"max.message.bytes": "70000"})]
        )
    finally:
        await admin.close()
    good = MailReceived.model_validate(spec("mail.received").examples()[0])
    got_good = asyncio.Event()
    broker = make_broker(settings)

    @broker.subscriber(topic, **subscriber_options("dlq-size-test"))
    async def handle(event: MailReceived) -> None:
        got_good.set()

    poison = b"{" + b"x" * 69_900  # fits mail.received; with the x-dlq-* headers, not mail.received.dlq
    raw = KafkaBroker(settings.kafka_bootstrap_servers)
    async with broker, raw:
        await broker.start()
        await raw.start()
        await raw.publish(poison, topic, key=b"mbx_1")
        await publish_event(broker, good, prefix=topic_prefix)
        await asyncio.wait_for(got_good.wait(), 30)  # the consumer went on
    # 60 s: late in a full run the broker holds thousands of test topics and a new topic's first records are slow
    [dead] = await read_all(settings.kafka_bootstrap_servers, topic + ".dlq", expect=1, timeout=60.0)
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == poison[:DLQ_PREFIX_BYTES] and headers["x-dlq-truncated"] == "true"
    assert headers["x-dlq-size-bytes"] == str(len(poison)) and headers["x-dlq-offset"] == "0"
    [summary] = await replay_dead_letters(settings.kafka_bootstrap_servers, topic + ".dlq")
    assert summary["skipped"] == "truncated"  # a cut value is never published as if it were the record
    assert len(await read_all(settings.kafka_bootstrap_servers, topic, expect=2)) == 2  # nothing replayed


async def test_dead_letters_can_be_listed_and_replayed(
    real_servers: Servers,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from laifaxin_cli.main import main as cli_main

    settings = settings_for(real_servers, topic_prefix)
    topic = topic_prefix + "mail.received"
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [spec("mail.received"), spec("mail.received.dlq")],
        prefix=topic_prefix,
        replication_factor=1,
    )
    broker = make_broker(settings)

    @broker.subscriber(topic, **subscriber_options("dlq-replay-test"))
    async def handle(event: MailReceived) -> None:  # never called: the record is poison
        raise AssertionError(event)

    raw = KafkaBroker(settings.kafka_bootstrap_servers)
    async with broker, raw:
        await broker.start()
        await raw.start()
        await raw.publish(b'{"schema_version": 1}', topic, key=b"mbx_1", headers={"x-trace": "t1"})
        await read_all(settings.kafka_bootstrap_servers, topic + ".dlq", expect=1)

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("LAIFAXIN_TOPIC_PREFIX", topic_prefix)
    assert await asyncio.to_thread(cli_main, ["dlq", "list", "mail.received"]) == 0
    [listed] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert listed["x-dlq-topic"] == topic and listed["x-dlq-group"] == "dlq-replay-test"
    assert await asyncio.to_thread(cli_main, ["dlq", "replay", "mail.received"]) == 0
    replayed = [r for r in await read_all(settings.kafka_bootstrap_servers, topic, expect=2) if r.offset == 1]
    [record] = replayed
    headers = {k: v.decode() for k, v in record.headers}
    assert record.value == b'{"schema_version": 1}' and record.key == b"mbx_1"
    assert headers["x-trace"] == "t1" and headers["x-dlq-replayed-from"].startswith(topic + ".dlq/")
    assert not any(h.startswith("x-dlq-error") for h in headers)
