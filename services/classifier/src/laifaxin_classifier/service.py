"""The classifier service: consumes ``mail.received`` in batches, publishes ``mail.classified``.

Handler chain (STYLE.md), per consumer batch (up to ``batch_max_records`` records, whatever the consumer has
fetched): validate each record (a poison record goes to ``mail.received.dlq`` with its error and the batch
goes on), skip the messages already classified (one lookup per batch), classify the rest in the worker pool
(:mod:`.pool`: a CPU budget per message; a message over it is published with the fallback
``to_reply`` / ``budget:exceeded`` so a person looks at it), turn the (event, classification) pairs into
``mail.classified`` events (:func:`classified_events`, the one place that does), publish them all and wait
for every acknowledgement (acks=all) together, record them with one ``insert_many``, and return: the offsets
are committed after the handler returns (``NACK_ON_ERROR``: a failure seeks back and the batch is retried).

Idempotency: the ``mail.classified`` event id is derived from the message's natural key
(:meth:`MessageRef.derived_event_id`), so a redelivered ``mail.received`` — or the same message published
twice by sync after a crash — yields the same ``event_id``. A record in ``classified`` (``_id`` = that id),
written after the publish is acknowledged, keeps a redelivery from publishing again; a crash between the two
publishes the identical event once more, which consumers absorb by ``event_id``. FerretDB v1 has no
transactions, so the record is insert-only: ``insert_many(ordered=False)``, a duplicate key meaning "already
recorded". (Records written before ``_id`` carried the event id have a random ``_id`` and the id in
``event_id``, still unique; such a message redelivered is published once more, which consumers absorb.)

Reply matching (:mod:`.matching`): before they are published, the batch's mail.classified events go through
:meth:`ReplyMatching.on_classified`, which adds the sent message each answers (and, for mail in the system
mailbox, makes the campaign owner its tenant and user) and returns the ``contact.status`` events to publish with
them. ``mail.sent`` is consumed by the ``classifier-sent`` group into the sent registry
(:func:`.matching.service.register_sent_consumer`).

Worst case per batch: ``batch_max_records`` messages each stopped at ``message_wall_limit_seconds`` over
``workers`` processes; ``max.poll.interval.ms`` is set above that, so a batch of hostile messages never makes the
consumer leave its group.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.specification import AsyncAPI
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict
from pymongo import ASCENDING, IndexModel
from pymongo.errors import BulkWriteError, OperationFailure

from laifaxin_shared.events import MailClassified, MailReceived
from laifaxin_shared.kafka import (
    declare_publishers,
    describe_validation_error,
    make_broker,
    publish_dead_letter,
    publish_event,
    subscriber_options,
)
from laifaxin_shared.logging import configure_logging, get_logger
from laifaxin_shared.mongo import Document, ensure_indexes, make_mongo_client, ping
from laifaxin_shared.settings import ServiceSettings
from laifaxin_shared.wire import serialize

from .classify import Classification, Classifier, to_mail_classified
from .matching.cli import DEV_REPLY_TOKEN_KEYS
from .matching.pipeline import ReplyMatching
from .matching.service import MatchingSettings, build_matching, publish_results, register_sent_consumer
from .message import ClassifierInput
from .pool import ClassifierPool

log = get_logger(__name__)

GROUP_ID = "classifier"
INDEXES = {"classified": [IndexModel([("event_id", ASCENDING)], unique=True, name="event_id")]}
MANY_IDS = 16
"""Above this many ids a batch looks up its records with one ``$in`` query instead of one ``_id`` lookup each
(FerretDB v1 serves only ``{_id: value}`` from an index; ``$in`` scans, which beats hundreds of round trips)."""

CLASSIFIED = Counter("classifier_messages_total", "Messages classified, by category", ["category"])
DUPLICATES = Counter("classifier_duplicates_total", "Redelivered messages recognised and skipped")
BATCHES = Histogram(
    "classifier_batch_size",
    "Valid mail.received records per consumer batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
LATENCY = Histogram(
    "classifier_classify_seconds",
    "CPU time to classify one message in its worker (seconds)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0),
)


class ClassifierSettings(ServiceSettings, MatchingSettings):
    """Settings of the classifier service (env prefix ``CLASSIFIER_``; infra names are shared; reply matching's
    in :class:`~.matching.service.MatchingSettings`)."""

    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", extra="ignore", populate_by_name=True)

    service_name: str = "classifier"
    mongodb_database: str = Field(default="laifaxin_classifier", description="The classifier's own database.")
    http_host: str = Field(default="0.0.0.0", description="Bind address of /healthz, /readyz, /metrics.")  # noqa: S104
    http_port: int = Field(default=8081, description="Port of /healthz, /readyz, /metrics, /asyncapi.")
    workers: int = Field(
        default=2, ge=1, description="Classification worker processes (each loads the model, ~100 MB)."
    )
    message_budget_seconds: float = Field(
        default=2.0,
        gt=0,
        description="CPU seconds one message may take in its worker; past it the worker is killed and "
        "replaced, and the message is published as to_reply with reason budget:exceeded.",
    )
    message_wall_limit_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Wall seconds one message may take in its worker whatever its CPU use (a stuck or "
        "starved worker); past it, as for the budget.",
    )
    batch_max_records: int = Field(default=100, ge=1, description="Most mail.received records per batch.")
    batch_timeout_ms: int = Field(
        default=10, ge=0, description="Longest an idle mail.received poll waits for records, ms."
    )
    fetch_max_wait_ms: int = Field(
        default=50,
        ge=0,
        description="Kafka fetch.max.wait.ms of the mail.received consumer: longest the broker holds a fetch "
        "that has no new records, ms.",
    )
    test_spin_marker: str = Field(
        default="",
        description="Tests only: a worker spins on the CPU for a message whose subject contains this text "
        "(to exercise the budget). Empty in production.",
    )

    def secret_fields(self) -> dict[str, SecretStr]:
        """The reply token key ring only (refused as a placeholder outside development): the classifier decrypts
        no mailbox credential, so its Deployment is given no credential key ring (deploy/k8s/README.md) and a
        production pod must not be refused for that ring's development default."""
        return {"LAIFAXIN_REPLY_TOKEN_KEYS": self.reply_token_keys}

    @model_validator(mode="after")
    def _refuse_dev_reply_token_key(self) -> ClassifierSettings:
        if self.environment not in ("development", "test") and (
            self.reply_token_keys.get_secret_value() == DEV_REPLY_TOKEN_KEYS
        ):
            raise ValueError(
                f"LAIFAXIN_REPLY_TOKEN_KEYS is the development key; set a real key ring for environment={self.environment}"
            )
        return self

    def max_poll_interval_ms(self) -> int:
        """Kafka max.poll.interval.ms for the consumer: above the worst batch (every message stopped at the
        wall limit), and never under Kafka's default of 300 s."""
        worst = self.batch_max_records * self.message_wall_limit_seconds / self.workers
        return int(max(300.0, 2 * worst + 60) * 1000)


