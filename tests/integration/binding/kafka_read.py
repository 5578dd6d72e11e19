"""Reading a test's Kafka topics from the beginning (for assertions on what binding published)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer


async def read_topic(
    bootstrap: str,
    topic: str | list[str],
    *,
    expect: int | None = None,
    wait: float = 10.0,
    key: bytes | None = None,
) -> list[Any]:
    """Records of ``topic`` (or several) from offset 0: stops once ``expect`` records arrived, or after ``wait`` seconds
    (``expect=None`` reads for a short quiet period and returns everything seen); with ``key``, only
    records with that key count."""
    topics = [topic] if isinstance(topic, str) else topic
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (wait if expect is not None else min(wait, 3.0))
    try:
        while loop.time() < deadline and (expect is None or len(records) < expect):
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                records.extend(r for r in recs if key is None or r.key == key)
    finally:
        await consumer.stop()
    return records
