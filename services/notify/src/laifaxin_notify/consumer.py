"""Kafka wiring: thin handlers that decode and call :class:`~.pipeline.Notifier`.

Subscribers (consumer group ``notify`` for mail.classified; ``notify-lifecycle`` and ``notify-<topic>`` for the
others, one group per subscriber so that joining one never rebalances another; explicit ack policy ``NACK_ON_ERROR``: the offset is committed after the
handler returns; an exception seeks back so the records are redelivered):

- ``mail.classified`` in batches (up to ``batch_max_records``), each record validated; a poison record goes to
  ``mail.classified.dlq`` and the batch goes on; the events of a batch are handled concurrently. Latency: a
  batch is whatever the consumer has fetched (no waiting to fill it); an idle poll waits ``batch_timeout_ms``
  and the broker holds an empty fetch at most ``fetch_max_wait_ms`` (FastStream's 200 ms and Kafka's 500 ms
  defaults put up to ~0.5 s between publish and handling).
- ``mailbox.removed``: drop state for the mailbox (deliveries and mailbox health).
- ``mailbox.verified`` and ``mailbox.sync_status`` (group ``notify-health``): mailbox health alerts
  (:mod:`.health`): owner, address and authorization-code expiry; incidents opened and closed by sync states.
- ``notify.retry.<n>`` and ``notify.deferred``: tasks with ``x-due-at``; the handler waits until due (at most
  ``max_wait_in_handler_s`` per record, re-queueing when still not due, so the consumer keeps polling well
  within ``max.poll.interval.ms``) and then delivers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError

from laifaxin_shared.events import MailboxRemoved, MailboxSyncStatus, MailboxVerified, MailClassified
from laifaxin_shared.kafka import describe_validation_error, publish_dead_letter, subscriber_options
from laifaxin_shared.logging import get_logger
from laifaxin_shared.topics import NOTIFY_RETRY_LEVELS

from .health import MailboxHealth
from .models import DeliveryTask
from .pipeline import DEFERRED_TOPIC, RETRY_TOPIC, Notifier, task_headers
from .settings import NotifySettings

log = get_logger(__name__)


class KafkaQueue:
    """:class:`~.pipeline.TaskQueue` on Kafka: keyed by user id, with ``x-attempt`` / ``x-due-at`` headers."""

    def __init__(self, broker: KafkaBroker, prefix: str) -> None:
        self.broker = broker
        self.prefix = prefix

    async def put(self, topic: str, task: DeliveryTask) -> None:
        await self.broker.publish(
            task.model_dump_json().encode(),
            self.prefix + topic,
            key=task.user_id.encode(),
            headers=task_headers(task),
        )


def register(
    broker: KafkaBroker,
    settings: NotifySettings,
    notifier: Callable[[], Notifier],
    health: Callable[[], MailboxHealth | None] | None = None,
) -> None:
    """Attach notify's subscribers to ``broker``; ``notifier()`` returns the running :class:`Notifier`,
    ``health()`` the running :class:`~.health.MailboxHealth` (None: no mailbox health subscribers)."""
    prefix = settings.topic_prefix
    group = settings.consumer_group

    @broker.subscriber(
        prefix + "mail.classified",
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **subscriber_options(group),
    )
    async def on_classified(msg: KafkaMessage) -> None:
        """Handle a batch of mail.classified records: validate each, dead-letter poison, fan out the rest."""
        records: list[Any] = list(msg.raw_message)  # type: ignore[arg-type]
        events: list[MailClassified] = []
        for record in records:
            try:
                events.append(MailClassified.model_validate_json(record.value or b""))
            except ValidationError as exc:
                await publish_dead_letter(
                    broker,
                    record,
                    error=describe_validation_error(exc),
                    error_type="ValidationError",
                    group_id=group,
                )
        await notifier().handle_batch(events)

    @broker.subscriber(prefix + "mailbox.removed", **subscriber_options(f"{group}-lifecycle"))
    async def on_removed(event: MailboxRemoved) -> None:
        """Drop notify's state for a removed mailbox."""
        cancelled = await notifier().handle_removed(event)
        h = health() if health is not None else None
        if h is not None:
            await h.handle_removed(event)
        log.info("mailbox removed", mailbox_id=event.mailbox_id, cancelled=cancelled)

    if health is not None:
        get_health = health

        @broker.subscriber(prefix + "mailbox.verified", **subscriber_options(f"{group}-health"))
        async def on_verified(event: MailboxVerified) -> None:
            """Owner, address and expiry date of a mailbox (a new expiry date restarts its schedule)."""
            h = get_health()
            if h is not None:
                await h.handle_verified(event)

        @broker.subscriber(prefix + "mailbox.sync_status", **subscriber_options(f"{group}-health-status"))
        async def on_sync_status(event: MailboxSyncStatus) -> None:
            """Open or close a mailbox health incident."""
            h = get_health()
            if h is not None:
                await h.handle_status(event)

    def delay_handler(topic: str) -> Callable[[KafkaMessage], Any]:
        async def on_task(msg: KafkaMessage) -> None:
            record: Any = msg.raw_message
            try:
                task = DeliveryTask.model_validate_json(record.value or b"")
            except ValidationError as exc:
                await publish_dead_letter(
                    broker,
                    record,
                    error=describe_validation_error(exc),
                    error_type="ValidationError",
                    group_id=group,
                )
                return
            n = notifier()
            due = task.due_at or datetime.now(UTC)
            wait = (due - datetime.now(UTC)).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, settings.max_wait_in_handler_s))
                if due > datetime.now(UTC):
                    await n.queue.put(topic, task)  # not due yet: back of the line, offset committed
                    return
            await n.deliver(task)

        return on_task

    for level in range(min(len(settings.retry_delays_s), NOTIFY_RETRY_LEVELS)):
        name = RETRY_TOPIC.format(level=level)
        broker.subscriber(prefix + name, **subscriber_options(f"{group}-{name}"))(delay_handler(name))
    broker.subscriber(prefix + DEFERRED_TOPIC, **subscriber_options(f"{group}-{DEFERRED_TOPIC}"))(
        delay_handler(DEFERRED_TOPIC)
    )
