"""Everything the sync worker sends to Kafka: ``mail.received``, its dead letters, ``mailbox.sync_status``.

Publishes go through the shared broker (acks=all, idempotent producer) and return only once acknowledged, so a
caller may advance a cursor after ``await``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from faststream.kafka import KafkaBroker

from laifaxin_shared.events import MailboxSyncStatus, MailReceived
from laifaxin_shared.kafka import publish_event
from laifaxin_shared.logging import redact_text
from laifaxin_shared.topics import DLQ_SUFFIX


class Publisher:
    """Publishing for one worker (``prefix`` is the deployment's topic prefix)."""

    def __init__(self, broker: KafkaBroker, prefix: str = "") -> None:
        self.broker = broker
        self.prefix = prefix

    async def received(self, events: Sequence[MailReceived]) -> None:
        """Publish ``mail.received`` events concurrently (the producer batches them); raises if any fails.

        Raises:
            aiokafka.errors.KafkaError: a record was not acknowledged.
        """
        await asyncio.gather(*(publish_event(self.broker, e, prefix=self.prefix) for e in events))

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
