"""Kafka helpers on FastStream + aiokafka: the broker factory, event publishing, dead letters, topic creation.

Rules every service follows (STYLE.md, after Sentry arroyo and FastStream's docs):

- The producer waits for every in-sync replica (``acks="all"``) and is idempotent, so a retried send is
  written once per partition.
- Every subscriber names its ``group_id`` and ``ack_policy`` explicitly (FastStream's default, ACK_FIRST, is
  at-most-once); use :func:`subscriber_options`.
- A record whose value does not validate against its topic's model is a poison record: the
  :class:`DeadLetterMiddleware` publishes it to ``<topic>.dlq`` (original key and bytes, with ``x-dlq-*``
  headers naming the error, topic, partition, offset and consumer group), then lets the offset be committed, so
  the consumer goes on. Handlers therefore only ever see valid events.
- Events are published keyed by ``mailbox_id`` with :func:`publish_event`, which picks the topic from the
  registry by the event's type.
- Every client (FastStream broker, aiokafka producer, consumer and admin client) connects with the cluster's
  security settings (:class:`~laifaxin_shared.settings.KafkaSettings`: ``KAFKA_SECURITY_PROTOCOL``,
  ``KAFKA_SASL_*``, ``KAFKA_SSL_CA_FILE``) through :func:`client_options` / :func:`broker_security`; the helpers
  below that take a bootstrap string read those settings from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
)
from faststream import AckPolicy, BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from .events import Envelope
from .logging import get_logger, redact_text
from .settings import KafkaSettings, ServiceSettings
from .topics import DLQ_SUFFIX, TOPICS, TopicSpec
from .wire import event_headers, event_key, serialize, topic_for

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord, RecordMetadata
    from faststream._internal.basic_types import AsyncFuncAny
    from faststream.message import StreamMessage

log = get_logger(__name__)

DLQ_HEADERS = (
    "x-dlq-error",
    "x-dlq-error-type",
    "x-dlq-topic",
    "x-dlq-partition",
    "x-dlq-offset",
    "x-dlq-group",
    "x-dlq-timestamp",
    "x-dlq-truncated",
    "x-dlq-size-bytes",
)
"""Headers a dead-letter record carries in addition to the original ones. ``x-dlq-truncated`` is ``true`` when
the value is only the start of the original (the whole record was too large for the dead-letter topic; the
original stays at ``x-dlq-topic``/``x-dlq-partition``/``x-dlq-offset`` while the topic retains it),
``x-dlq-size-bytes`` is the original value's size."""

DLQ_TOO_LARGE: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
"""What publishing a record too large for the producer or the broker fails with (error codes 10 and 18)."""

DLQ_PREFIX_BYTES = 64 * 1024
"""Bytes of the original value a dead letter keeps when the whole record is too large for the DLQ topic."""


# ------------------------------------------------------------------------------------------------- connection

KafkaTarget = str | KafkaSettings
"""A cluster to connect to: settings, or a bootstrap string (``host:port,...``) whose security settings are then
read from the environment (``KAFKA_SECURITY_PROTOCOL`` ...)."""


def kafka_settings(target: KafkaTarget) -> KafkaSettings:
    """``target`` as :class:`KafkaSettings` (a bootstrap string gets the security settings of the environment).

    Raises:
        pydantic.ValidationError: the environment's Kafka security settings are incomplete.
    """
    if isinstance(target, KafkaSettings):
        return target
    return KafkaSettings(kafka_bootstrap_servers=target)


