"""Reply matching's part of the classifier service: its settings, start-up, the ``mail.sent`` consumer, and the
publishing of what :class:`~.pipeline.ReplyMatching` returns. The classifier's consumer calls
:meth:`ReplyMatching.on_classified` where a batch of classified messages becomes mail.classified events and
publishes the result with :func:`publish_results`.

``mail.sent`` is consumed in batches by its own group (:data:`SENT_GROUP`; joining it never rebalances the
classifier's ``mail.received`` group); a record that is not a valid mail.sent goes to ``mail.sent.dlq`` and the
batch goes on. Offsets are committed after the batch is stored and its late matches are published
(``NACK_ON_ERROR``: a failure seeks back and the batch is redelivered; storing and matching are idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError

from laifaxin_shared.events import MailSent
from laifaxin_shared.kafka import (
    describe_validation_error,
    publish_dead_letter,
    publish_event,
    subscriber_options,
)
from laifaxin_shared.logging import get_logger
from laifaxin_shared.replytoken import ReplyTokens

from .cli import DEV_REPLY_TOKEN_KEYS
from .matcher import Matcher
from .pipeline import Published, ReplyMatching
from .registry import MongoRegistry

log = get_logger(__name__)

SENT_GROUP = "classifier-sent"
PRUNE_EVERY_S = 3600.0


class MatchingSettings(BaseModel):
    """Reply matching settings; mixed into the classifier's settings (env prefix ``CLASSIFIER_``)."""

    system_tenant_id: str = Field(
        default="laifaxin-system",
        validation_alias=AliasChoices(
            "system_tenant_id", "CLASSIFIER_SYSTEM_TENANT_ID", "BINDING_SYSTEM_TENANT_ID"
        ),
        description="Tenant of the system mailbox (binding's BINDING_SYSTEM_TENANT_ID): its mail is routed by the "
        "match to the campaign owner, and alerts nobody unmatched.",
    )
    reply_token_keys: SecretStr = Field(
        default=SecretStr(DEV_REPLY_TOKEN_KEYS),
        validation_alias=AliasChoices(
            "reply_token_keys", "CLASSIFIER_REPLY_TOKEN_KEYS", "LAIFAXIN_REPLY_TOKEN_KEYS"
        ),
        description="Key ring of the reply tokens send signs ('key_id:base64key' pairs; the same ring as send's).",
    )
    reply_token_active_key_id: str = Field(
        default="dev",
        validation_alias=AliasChoices(
            "reply_token_active_key_id",
            "CLASSIFIER_REPLY_TOKEN_ACTIVE_KEY_ID",
            "LAIFAXIN_REPLY_TOKEN_ACTIVE_KEY_ID",
        ),
        description="Key id of the ring that signs new tokens (verification accepts every key of the ring).",
    )
    match_pending_days: float = Field(
        default=7.0, gt=0, description="How long an unmatched message waits for a late mail.sent (days)."
    )
    match_heuristic_days: float = Field(
        default=30.0, gt=0, description="How far back the sender/subject heuristic looks for a send (days)."
    )
    match_store_lookups: bool = Field(
        default=True,
        description="On an in-memory index miss for a Message-ID or token, look it up in the database by _id "
        "(finds what another classifier replica stored).",
    )
    sent_batch_max_records: int = Field(default=500, ge=1, description="Most mail.sent records per batch.")


async def build_matching(settings: MatchingSettings, db: Any) -> ReplyMatching:
    """The registry in ``db`` with its index loaded, and the matcher.

    Raises:
        laifaxin_shared.crypto.KeyRingError: the reply token key ring is malformed.
    """
    registry = MongoRegistry(db, store_lookups=settings.match_store_lookups)
    loaded = await registry.load()
    tokens = ReplyTokens.parse(
        settings.reply_token_keys.get_secret_value(), settings.reply_token_active_key_id
    )
    log.info("sent registry loaded", sent_messages=loaded)
    return ReplyMatching(
        registry,
        Matcher(
            registry,
            tokens,
            system_tenant_id=settings.system_tenant_id,
            heuristic_window=timedelta(days=settings.match_heuristic_days),
        ),
        pending_window=timedelta(days=settings.match_pending_days),
    )


async def publish_results(broker: KafkaBroker, prefix: str, published: Published) -> None:
    """Publish contact statuses (mail.classified events are published by the caller, in its order)."""
    await asyncio.gather(*(publish_event(broker, s, prefix=prefix) for s in published.statuses))


def register_sent_consumer(
    broker: KafkaBroker,
    topic: str,
    prefix: str,
    batch_max_records: int,
    matching: Callable[[], ReplyMatching],
) -> None:
    """Attach the ``mail.sent`` batch consumer (group :data:`SENT_GROUP`) to ``broker``."""
    last_prune = [0.0]

    @broker.subscriber(
        topic,
        batch=True,
        max_records=batch_max_records,
        title="mail.sent:classifier-sent",
        description="Record sent messages for reply matching; match the replies that arrived before them.",
        **subscriber_options(SENT_GROUP),
    )
    async def on_mail_sent(msg: KafkaMessage) -> None:
        records: list[Any] = list(msg.raw_message)  # type: ignore[arg-type]
        events: list[MailSent] = []
        for record in records:
            try:
                events.append(MailSent.model_validate_json(record.value or b""))
            except ValidationError as exc:
                await publish_dead_letter(
                    broker,
                    record,
                    error=describe_validation_error(exc),
                    error_type="ValidationError",
                    group_id=SENT_GROUP,
                )
        m = matching()
        late = await m.on_sent(events)
        await asyncio.gather(*(publish_event(broker, c, prefix=prefix) for c in late.classified))
        await publish_results(broker, prefix, late)
        loop = asyncio.get_running_loop()
        if loop.time() - last_prune[0] > PRUNE_EVERY_S and isinstance(m.registry, MongoRegistry):
            last_prune[0] = loop.time()
            deleted = await m.registry.prune()
            log.info("expired waiting messages deleted", deleted=deleted)
