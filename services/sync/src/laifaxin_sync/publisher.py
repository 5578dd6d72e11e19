"""Everything the sync worker sends to Kafka: ``mail.received``, its dead letters, ``mailbox.sync_status``.

Publishes go through the shared broker (acks=all, idempotent producer) and return only once acknowledged, so a
caller may advance a cursor after ``await``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from faststream.kafka import KafkaBroker

from laifaxin_shared.events import MailboxSyncStatus
from laifaxin_shared.kafka import publish_event
from laifaxin_shared.logging import redact_text
from laifaxin_shared.topics import DLQ_SUFFIX
from laifaxin_sync.prepare import Prepared

TOO_LARGE: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
"""What a record too large for the producer (``max_request_size``) or the broker (``message.max.bytes``, a
topic's ``max.message.bytes``: error codes 10 and 18) fails with. Not a broker outage: retrying cannot help."""

HEADER_VALUE_CAP = 1000  # characters of one x-ref-* header value (a folder name, say)


@dataclass(frozen=True)
class Refused:
    """A ``mail.received`` record the broker refused as too large: the prepared message and why."""

    prepared: Prepared
    size_bytes: int
    error: str


@dataclass(frozen=True)
class DeadLetterRef:
    """Where a quarantined message is kept, for its dead letter: the raw store's reference (``raw_ref``, the
    ``raw_messages`` document ``_id``), how many bytes the store holds of it (``stored_bytes``; less than the
    message only above ``SYNC_RAW_MAX_BYTES``), and its IMAP location."""

    raw_ref: str
    stored_bytes: int
    folder: str
    uidvalidity: int
    uid: int
    index_key: str


class Publisher:
    """Publishing for one worker (``prefix`` is the deployment's topic prefix; ``dlq_prefix_bytes``: most bytes
    of a quarantined message carried in its dead letter)."""

    def __init__(self, broker: KafkaBroker, prefix: str = "", *, dlq_prefix_bytes: int = 64 * 1024) -> None:
        self.broker = broker
        self.prefix = prefix
        self.dlq_prefix_bytes = dlq_prefix_bytes

    async def received(self, mailbox_id: str, records: Sequence[Prepared]) -> list[Refused]:
        """Publish serialised ``mail.received`` records of one mailbox (keyed by its id, so they share a
        partition and keep their order) all at once, and return when every one is acknowledged (acks=all):
        the producer packs them into few record batches (``SYNC_KAFKA_MAX_BATCH_BYTES``).

        A record too large for the producer or the broker (:data:`TOO_LARGE`; the broker refuses a whole
        record batch when it is over the topic's ``max.message.bytes``) is not an outage: the records of a
        refused batch are sent again one at a time, and those refused alone are returned, for the caller to
        quarantine; everything else is acknowledged.

        Raises:
            aiokafka.errors.KafkaError: a record was not acknowledged for another reason.
        """
        topic = self.prefix + "mail.received"
        key = mailbox_id.encode()
        sent: list[tuple[Prepared, asyncio.Future[Any] | None]] = []
        try:
            # Enqueue every record first (no_confirm returns the delivery future), then wait for all the acks.
            for r in records:
                if r.value is None:
                    continue
                try:
                    ack = await self.broker.publish(
                        r.value, topic, key=key, headers=r.headers, no_confirm=True
                    )
                except TOO_LARGE:  # the producer's own size check (max_request_size), before sending
                    ack = None
                sent.append((r, ack))
        except Exception:
            await asyncio.gather(*(a for _, a in sent if a is not None), return_exceptions=True)
            raise
        results = await asyncio.gather(*(a for _, a in sent if a is not None), return_exceptions=True)
        outcome = iter(results)
        again: list[Prepared] = []
        for r, ack in sent:
            result = next(outcome) if ack is not None else MessageSizeTooLargeError("over max_request_size")
            if isinstance(result, TOO_LARGE):
                again.append(r)
            elif isinstance(result, BaseException):
                raise result
        refused: list[Refused] = []
        for r in again:  # alone now: only a record too large by itself is refused
            assert r.value is not None
            try:
                await self.broker.publish(r.value, topic, key=key, headers=r.headers)
            except TOO_LARGE as exc:
                refused.append(Refused(r, len(r.value), f"{type(exc).__name__}: {exc}"[:300]))
        return refused

    async def quarantine(
        self, raw: bytes, *, mailbox_id: str, reason: str, detail: str, ref: DeadLetterRef
    ) -> None:
        """Send a quarantined message's dead letter to ``mail.received.dlq``: a reference and bounded bytes.

        The value is the first ``dlq_prefix_bytes`` of the message (the whole message when shorter); the
        headers say why (``x-dlq-reason``, ``x-dlq-error``), where the whole message is (``x-dlq-raw-ref``: the
        ``raw_messages`` document in sync's store, ``x-dlq-raw-stored-bytes`` of it; ``x-ref-*``: mailbox,
        folder, UIDVALIDITY, UID, index key, RFC 3501 2.3.1.1), what it is (``x-dlq-size-bytes``,
        ``x-dlq-content-sha256``) and whether the value was cut (``x-dlq-truncated``). So no dead letter is too
        large for the broker; should the topic still refuse one as too large, it is sent with the reference
        and no bytes.

        Raises:
            aiokafka.errors.KafkaError: the record was not acknowledged.
        """
        value = raw[: self.dlq_prefix_bytes]
        refs = {
            "mailbox_id": mailbox_id,
            "folder": ref.folder,
            "uidvalidity": ref.uidvalidity,
            "uid": ref.uid,
            "index_key": ref.index_key,
        }
        headers = {
            "x-dlq-error": redact_text(f"{reason}: {detail}")[:2000],
            "x-dlq-error-type": "QuarantineError",
            "x-dlq-topic": self.prefix + "mail.received",
            "x-dlq-reason": reason,
            "x-dlq-raw-ref": ref.raw_ref[:HEADER_VALUE_CAP],
            "x-dlq-raw-stored-bytes": str(ref.stored_bytes),
            "x-dlq-size-bytes": str(len(raw)),
            "x-dlq-content-sha256": hashlib.sha256(raw).hexdigest(),
            "x-dlq-truncated": "true" if len(value) < len(raw) else "false",
            **{f"x-ref-{k}": str(v)[:HEADER_VALUE_CAP] for k, v in refs.items()},
        }
        topic = self.prefix + "mail.received" + DLQ_SUFFIX
        try:
            await self.broker.publish(value, topic, key=mailbox_id.encode(), headers=headers)
        except TOO_LARGE:
            headers["x-dlq-truncated"] = "true" if raw else "false"
            await self.broker.publish(b"", topic, key=mailbox_id.encode(), headers=headers)

    async def status(self, event: MailboxSyncStatus) -> None:
        """Publish one ``mailbox.sync_status`` transition."""
        await publish_event(self.broker, event, prefix=self.prefix)
