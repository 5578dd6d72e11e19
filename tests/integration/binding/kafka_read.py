"""Reading a test's Kafka topics from the beginning (for assertions on what binding published)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_topic(
    bootstrap: str,
    topic: str | list[str],
    *,
    expect: int | None = None,
    wait: float = 10.0,
    key: bytes | None = None,
) -> list[Any]:
    """Records of ``topic`` (or several) from offset 0, with ``key`` only those with that key.

    With ``expect``, stops once that many records arrived (or after ``wait`` seconds); with ``expect=None``,
    reads every record published before the call (up to the end offsets taken at the start; ``wait`` bounds
    it) — what was already published is always read in full, however slow the first fetch is."""
    topics = [topic] if isinstance(topic, str) else topic
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    try:
        if not all(consumer.partitions_for_topic(t) for t in topics):
            await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        assert {tp.topic for tp in tps} == set(topics), f"topics not created: {topics}"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while loop.time() < deadline:
            if expect is not None and len(records) >= expect:
                break
            if expect is None and all([await consumer.position(tp) >= end[tp] for tp in tps]):
                break
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                records.extend(r for r in recs if key is None or r.key == key)
    finally:
        await consumer.stop()
    return records
