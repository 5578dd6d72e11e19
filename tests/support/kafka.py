"""Kafka facts tests wait for: what a consumer group committed."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """The offsets ``group_id`` committed on ``topic``, by partition (0 where nothing was committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        return {p: await consumer.committed(TopicPartition(topic, p)) or 0 for p in parts}
    finally:
        await consumer.stop()


async def wait_committed(
    bootstrap: str, group_id: str, topic: str, partition: int, offset: int, timeout: float = 30.0
) -> None:
    """Wait until ``group_id`` committed past ``offset`` on ``topic``/``partition``: the record was handled
    (our consumers commit after the handler returned).

    Raises:
        TimeoutError: not within ``timeout`` seconds.
    """
    async with asyncio.timeout(timeout):
        while (await committed_offsets(bootstrap, group_id, topic)).get(partition, 0) <= offset:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
