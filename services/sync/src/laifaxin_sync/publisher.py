"""Everything the sync worker sends to Kafka: ``mail.received``, its dead letters, ``mailbox.sync_status``.

Publishes go through the shared broker (acks=all, idempotent producer) and return only once acknowledged, so a
caller may advance a cursor after ``await``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from faststream.kafka import KafkaBroker

from laifaxin_shared.events import MailboxSyncStatus
from laifaxin_shared.kafka import publish_event
from laifaxin_shared.logging import redact_text
from laifaxin_shared.topics import DLQ_SUFFIX
from laifaxin_sync.prepare import Prepared


class Publisher:
    """Publishing for one worker (``prefix`` is the deployment's topic prefix)."""

    def __init__(self, broker: KafkaBroker, prefix: str = "") -> None:
        self.broker = broker
        self.prefix = prefix

    async def received(self, mailbox_id: str, records: Sequence[Prepared]) -> None:
        """Publish serialised ``mail.received`` records of one mailbox (keyed by its id, so they share a
        partition and keep their order) all at once, and return when every one is acknowledged (acks=all):
        the producer packs them into few record batches (``SYNC_KAFKA_MAX_BATCH_BYTES``).

        Raises:
            aiokafka.errors.KafkaError: a record was not acknowledged.
        """
        topic = self.prefix + "mail.received"
        key = mailbox_id.encode()
        # Enqueue every record first (no_confirm returns the delivery future), then wait for all the acks.
        acks: list[asyncio.Future[Any]] = []
        try:
            for r in records:
                if r.value is not None:
                    acks.append(
                        await self.broker.publish(r.value, topic, key=key, headers=r.headers, no_confirm=True)
                    )
        except Exception:
            await asyncio.gather(*acks, return_exceptions=True)  # retrieve what was enqueued, then fail
            raise
        await asyncio.gather(*acks)

    async def quarantine(
        self, raw: bytes, *, mailbox_id: str, reason: str, detail: str, ref: dict[str, Any]
    ) -> None:
        """Send unparsable raw bytes to ``mail.received.dlq`` with ``x-dlq-*`` headers naming the reason.

        Raises:
            aiokafka.errors.KafkaError: the record was not acknowledged.
        """
        headers = {
            "x-dlq-error": redact_text(f"{reason}: {detail}")[:2000],
            "x-dlq-error-type": "QuarantineError",
            "x-dlq-topic": self.prefix + "mail.received",
            "x-dlq-reason": reason,
            **{f"x-ref-{k}": str(v) for k, v in ref.items()},
        }
        await self.broker.publish(
            raw, self.prefix + "mail.received" + DLQ_SUFFIX, key=mailbox_id.encode(), headers=headers
        )

    async def status(self, event: MailboxSyncStatus) -> None:
        """Publish one ``mailbox.sync_status`` transition."""
        await publish_event(self.broker, event, prefix=self.prefix)