def kafka_ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL/SASL_SSL (None for the plaintext protocols): TLS 1.2+, the broker's certificate
    checked against ``KAFKA_SSL_CA_FILE`` (else the system store) and its host name verified.

    Raises:
        OSError / ssl.SSLError: the CA file cannot be read.
    """
    if not settings.kafka_uses_tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_options(target: KafkaTarget) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (``AIOKafkaProducer``, ``AIOKafkaConsumer``,
    ``AIOKafkaAdminClient``): ``bootstrap_servers`` and the security options (``security_protocol``,
    ``ssl_context``, ``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password``).

    The result holds the SASL password: pass it to the client, never log it.
    """
    settings = kafka_settings(target)
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_uses_tls:
        options["ssl_context"] = kafka_ssl_context(settings)
    if settings.kafka_uses_sasl:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def broker_security(target: KafkaTarget) -> BaseSecurity | None:
    """The FastStream ``security`` object for :class:`KafkaBroker` (None for PLAINTEXT); same settings as
    :func:`client_options`, so FastStream's brokers and the raw aiokafka clients connect alike."""
    settings = kafka_settings(target)
    context = kafka_ssl_context(settings)
    if not settings.kafka_uses_sasl:
        return BaseSecurity(ssl_context=context, use_ssl=True) if settings.kafka_uses_tls else None
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return kinds[settings.kafka_sasl_mechanism](
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=settings.kafka_uses_tls,
    )


def make_broker(settings: ServiceSettings, *, client_id: str | None = None, **kwargs: Any) -> KafkaBroker:
    """A FastStream :class:`KafkaBroker` with the platform's producer guarantees and dead-letter middleware.

    Args:
        settings: bootstrap servers, security (:func:`broker_security`) and topic prefix come from here.
        client_id: Kafka client id (defaults to the service name).
        **kwargs: passed to :class:`KafkaBroker` (for example ``description`` for AsyncAPI).
    """
    middlewares = [*kwargs.pop("middlewares", ()), dead_letter_middleware(settings.topic_prefix)]
    return KafkaBroker(
        settings.kafka_bootstrap_servers.split(","),
        acks="all",
        enable_idempotence=True,
        client_id=client_id or settings.service_name,
        middlewares=middlewares,
        security=broker_security(settings),
        **kwargs,
    )


def declare_publishers(broker: KafkaBroker, settings: ServiceSettings, *topics: str) -> None:
    """Register the topics this service publishes, with their registry model and description, so they appear
    in its AsyncAPI document. Events are still sent with :func:`publish_event` (keyed, acks=all); these
    publishers are never called (used as a decorator, a publisher would also send the handler's return value).

    Raises:
        KeyError: a topic is not in the registry.
    """
    for name in topics:
        topic_spec = TOPICS[name]
        broker.publisher(
            settings.topic(name), title=name, description=topic_spec.description, schema=topic_spec.model
        )