def classified_events(pairs: Sequence[tuple[MailReceived, Classification]]) -> list[MailClassified]:
    """The ``mail.classified`` events of a batch of (received event, classification) pairs, in order.

    This is the one place where classifications become events (the service and :func:`classify_event` both
    come here): extend it to add what the batch can tell (for instance facts found by looking across the
    batch). Each event id is derived from the message's natural key (see module docstring). Pure; no I/O.
    """
    return [
        to_mail_classified(event, result).model_copy(
            update={"event_id": event.ref.derived_event_id("mail.classified")}
        )
        for event, result in pairs
    ]


def fallback_classification(reason: str) -> Classification:
    """What a message that could not be classified is published as: ``to_reply`` (a person looks at it),
    confidence 0, the reason (``budget:exceeded``, ``worker:crashed``, ``classifier:error:<Type>``) in
    ``reasons``, language ``und``."""
    return Classification(category="to_reply", confidence=0.0, reasons=[reason], language="und")


def classify_event(classifier: Classifier, event: MailReceived) -> MailClassified:
    """Classify one received message into its ``mail.classified`` event in this process (pure; no I/O, no
    budget: the service classifies in its worker pool instead)."""
    started = time.perf_counter()
    result = classifier.classify(ClassifierInput.from_event(event))
    LATENCY.observe(time.perf_counter() - started)
    return classified_events([(event, result)])[0]


@dataclass
class Runtime:
    """What the handler needs at run time."""

    settings: ClassifierSettings
    broker: KafkaBroker
    pool: ClassifierPool
    db: Any
    matching: ReplyMatching | None = None


