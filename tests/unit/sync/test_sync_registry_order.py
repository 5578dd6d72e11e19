"""The registry applies a poll that holds one mailbox's records on several topics in publish order."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from pymongo.errors import AutoReconnect

from laifaxin_sync.registry import RegistryConsumer


def record(topic: str, offset: int, timestamp: int, key: bytes = b"mbx_1") -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic, 0, offset, timestamp, 0, key, b"{}", None, 0, 2, [])


class Consumer:
    def __init__(self) -> None:
        self.sought: list[tuple[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought.append((tp, offset))


def registry(fail: set[tuple[str, int]] | None = None) -> tuple[RegistryConsumer, list[tuple[str, int]]]:
    applied: list[tuple[str, int]] = []
    reg = object.__new__(RegistryConsumer)
    reg.consumer = Consumer()  # type: ignore[assignment]
    reg._applied = {}

    async def handle(r: ConsumerRecord[Any, Any]) -> None:
        if (r.topic, r.offset) in (fail or set()):
            raise AutoReconnect("down")
        applied.append((r.topic, r.offset))

    reg.handle = handle  # type: ignore[method-assign]
    return reg, applied


async def test_records_of_several_topics_are_applied_in_timestamp_order() -> None:
    verified, removed = TopicPartition("mailbox.verified", 0), TopicPartition("mailbox.removed", 0)
    batch = {
        verified: [record("mailbox.verified", 7, 1000), record("mailbox.verified", 8, 3000)],
        removed: [record("mailbox.removed", 2, 2000)],
    }
    reg, applied = registry()
    await reg._apply_in_time_order(batch)
    assert applied == [("mailbox.verified", 7), ("mailbox.removed", 2), ("mailbox.verified", 8)]
    assert reg._applied == {verified: 9, removed: 3}


async def test_a_failed_record_holds_back_the_rest_of_its_partition_only() -> None:
    verified, removed = TopicPartition("mailbox.verified", 0), TopicPartition("mailbox.removed", 0)
    batch = {
        verified: [record("mailbox.verified", 7, 1000), record("mailbox.verified", 8, 3000)],
        removed: [record("mailbox.removed", 2, 2000)],
    }
    reg, applied = registry(fail={("mailbox.verified", 7)})
    await reg._apply_in_time_order(batch)
    assert applied == [("mailbox.removed", 2)]
    assert reg.consumer.sought == [(verified, 7)]  # type: ignore[attr-defined]
    assert reg._applied == {removed: 3}