def subscriber_options(
    group_id: str,
    *,
    ack_policy: AckPolicy = AckPolicy.NACK_ON_ERROR,
    auto_offset_reset: Literal["earliest", "latest"] = "earliest",
    **extra: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``broker.subscriber(topic, **subscriber_options("sync"))``.

    The default ack policy commits the offset after the handler returns and seeks back on an exception, so a
    transient failure (database down) is retried rather than lost; poison records never reach the handler
    (see :class:`DeadLetterMiddleware`).
    """
    return {"group_id": group_id, "ack_policy": ack_policy, "auto_offset_reset": auto_offset_reset, **extra}


async def publish_event(
    broker: KafkaBroker,
    event: Envelope,
    *,
    prefix: str = "",
    headers: Mapping[str, str] | None = None,
) -> RecordMetadata:
    """Publish ``event`` to its registry topic, keyed by mailbox id; returns once acknowledged (acks=all).

    Raises:
        KeyError: the event type has no registered topic.
        aiokafka.errors.KafkaError: the broker did not acknowledge.
    """
    topic = prefix + topic_for(event)
    hdrs = {**event_headers(event), **(headers or {})}
    result: RecordMetadata = await broker.publish(serialize(event), topic, key=event_key(event), headers=hdrs)
    return result


def record_headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    """A record's headers as text (undecodable bytes replaced)."""
    out: dict[str, str] = {}
    for name, value in record.headers or ():
        out[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out


def describe_validation_error(exc: ValidationError, limit: int = 10) -> str:
    """A compact, secret-free description of a validation error: ``loc: msg`` items, no input values."""
    items = [
        f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors(include_input=False)
    ]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


async def publish_dead_letter(
    broker: KafkaBroker,
    record: ConsumerRecord[Any, Any],
    *,
    error: str,
    error_type: str,
    group_id: str | None,
) -> RecordMetadata:
    """Send the original record (key, bytes, headers) to ``<topic>.dlq`` with ``x-dlq-*`` headers.

    The dead letter must never fail for its size, or the consumer would retry the poison record for ever: when
    the record with its added headers is too large for the producer or the DLQ topic (:data:`DLQ_TOO_LARGE`),
    it is sent again with the first :data:`DLQ_PREFIX_BYTES` of the value (then with none), ``x-dlq-truncated:
    true`` and the original's size; the origin topic, partition and offset headers say where the whole record
    is.

    Raises:
        aiokafka.errors.KafkaError: the dead letter was not acknowledged (also when even the headers alone are
            too large).
    """
    value: bytes = record.value or b""
    headers = record_headers(record)
    headers.update(
        {
            "x-dlq-error": redact_text(error)[:2000],
            "x-dlq-error-type": error_type,
            "x-dlq-topic": record.topic,
            "x-dlq-partition": str(record.partition),
            "x-dlq-offset": str(record.offset),
            "x-dlq-group": group_id or "",
            "x-dlq-timestamp": str(record.timestamp),
            "x-dlq-truncated": "false",
            "x-dlq-size-bytes": str(len(value)),
        }
    )
    # The whole value, else its start, else none (the headers still say where the original is).
    for attempt in (value, value[:DLQ_PREFIX_BYTES], b""):
        headers["x-dlq-truncated"] = "true" if len(attempt) < len(value) else "false"
        try:
            result: RecordMetadata = await broker.publish(
                attempt, record.topic + DLQ_SUFFIX, key=record.key, headers=headers
            )
        except DLQ_TOO_LARGE:
            if not attempt:
                raise
            continue
        return result
    raise AssertionError("unreachable")


def dead_letter_middleware(prefix: str = "") -> type[BaseMiddleware]:
    """A FastStream broker middleware class that dead-letters records failing their topic's model.

    Topics are matched by name after stripping ``prefix``; topics not in the registry (and DLQs) pass through.
    """
    models = {prefix + s.name: s.model for s in TOPICS.values() if s.model is not None}

    class DeadLetterMiddleware(BaseMiddleware):
        """Validates each record against its topic's model before the handler; poison goes to the DLQ."""

        async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
            record = msg.raw_message
            topic = getattr(record, "topic", None)
            model = models.get(topic) if isinstance(topic, str) else None
            if model is None:
                return await call_next(msg)
            try:
                model.model_validate_json(msg.body)
            except ValidationError as exc:
                error, error_type = describe_validation_error(exc), "ValidationError"
            else:
                return await call_next(msg)
            broker = self.context.get("broker")
            group_id = _group_of(self.context)
            await publish_dead_letter(broker, record, error=error, error_type=error_type, group_id=group_id)
            log.warning(
                "dead-lettered record",
                topic=topic,
                partition=record.partition,
                offset=record.offset,
                group_id=group_id,
                error=error,
            )
            return None

    return DeadLetterMiddleware


def _group_of(context: Any) -> str | None:
    handler = context.get("handler_")
    group = getattr(handler, "group_id", None)
    return group if isinstance(group, str) else None


async def ensure_topics(
    bootstrap_servers: KafkaTarget,
    specs: Iterable[TopicSpec] | None = None,
    *,
    prefix: str = "",
    replication_factor: int | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the registry's topics that do not exist yet; returns the names created.

    For local and CI clusters pass ``replication_factor=1`` (min.insync.replicas follows, capped at it).
    Production clusters get their topics from the Strimzi ``KafkaTopic`` manifests instead.
    """
    specs = list(specs if specs is not None else TOPICS.values())
    admin = AIOKafkaAdminClient(**client_options(bootstrap_servers), request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = []
        for s in specs:
            name = prefix + s.name
            if name in existing:
                continue
            rf = replication_factor or s.replication_factor
            cfg = s.kafka_config()
            cfg["min.insync.replicas"] = str(min(int(cfg["min.insync.replicas"]), rf))
            new.append(NewTopic(name, s.partitions, rf, topic_configs=cfg))
        if not new:
            return []
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
        await _wait_for_topics(admin, {t.name for t in new}, timeout_s)
        return [t.name for t in new]
    finally:
        await admin.close()


async def delete_topics(bootstrap_servers: KafkaTarget, prefix: str, *, timeout_s: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (test and demo clean-up); returns their names.

    Raises:
        ValueError: an empty prefix (that would name every topic of the cluster).
    """
    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    admin = AIOKafkaAdminClient(**client_options(bootstrap_servers), request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names, timeout_ms=int(timeout_s * 1000))
        return names
    finally:
        await admin.close()


async def _wait_for_topics(admin: AIOKafkaAdminClient, names: set[str], timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        described = await admin.describe_topics(list(names))
        ready = {t["topic"] for t in described if t.get("error_code", 0) == 0 and t.get("partitions")}
        if names <= ready:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"topics not ready after {timeout_s} s: {sorted(names)}")


async def read_dead_letters(
    bootstrap_servers: KafkaTarget, dlq_topic: str, *, idle_ms: int = 1500, limit: int = 100_000
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in ``dlq_topic`` (read from the beginning without a consumer group; stops after
    ``idle_ms`` without new records)."""
    consumer = AIOKafkaConsumer(
        dlq_topic,
        **client_options(bootstrap_servers),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        while len(records) < limit:
            batch = await consumer.getmany(timeout_ms=idle_ms)
            if not batch:
                break
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def replay_dead_letters(
    bootstrap_servers: KafkaTarget, dlq_topic: str, *, since_offset: int = 0, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Re-publish dead-lettered records to the topic they came from (after the fix is deployed).

    Each record goes back with its original key, bytes and headers (the ``x-dlq-*`` headers removed, an
    ``x-dlq-replayed-from`` header added: ``<dlq topic>/<partition>/<offset>``), acks=all. Records whose
    DLQ offset is below ``since_offset`` are skipped, and so are records that hold only the start of their
    original (``x-dlq-truncated: true``; their summary says ``"skipped": "truncated"``): replaying a cut value
    would publish a different record. Consumers are idempotent, so a record replayed twice is harmless.
    Returns a summary per record (see :func:`dlq_record_summary`).
    """
    records = [r for r in await read_dead_letters(bootstrap_servers, dlq_topic) if r.offset >= since_offset]
    out = []
    producer = (
        None
        if dry_run
        else AIOKafkaProducer(**client_options(bootstrap_servers), acks="all", enable_idempotence=True)
    )
    if producer is not None:
        await producer.start()
    try:
        for r in records:
            headers = record_headers(r)
            target = headers.get("x-dlq-topic") or dlq_topic.removesuffix(DLQ_SUFFIX)
            summary = {
                **dlq_record_summary(r.value or b"", headers),
                "dlq_offset": r.offset,
                "target": target,
            }
            if headers.get("x-dlq-truncated") == "true":
                summary["skipped"] = "truncated"
            out.append(summary)
            if producer is None or "skipped" in summary:
                continue
            keep = [(k, v.encode()) for k, v in headers.items() if k not in DLQ_HEADERS]
            keep.append(("x-dlq-replayed-from", f"{dlq_topic}/{r.partition}/{r.offset}".encode()))
            await producer.send_and_wait(target, r.value, key=r.key, headers=keep)
    finally:
        if producer is not None:
            await producer.stop()
    return out


def dlq_record_summary(value: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """A JSON-able view of a dead-letter record for operators (error headers plus the value's first bytes)."""
    preview = value[:500].decode("utf-8", "replace")
    try:
        json.loads(value)
        kind = "json"
    except ValueError:
        kind = "bytes"
    return {**{h: headers.get(h, "") for h in DLQ_HEADERS}, "value_kind": kind, "value_preview": preview}
