"""The record form of an event, without a Kafka client: topic, key, value bytes and headers.

Kept apart from :mod:`laifaxin_shared.kafka` (FastStream, aiokafka) so that a process that only builds records,
such as the sync worker's parsing pool, does not import a Kafka client. :mod:`laifaxin_shared.kafka` re-exports
every name.
"""

from __future__ import annotations

from .events import Envelope
from .topics import TOPICS

__all__ = ["event_headers", "event_key", "serialize", "topic_for"]

_MODEL_TOPIC: dict[type[Envelope], str] = {s.model: s.name for s in TOPICS.values() if s.model is not None}


def topic_for(event: Envelope | type[Envelope]) -> str:
    """The registry topic name (without prefix) for an event instance or class.

    Raises:
        KeyError: the model is not registered to a topic.
    """
    cls = event if isinstance(event, type) else type(event)
    return _MODEL_TOPIC[cls]


def event_key(event: Envelope) -> bytes:
    """The record key of an event, UTF-8: what its ``key()`` method returns when it has one (``contact.status``:
    ``tenant_id:recipient``), else its ``mailbox_id`` (or ``ref.mailbox_id``)."""
    custom = getattr(event, "key", None)
    if callable(custom):
        return str(custom()).encode()
    mailbox_id = getattr(event, "mailbox_id", None)
    if mailbox_id is None:
        ref = getattr(event, "ref", None)
        mailbox_id = getattr(ref, "mailbox_id", None)
    if not isinstance(mailbox_id, str):
        raise TypeError(f"{type(event).__name__} has no mailbox_id to key by")
    return mailbox_id.encode()


def serialize(event: Envelope) -> bytes:
    """The wire form of an event: compact JSON, by alias (``from``), UTC timestamps."""
    return event.model_dump_json(by_alias=True).encode()


def event_headers(event: Envelope) -> dict[str, str]:
    """The record headers :func:`laifaxin_shared.kafka.publish_event` sends with an event: ``content-type``, ``event-type`` (the
    registry topic name), ``event-id`` and ``schema-version``.

    For a producer that serialises events elsewhere (e.g. in a worker process) and publishes the bytes itself.

    Raises:
        KeyError: the event type has no registered topic.
    """
    return {
        "content-type": "application/json",
        "event-type": topic_for(event),
        "event-id": str(event.event_id),
        "schema-version": str(event.schema_version),
    }