async def _recorded(db: Any, ids: list[str]) -> set[str]:
    """Which of these ``mail.classified`` event ids are recorded in ``classified`` (see :data:`MANY_IDS`)."""
    if not ids:
        return set()
    if len(ids) > MANY_IDS:
        return {str(d["_id"]) async for d in db.classified.find({"_id": {"$in": ids}}, {"_id": 1})}
    found = await asyncio.gather(*(db.classified.find_one({"_id": i}, {"_id": 1}) for i in ids))
    return {str(d["_id"]) for d in found if d is not None}


async def _record(db: Any, docs: list[Document], attempts: int = 6) -> None:
    """``insert_many(ordered=False)`` of the batch's records, all written when it returns: a duplicate key
    (11000) is a record already there; documents refused as busy (FerretDB's SQLite answers a concurrent writer
    with "database is locked" and writes nothing) are sent again with jittered backoff.

    Raises:
        BulkWriteError / OperationFailure: another error, or still busy after ``attempts``.
    """
    pending = docs
    for attempt in range(attempts):
        try:
            await db.classified.insert_many(pending, ordered=False)
            return
        except BulkWriteError as exc:
            failed = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
            if not failed:
                return
            if attempt == attempts - 1 or any(
                "database is locked" not in str(e.get("errmsg")) for e in failed
            ):
                raise
            pending = [pending[e["index"]] for e in failed]
        except OperationFailure as exc:
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
        await asyncio.sleep(0.02 * (2**attempt) * (0.5 + random.random()))  # noqa: S311  # jitter, not crypto


async def handle_batch(rt: Runtime, batch: Sequence[tuple[MailReceived, bytes]]) -> list[MailClassified]:
    """Classify, publish and record one consumer batch of valid ``mail.received`` events.

    ``batch`` holds each event with its record's bytes (sent as they are to a worker). Returns the events
    published (messages already classified, and repeats within the batch, are skipped). Raises what the
    broker or the database raise (the consumer then retries the batch; nothing is recorded before its publish
    is acknowledged).
    """
    unique: dict[str, tuple[MailReceived, bytes]] = {}
    for event, raw in batch:
        unique.setdefault(str(event.ref.derived_event_id("mail.classified")), (event, raw))
    BATCHES.observe(len(batch))
    known = await _recorded(rt.db, list(unique))
    fresh = [item for key, item in unique.items() if key not in known]
    if len(fresh) < len(batch):
        DUPLICATES.inc(len(batch) - len(fresh))
    if not fresh:
        return []
    outcomes = await rt.pool.classify_many([raw for _, raw in fresh])
    pairs: list[tuple[MailReceived, Classification]] = []
    for (event, _), outcome in zip(fresh, outcomes, strict=True):
        LATENCY.observe(outcome.cpu_seconds)
        result = outcome.classification
        if result is None:
            result = fallback_classification(outcome.reason or "classifier:unavailable")
        pairs.append((event, result))
    events = classified_events(pairs)
    if (
        rt.matching is not None
    ):  # reply matching: the match, the owner of system-mailbox mail, contact statuses
        matched = await rt.matching.on_classified([(r, e) for (r, _), e in zip(pairs, events, strict=True)])
        events = matched.classified
        await publish_results(rt.broker, rt.settings.topic_prefix, matched)
    await asyncio.gather(*(publish_event(rt.broker, e, prefix=rt.settings.topic_prefix) for e in events))
    await _record(
        rt.db,
        [
            {  # keyed by the derived id, which a redelivery looks up (a late-matched event carries another)
                "_id": str(received.ref.derived_event_id("mail.classified")),
                "event_id": str(received.ref.derived_event_id("mail.classified")),
                "message": received.ref.natural_key(),
                "category": e.category,
                "received_event_id": str(received.event_id),
                "tenant_id": received.tenant_id,
            }
            for (received, _), e in zip(pairs, events, strict=True)
        ],
    )
    for e in events:
        CLASSIFIED.labels(e.category).inc()
        log.info(
            "classified",
            mailbox_id=e.ref.mailbox_id,
            uid=e.ref.uid,
            category=e.category,
            confidence=round(e.confidence, 3),
            reasons=e.reasons,
        )
    return events


async def handle_mail_received(rt: Runtime, event: MailReceived) -> MailClassified | None:
    """:func:`handle_batch` for one event; returns the published event, or None for a recognised redelivery."""
    published = await handle_batch(rt, [(event, serialize(event))])
    return published[0] if published else None


