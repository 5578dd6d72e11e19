"""The registry consumer: ``mailbox.verified`` / ``updated`` / ``removed`` into sync's store, and shard changes.

One aiokafka consumer in group ``sync`` with the RangeAssignor, so the co-partitioned ``mailbox.*`` topics give
each worker the same partition numbers of all three (the shard = the partition number). Offsets are committed
explicitly, after the records of a batch were applied (at-least-once; applying a record twice is harmless: the
store keeps the latest config). A record that does not validate goes to ``<topic>.dlq`` and is committed, so one
poison record cannot stop the registry (shared dead-letter rules).

The rebalance listener stops the loops of revoked partitions before the group moves them (eager rebalancing:
every member revokes before any member is assigned), and commits what was applied; assigned partitions start
their stored mailboxes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from laifaxin_shared.events import MailboxRemoved, MailboxUpdated, MailboxVerified
from laifaxin_shared.kafka import client_options, describe_validation_error, publish_dead_letter
from laifaxin_shared.logging import get_logger
from laifaxin_sync.settings import SyncSettings
from laifaxin_sync.supervisor import Supervisor, partition_for

log = get_logger(__name__)

REGISTRY_TOPICS = ("mailbox.verified", "mailbox.updated", "mailbox.removed")


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, registry: RegistryConsumer) -> None:
        self.registry = registry

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.registry.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.registry.assigned(assigned)


class RegistryConsumer:
    """Consumes the registry topics for ``supervisor``; dead letters go out through ``broker``."""

    def __init__(self, settings: SyncSettings, supervisor: Supervisor, broker: KafkaBroker) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.broker = broker
        self.topics = {settings.topic(t): t for t in REGISTRY_TOPICS}
        self.anchor = settings.topic("mailbox.verified")
        self.consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=settings.group_id,
            client_id=f"{settings.service_name}-{settings.worker_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        )
        self._lock = asyncio.Lock()
        self._applied: dict[TopicPartition, int] = {}
        self.last_poll = 0.0

    async def start(self) -> None:
        """Join the group (the first assignment arrives through the listener)."""
        self.consumer.subscribe(topics=list(self.topics), listener=_Listener(self))
        await self.consumer.start()

    async def stop(self) -> None:
        """Leave the group: the listener stops the loops of every partition and commits."""
        await self.consumer.stop()

    def _owned(self, tps: set[TopicPartition]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == self.anchor}

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            await self.supervisor.revoke(self._owned(revoked))
            await self._commit()

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        await self.supervisor.assign(self._owned(assigned))

    async def _commit(self) -> None:
        if not self._applied:
            return
        offsets = dict(self._applied)
        try:
            await self.consumer.commit(offsets)
            self._applied.clear()
        except KafkaError as exc:  # a revoked partition's offset is re-applied by its next owner: harmless
            log.warning("registry commit failed", error=type(exc).__name__)

    async def run(self) -> None:
        """Poll, apply, commit; until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self.consumer.getmany(timeout_ms=1000, max_records=500)
            self.last_poll = loop.time()
            if not batch:
                continue
            async with self._lock:
                verified = {
                    tp: r for tp, r in batch.items() if self.topics.get(tp.topic) == "mailbox.verified"
                }
                others = {r.key for tp, records in batch.items() if tp not in verified for r in records}
                if any(r.key in others for records in verified.values() for r in records):
                    # a mailbox with records on several topics in this poll (removed and verified again,
                    # say): the order between topics matters, so apply one at a time in event time order
                    await self._apply_in_time_order(batch)
                    await self._commit()
                    continue
                if verified:  # every partition's together: one bulk write, one bulk lease claim
                    try:
                        await self.handle_verified([r for records in verified.values() for r in records])
                    except (PyMongoError, KafkaError) as exc:
                        log.warning("registry records not applied; retrying", error=str(exc))
                        for tp, records in verified.items():
                            self.consumer.seek(tp, records[0].offset)
                        await asyncio.sleep(1.0)
                    else:
                        for tp, records in verified.items():
                            self._applied[tp] = records[-1].offset + 1
                for tp, records in batch.items():
                    if tp in verified:
                        continue
                    for record in records:
                        try:
                            await self.handle(record)
                        except (PyMongoError, KafkaError) as exc:
                            log.warning(
                                "registry record not applied; retrying", offset=record.offset, error=str(exc)
                            )
                            self.consumer.seek(tp, record.offset)
                            await asyncio.sleep(1.0)
                            break
                        self._applied[tp] = record.offset + 1
                await self._commit()

    async def _apply_in_time_order(self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        """Apply every record of ``batch`` with :meth:`handle`, across topics in record timestamp order (the
        binding service stamps its records when it publishes them; Kafka orders only within a partition).
        A partition whose record fails is sought back to it and its later records wait for the next poll."""
        ordered = sorted(
            ((tp, r) for tp, records in batch.items() for r in records),
            key=lambda item: (item[1].timestamp, item[1].offset),
        )
        failed: set[TopicPartition] = set()
        for tp, record in ordered:
            if tp in failed:
                continue
            try:
                await self.handle(record)
            except (PyMongoError, KafkaError) as exc:
                log.warning("registry record not applied; retrying", offset=record.offset, error=str(exc))
                self.consumer.seek(tp, record.offset)
                failed.add(tp)
                continue
            self._applied[tp] = record.offset + 1
        if failed:
            await asyncio.sleep(1.0)

    async def handle_verified(self, records: list[ConsumerRecord[Any, Any]]) -> None:
        """Apply a batch of ``mailbox.verified`` records together (:meth:`Supervisor.on_verified_many`: one bulk
        write, leases claimed in bulk); poison records are dead-lettered.

        Raises:
            pymongo.errors.PyMongoError, aiokafka.errors.KafkaError: nothing or part of the batch was applied;
                applying the batch again is harmless.
        """
        events: list[tuple[MailboxVerified, int]] = []
        for record in records:
            try:
                verified = MailboxVerified.model_validate_json(record.value or b"")
            except ValidationError as exc:
                await self._dead_letter(record, exc)
                continue
            partition = partition_for(verified.mailbox_id)
            if partition != record.partition:
                log.warning("record partition differs from murmur2(key)", mailbox_id=verified.mailbox_id)
            events.append((verified, partition))
        if events:
            await self.supervisor.on_verified_many(events)

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], exc: ValidationError) -> None:
        error = describe_validation_error(exc)
        await publish_dead_letter(
            self.broker, record, error=error, error_type="ValidationError", group_id=self.settings.group_id
        )
        log.warning("registry record dead-lettered", topic=record.topic, offset=record.offset, error=error)

    async def handle(self, record: ConsumerRecord[Any, Any]) -> None:
        """Apply one registry record (poison records are dead-lettered)."""
        name = self.topics.get(record.topic)
        value = record.value or b""
        try:
            if name == "mailbox.verified":
                verified = MailboxVerified.model_validate_json(value)
                partition = partition_for(verified.mailbox_id)
                if partition != record.partition:
                    log.warning("record partition differs from murmur2(key)", mailbox_id=verified.mailbox_id)
                await self.supervisor.on_verified(verified, partition)
            elif name == "mailbox.updated":
                updated = MailboxUpdated.model_validate_json(value)
                await self.supervisor.on_updated(updated, partition_for(updated.mailbox_id))
            elif name == "mailbox.removed":
                await self.supervisor.on_removed(MailboxRemoved.model_validate_json(value))
        except ValidationError as exc:
            await self._dead_letter(record, exc)
