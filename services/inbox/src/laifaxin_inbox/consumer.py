"""Kafka wiring: thin batch handlers that validate records and call :class:`~laifaxin_inbox.ingest.Ingest`.

Subscribers (one consumer group per topic, ``inbox-<topic>``, so joining one never rebalances another; offsets
committed after the handler returns, an exception seeks back and the batch is redelivered — the writes are
idempotent):

- ``mail.received``, ``mail.classified``, ``mail.sent``: batches of up to ``INBOX_BATCH_MAX_RECORDS``; a record
  that fails validation goes to ``<topic>.dlq`` with the error and its bytes, and the batch goes on.
- ``mailbox.verified``, ``mailbox.removed``: one at a time (rare).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import BaseModel, ValidationError

from laifaxin_shared.events import MailboxRemoved, MailboxVerified, MailClassified, MailReceived, MailSent
from laifaxin_shared.kafka import describe_validation_error, publish_dead_letter, subscriber_options

from .ingest import Ingest
from .settings import InboxSettings

E = TypeVar("E", bound=BaseModel)
INBOX_TOPICS = ("mail.received", "mail.classified", "mail.sent", "mailbox.verified", "mailbox.removed")


def register(broker: KafkaBroker, settings: InboxSettings, ingest: Callable[[], Ingest]) -> None:
    """Attach the inbox's subscribers to ``broker``; ``ingest()`` returns the running :class:`Ingest`."""
    group = settings.consumer_group

    async def validated(msg: KafkaMessage, model: type[E]) -> list[E]:
        out: list[E] = []
        records: list[Any] = list(msg.raw_message)  # type: ignore[arg-type]
        for record in records:
            try:
                out.append(model.model_validate_json(record.value or b""))
            except ValidationError as exc:
                await publish_dead_letter(
                    broker,
                    record,
                    error=describe_validation_error(exc),
                    error_type="ValidationError",
                    group_id=group,
                )
        return out

    def batch(topic: str) -> dict[str, Any]:
        return {
            "batch": True,
            "max_records": settings.batch_max_records,
            "batch_timeout_ms": settings.batch_timeout_ms,
            "fetch_max_wait_ms": 100,
            **subscriber_options(f"{group}-{topic}"),
        }

    @broker.subscriber(settings.topic("mail.received"), **batch("mail.received"))
    async def on_received(msg: KafkaMessage) -> None:
        await ingest().received(await validated(msg, MailReceived))

    @broker.subscriber(settings.topic("mail.classified"), **batch("mail.classified"))
    async def on_classified(msg: KafkaMessage) -> None:
        await ingest().classified(await validated(msg, MailClassified))

    @broker.subscriber(settings.topic("mail.sent"), **batch("mail.sent"))
    async def on_sent(msg: KafkaMessage) -> None:
        await ingest().sent(await validated(msg, MailSent))

    @broker.subscriber(settings.topic("mailbox.verified"), **subscriber_options(f"{group}-mailbox.verified"))
    async def on_verified(event: MailboxVerified) -> None:
        await ingest().verified(event)

    @broker.subscriber(settings.topic("mailbox.removed"), **subscriber_options(f"{group}-mailbox.removed"))
    async def on_removed(event: MailboxRemoved) -> None:
        await ingest().removed(event)