def create_app(settings: ClassifierSettings | None = None) -> AsgiFastStream:
    """The ASGI app: the Kafka consumer plus /healthz, /readyz, /metrics and /asyncapi (FastStream docs)."""
    settings = settings or ClassifierSettings()
    broker = make_broker(settings, description="Laifaxin classifier: mail.received -> mail.classified")
    mongo = make_mongo_client(settings.mongodb_url.get_secret_value(), appname=settings.service_name)
    db = mongo[settings.mongodb_database]
    state: dict[str, Runtime] = {}

    declare_publishers(broker, settings, "mail.classified", "contact.status")  # for the AsyncAPI document

    def matching() -> ReplyMatching:
        rt = state["rt"]
        assert rt.matching is not None
        return rt.matching

    register_sent_consumer(
        broker, settings.topic("mail.sent"), settings.topic_prefix, settings.sent_batch_max_records, matching
    )

    @broker.subscriber(
        settings.topic("mail.received"),
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_poll_interval_ms=settings.max_poll_interval_ms(),
        **subscriber_options(GROUP_ID),
        title="mail.received:classifier",
        description="Classify each new message (in batches).",
    )
    async def on_mail_received(msg: KafkaMessage) -> None:
        """One batch of mail.received records: validate each (poison to the DLQ), then :func:`handle_batch`."""
        records: list[Any] = list(msg.raw_message)  # type: ignore[arg-type]
        batch: list[tuple[MailReceived, bytes]] = []
        for record in records:
            raw = record.value or b""
            try:
                batch.append((MailReceived.model_validate_json(raw), raw))
            except ValidationError as exc:
                error = describe_validation_error(exc)
                await publish_dead_letter(
                    broker, record, error=error, error_type="ValidationError", group_id=GROUP_ID
                )
                log.warning(
                    "dead-lettered record",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    group_id=GROUP_ID,
                    error=error,
                )
        await handle_batch(state["rt"], batch)

    async def startup() -> None:
        configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
        t0 = time.perf_counter()
        pool = ClassifierPool(
            settings.workers,
            budget_s=settings.message_budget_seconds,
            wall_limit_s=settings.message_wall_limit_seconds,
            spin_marker=settings.test_spin_marker,
        )
        await pool.start()
        log.info("workers ready", workers=settings.workers, seconds=round(time.perf_counter() - t0, 3))
        await ensure_indexes(db, INDEXES)
        state["rt"] = Runtime(settings, broker, pool, db, await build_matching(settings, db))

    async def shutdown() -> None:
        if "rt" in state:
            await state["rt"].pool.close()
        await mongo.close()

    @get(include_in_schema=False)
    async def healthz(scope: Any) -> AsgiResponse:
        alive = "rt" in state and broker.running
        return AsgiResponse(b"ok" if alive else b"not running", status_code=200 if alive else 503)

    @get(include_in_schema=False)
    async def readyz(scope: Any) -> AsgiResponse:
        try:
            ok = "rt" in state and await broker.ping(timeout=2.0) and await ping(mongo)
        except Exception as exc:  # noqa: BLE001  readiness reports any failure as "not ready" with its type
            return AsgiResponse(f"not ready: {type(exc).__name__}".encode(), status_code=503)
        return AsgiResponse(b"ready" if ok else b"not ready", status_code=200 if ok else 503)

    @get(include_in_schema=False)
    async def metrics(scope: Any) -> AsgiResponse:
        return AsgiResponse(
            generate_latest(REGISTRY), status_code=200, headers={"content-type": CONTENT_TYPE_LATEST}
        )

    return AsgiFastStream(
        broker,
        asgi_routes=[("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics)],
        on_startup=[startup],
        on_shutdown=[shutdown],
        asyncapi_path="/asyncapi",
        specification=AsyncAPI(
            title="Laifaxin classifier",
            version="1.0.0",
            description="Consumes mail.received, publishes mail.classified (keyed by mailbox_id).",
        ),
    )


def main() -> None:
    """Run the service with uvicorn on the configured port."""
    import uvicorn

    settings = ClassifierSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


__all__ = [
    "ClassifierSettings",
    "Document",
    "classified_events",
    "classify_event",
    "create_app",
    "fallback_classification",
    "handle_batch",
    "handle_mail_received",
    "main",
]
