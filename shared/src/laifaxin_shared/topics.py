"""The topic registry: one entry per Kafka topic, read by the code and by the Kubernetes topic manifests.

Each :class:`TopicSpec` names the topic, its key, partition count, cleanup policy and retention, who produces
and who consumes it, and the event model its values follow (None for dead-letter topics, whose values are the
original bytes). ``deploy/k8s`` renders Strimzi ``KafkaTopic`` resources from :data:`TOPICS`, and
``tests/unit/shared/test_topics.py`` validates each topic's example payloads in ``examples/`` against its model.

Partition counts bound sync's scale-out: the ``sync`` consumer group owns mailboxes by partition of the
``mailbox.*`` topics, so at most :data:`MAILBOX_PARTITIONS` sync workers do useful work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from .events import (
    ContactStatus,
    Envelope,
    MailboxRemoved,
    MailboxSyncStatus,
    MailboxUpdated,
    MailboxVerified,
    MailClassified,
    MailReceived,
    MailSent,
)

DAY_MS = 24 * 60 * 60 * 1000
MAILBOX_PARTITIONS = 12
"""Partitions of every mailbox-keyed topic; co-partitioned so one mailbox lands on one partition number."""
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    """A Kafka topic's contract.

    Attributes:
        name: topic name without the deployment's prefix.
        key: which field of the value is the record key (UTF-8 bytes), or a description for DLQs.
        partitions: partition count; mailbox-keyed topics share :data:`MAILBOX_PARTITIONS`.
        cleanup_policy: ``delete`` (retention) or ``compact``.
        retention_ms: how long records are kept, in milliseconds.
        producers: services that write it.
        consumers: services (consumer groups) that read it.
        model: pydantic model of the value, or None for dead-letter topics (raw bytes + error headers).
        description: one line for the event catalog.
    """

    name: str
    key: str
    partitions: int
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    model: type[Envelope] | None
    description: str
    replication_factor: int = 3
    min_insync_replicas: int = 2
    config: dict[str, str] = field(default_factory=dict)

    @property
    def dlq(self) -> str:
        """Name of this topic's dead-letter topic."""
        return self.name + DLQ_SUFFIX

    def examples(self) -> list[dict[str, Any]]:
        """Example payloads shipped in ``laifaxin_shared/examples/<name>.json`` (a JSON list)."""
        path = resources.files("laifaxin_shared").joinpath("examples", f"{self.name}.json")
        data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def kafka_config(self) -> dict[str, str]:
        """Topic-level configs (as for ``kafka-topics --config`` or a Strimzi ``KafkaTopic``)."""
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(self.min_insync_replicas),
            **self.config,
        }


