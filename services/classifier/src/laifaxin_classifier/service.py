"""The classifier service: consumes ``mail.received``, publishes ``mail.classified``.

Handler chain (STYLE.md): decode the typed event (poison records never get here: the shared dead-letter
middleware sends them to ``mail.received.dlq``), call :func:`classify_event`, publish, record. Offsets are
committed after the handler returns (``NACK_ON_ERROR``: a failure seeks back and retries).

Idempotency: the ``mail.classified`` event id is derived from the message's natural key
(:meth:`MessageRef.derived_event_id`), so a redelivered ``mail.received`` — or the same message published
twice by sync after a crash — yields the same ``event_id``. A record in ``classified`` (unique on that id),
written after the publish is acknowledged, keeps a redelivery from publishing again; a crash between the two
publishes the identical event once more, which consumers absorb by ``event_id``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from pymongo import ASCENDING, IndexModel

from laifaxin_shared.events import MailClassified, MailReceived
from laifaxin_shared.kafka import declare_publishers, make_broker, publish_event, subscriber_options
from laifaxin_shared.logging import configure_logging, get_logger
from laifaxin_shared.mongo import Document, ensure_indexes, insert_unique, make_mongo_client, ping
from laifaxin_shared.settings import ServiceSettings

from .classify import Classifier, to_mail_classified
from .message import ClassifierInput

log = get_logger(__name__)

GROUP_ID = "classifier"
INDEXES = {"classified": [IndexModel([("event_id", ASCENDING)], unique=True, name="event_id")]}

CLASSIFIED = Counter("classifier_messages_total", "Messages classified, by category", ["category"])
DUPLICATES = Counter("classifier_duplicates_total", "Redelivered messages recognised and skipped")
LATENCY = Histogram(
    "classifier_classify_seconds",
    "Time to classify one message (seconds)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)


class ClassifierSettings(ServiceSettings):
    """Settings of the classifier service (env prefix ``CLASSIFIER_``; infra names are shared)."""

    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", extra="ignore", populate_by_name=True)

    service_name: str = "classifier"
    mongodb_database: str = Field(default="laifaxin_classifier", description="The classifier's own database.")
    http_host: str = Field(default="0.0.0.0", description="Bind address of /healthz, /readyz, /metrics.")  # noqa: S104
    http_port: int = Field(default=8081, description="Port of /healthz, /readyz, /metrics, /asyncapi.")

    def secret_fields(self) -> dict[str, SecretStr]:
        """None: the classifier decrypts no credential, so its Deployment is given no key ring
        (deploy/k8s/README.md) and a production pod must not be refused for the ring's development default."""
        return {}


def classify_event(classifier: Classifier, event: MailReceived) -> MailClassified:
    """Classify one received message into its ``mail.classified`` event (pure; no I/O).

    The event id is deterministic per message (see module docstring).
    """
    started = time.perf_counter()
    result = classifier.classify(ClassifierInput.from_event(event))
    LATENCY.observe(time.perf_counter() - started)
    classified = to_mail_classified(event, result)
    return classified.model_copy(update={"event_id": event.ref.derived_event_id("mail.classified")})


@dataclass
class Runtime:
    """What the handler needs at run time."""

    settings: ClassifierSettings
    broker: KafkaBroker
    classifier: Classifier
    db: Any


async def handle_mail_received(rt: Runtime, event: MailReceived) -> MailClassified | None:
    """Classify and publish once; returns the published event, or None for a recognised redelivery."""
    classified = classify_event(rt.classifier, event)
    if await rt.db.classified.find_one({"event_id": str(classified.event_id)}, {"_id": 1}):
        DUPLICATES.inc()
        return None
    await publish_event(rt.broker, classified, prefix=rt.settings.topic_prefix)
    await insert_unique(
        rt.db.classified,
        {
            "event_id": str(classified.event_id),
            "message": event.ref.natural_key(),
            "category": classified.category,
            "received_event_id": str(event.event_id),
            "tenant_id": event.tenant_id,
        },
    )
    CLASSIFIED.labels(classified.category).inc()
    log.info(
        "classified",
        mailbox_id=event.ref.mailbox_id,
        uid=event.ref.uid,
        category=classified.category,
        confidence=round(classified.confidence, 3),
        reasons=classified.reasons,
    )
    return classified


def create_app(settings: ClassifierSettings | None = None) -> AsgiFastStream:
    """The ASGI app: the Kafka consumer plus /healthz, /readyz, /metrics and /asyncapi (FastStream docs)."""
    settings = settings or ClassifierSettings()
    broker = make_broker(settings, description="Laifaxin classifier: mail.received -> mail.classified")
    mongo = make_mongo_client(settings.mongodb_url.get_secret_value(), appname=settings.service_name)
    db = mongo[settings.mongodb_database]
    state: dict[str, Runtime] = {}

    declare_publishers(broker, settings, "mail.classified")  # for the AsyncAPI document

    @broker.subscriber(
        settings.topic("mail.received"),
        **subscriber_options(GROUP_ID),
        title="mail.received:classifier",
        description="Classify each new message.",
    )
    async def on_mail_received(event: MailReceived) -> None:
        await handle_mail_received(state["rt"], event)

    async def startup() -> None:
        configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
        t0 = time.perf_counter()
        classifier = Classifier()
        log.info("model loaded", seconds=round(time.perf_counter() - t0, 3))
        await ensure_indexes(db, INDEXES)
        state["rt"] = Runtime(settings, broker, classifier, db)

    async def shutdown() -> None:
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


__all__ = ["ClassifierSettings", "Document", "classify_event", "create_app", "handle_mail_received", "main"]
