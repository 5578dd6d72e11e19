"""Replay dead-lettered delivery tasks: ``python -m laifaxin_notify replay-dlq``.

Reads ``notify.dlq`` with the consumer group ``notify-replay`` (so each record is replayed once; committed
after its re-publish), re-opens the delivery record (status ``retrying``, so the dedupe claim can be taken
again) and publishes the task to ``notify.retry.0`` with ``attempt`` 0 and due now.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from laifaxin_shared.kafka import client_options, make_broker
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mongo import make_mongo_client

from .consumer import KafkaQueue
from .models import DeliveryTask
from .pipeline import DLQ_TOPIC, RETRY_TOPIC
from .settings import NotifySettings
from .store import Store

log = get_logger(__name__)


async def replay_dlq(
    settings: NotifySettings, *, limit: int = 1000, idle_s: float = 3.0, dry_run: bool = False
) -> dict[str, Any]:
    """Replay up to ``limit`` records, stopping after ``idle_s`` seconds without new ones.

    Returns counts: ``replayed``, ``invalid`` (not a task; left for an operator), and the dedupe keys.
    """
    consumer = AIOKafkaConsumer(
        settings.topic(DLQ_TOPIC),
        **client_options(settings),
        group_id=f"{settings.consumer_group}-replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    broker = make_broker(settings, client_id="notify-replay")
    mongo = make_mongo_client(settings.mongodb_url.get_secret_value(), appname="notify-replay")
    store = Store(mongo[settings.mongodb_database])
    queue = KafkaQueue(broker, settings.topic_prefix)
    replayed: list[str] = []
    invalid = 0
    await consumer.start()
    await broker.connect()
    try:
        while len(replayed) + invalid < limit:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=min(100, limit))
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    try:
                        task = DeliveryTask.model_validate_json(record.value or b"")
                    except ValidationError:
                        invalid += 1
                        continue
                    if not dry_run:
                        await store.deliveries.update_one(
                            {"dedupe_key": task.dedupe_key},
                            {"$set": {"status": "retrying", "lease_until": None}},
                        )
                        await queue.put(
                            RETRY_TOPIC.format(level=0),
                            task.model_copy(update={"attempt": 0, "due_at": datetime.now(UTC)}),
                        )
                    replayed.append(task.dedupe_key)
            if not dry_run:
                await consumer.commit()
    finally:
        await consumer.stop()
        await broker.stop()
        await mongo.close()
    log.info("dlq replayed", replayed=len(replayed), invalid=invalid, dry_run=dry_run)
    return {"replayed": len(replayed), "invalid": invalid, "dedupe_keys": replayed}


def run(settings: NotifySettings, **kwargs: Any) -> dict[str, Any]:
    """Blocking wrapper for the CLI."""
    return asyncio.run(replay_dlq(settings, **kwargs))