_EVENT_TOPICS = [
    TopicSpec(
        "mailbox.verified",
        "mailbox_id",
        MAILBOX_PARTITIONS,
        "delete",
        30 * DAY_MS,
        ("binding",),
        ("sync",),
        MailboxVerified,
        "Full mailbox configuration after a successful verify-and-save; credential sealed.",
    ),
    TopicSpec(
        "mailbox.updated",
        "mailbox_id",
        MAILBOX_PARTITIONS,
        "delete",
        30 * DAY_MS,
        ("binding",),
        ("sync",),
        MailboxUpdated,
        "Settings that need no re-verification: nickname, sync on/off, interval.",
    ),
    TopicSpec(
        "mailbox.removed",
        "mailbox_id",
        MAILBOX_PARTITIONS,
        "delete",
        30 * DAY_MS,
        ("binding",),
        ("sync", "notify"),
        MailboxRemoved,
        "A mailbox was unbound; consumers drop their state for it.",
    ),
    TopicSpec(
        "mailbox.sync_status",
        "mailbox_id",
        MAILBOX_PARTITIONS,
        "delete",
        7 * DAY_MS,
        ("sync",),
        ("binding",),
        MailboxSyncStatus,
        "Sync state transitions with the shared error code and fix.",
    ),
    TopicSpec(
        "mail.received",
        "mailbox_id",
        MAILBOX_PARTITIONS,
        "delete",
        7 * DAY_MS,
        ("sync",),
        ("classifier",),
        MailReceived,
        "One new message: ids, envelope, classification headers, capped text, attachment metadata.",
    ),
    TopicSpec(
        "mail.classified",
        "mailbox_id",
        MAILBOX_PARTITIONS,
        "delete",
        7 * DAY_MS,
        ("classifier",),
        ("notify",),
        MailClassified,
        "The category of one message, with confidence, reasons, language and flags.",
    ),
    TopicSpec(
        "mail.sent",
        "mailbox_id",
        MAILBOX_PARTITIONS,
        "delete",
        30 * DAY_MS,
        ("send", "other Laifaxin senders"),
        ("classifier",),
        MailSent,
        "One message accepted by the submission server: Message-ID, recipients, campaign, sender.",
    ),
    TopicSpec(
        "contact.status",
        "tenant_id:recipient",
        MAILBOX_PARTITIONS,
        "compact",
        365 * DAY_MS,
        ("classifier",),
        ("send", "campaigns"),
        ContactStatus,
        "A recipient's latest status per tenant (replied, out_of_office, bounced_hard/soft, opted_out) "
        "with the sent message and reply that set it.",
        config={"min.compaction.lag.ms": str(DAY_MS)},
    ),
]


def _dlq_spec(spec: TopicSpec) -> TopicSpec:
    return TopicSpec(
        spec.dlq,
        f"{spec.key} of the original record (original key bytes)",
        min(spec.partitions, 3),
        "delete",
        30 * DAY_MS,
        spec.consumers,
        ("operators",),
        None,
        f"Poison records of {spec.name}: original bytes, with x-dlq-* headers naming the error and origin.",
    )


NOTIFY_RETRY_LEVELS = 3
"""Retry topics of notify: ``notify.retry.0`` .. ``notify.retry.2`` (delays configured in notify's settings)."""


NOTIFY_TASK_PARTITIONS = 3
"""Partitions of notify's retry/deferred/DLQ topics: a small fraction of the traffic; raise to scale out."""


def _notify_task_spec(name: str, description: str, retention_ms: int = 7 * DAY_MS) -> TopicSpec:
    return TopicSpec(
        name,
        "user_id of the delivery task",
        NOTIFY_TASK_PARTITIONS,
        "delete",
        retention_ms,
        ("notify",),
        ("notify",) if not name.endswith(DLQ_SUFFIX) else ("operators",),
        None,
        description,
    )


_NOTIFY_TOPICS = [
    *(
        _notify_task_spec(
            f"notify.retry.{level}",
            f"Delivery tasks waiting for retry level {level}; headers x-attempt and x-due-at (epoch ms).",
        )
        for level in range(NOTIFY_RETRY_LEVELS)
    ),
    _notify_task_spec(
        "notify.deferred", "Delivery tasks deferred by quiet hours or digests; header x-due-at (epoch ms)."
    ),
    _notify_task_spec(
        "notify.dlq",
        "Delivery tasks that exhausted retries or failed permanently for a configuration reason.",
        30 * DAY_MS,
    ),
]

TOPICS: dict[str, TopicSpec] = {s.name: s for s in _EVENT_TOPICS}
TOPICS.update({d.name: d for d in map(_dlq_spec, _EVENT_TOPICS)})
TOPICS.update({t.name: t for t in _NOTIFY_TOPICS})


def spec(name: str) -> TopicSpec:
    """The registry entry for ``name`` (without prefix).

    Raises:
        KeyError: the topic is not registered.
    """
    return TOPICS[name]


def event_topics() -> list[TopicSpec]:
    """Every topic that carries an event model (DLQs excluded)."""
    return [s for s in TOPICS.values() if s.model is not None]
