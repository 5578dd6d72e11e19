"""Reply matching inside the classifier service: one batch of classified messages in, the events to publish out;
one batch of mail.sent in, the late matches out. No Kafka here; the service publishes what these return.

Routing: a match on mail that arrived in the system mailbox makes ``tenant_id`` / ``user_id`` of its
mail.classified the campaign owner's, so notify alerts that owner with their preferences. Unmatched system
mail keeps the system tenant and ``system_mailbox=true``: notify alerts nobody for it
(``classifier_system_unmatched_total`` counts it).

Late mail.sent (topics are not ordered against each other): an unmatched message waits
:attr:`ReplyMatching.pending_window` under the keys a sent message could match it by (:class:`Outcome.keys`).
When a mail.sent arrives, the messages waiting on its keys are matched again; each match is claimed once
(insert-first in ``matched``), so a redelivered mail.sent publishes nothing new. A late match publishes the
contact status, and for system-mailbox mail a mail.classified with the match and the owner, under an event id
derived from the message (:func:`late_event_id`) — the owner is alerted once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from laifaxin_shared.events import ContactStatus, MailClassified, MailReceived, MailSent, ReplyMatch
from laifaxin_shared.logging import get_logger

from .matcher import Matcher
from .records import SentRecord
from .registry import PendingReply, SentRegistry
from .status import contact_status

log = get_logger(__name__)

MATCHED = Counter(
    "classifier_replies_matched_total", "Received messages tied to a sent one, by method", ["method"]
)
LATE_MATCHED = Counter("classifier_replies_late_matched_total", "Matches found when a late mail.sent arrived")
UNMATCHED = Counter("classifier_replies_unmatched_total", "Received messages not tied to a sent one")
SYSTEM_UNMATCHED = Counter(
    "classifier_system_unmatched_total", "System-mailbox messages not tied to a sent one (nobody alerted)"
)
SENT_RECORDED = Counter(
    "classifier_sent_recorded_total", "mail.sent events stored in the registry (new ones)"
)
STATUSES = Counter("classifier_contact_status_total", "contact.status events, by status", ["status"])

_LATE_NAMESPACE = uuid.UUID("9a4f1c2e-7d3b-5e8a-b1c6-0f2e4d6a8c13")


def late_event_id(received_natural_key: str) -> uuid.UUID:
    """Event id of the mail.classified re-published with a late match (UUID5 of the message's natural key)."""
    return uuid.uuid5(_LATE_NAMESPACE, f"mail.classified.late|{received_natural_key}")


def with_match(classified: MailClassified, match: ReplyMatch | None, *, system: bool) -> MailClassified:
    """``classified`` with its match; system-mailbox mail goes to the match's owner."""
    update: dict[str, object] = {"match": match, "system_mailbox": system}
    if system and match is not None:
        update["tenant_id"] = match.owner_tenant_id
        update["user_id"] = match.owner_user_id
    return classified.model_copy(update=update)


@dataclass
class Published:
    """What a step asks the service to publish."""

    classified: list[MailClassified] = field(default_factory=list)
    statuses: list[ContactStatus] = field(default_factory=list)


@dataclass
class ReplyMatching:
    """Reply matching for the classifier service (see the module docstring)."""

    registry: SentRegistry
    matcher: Matcher
    pending_window: timedelta = field(default_factory=lambda: timedelta(days=7))

    async def on_classified(self, pairs: Sequence[tuple[MailReceived, MailClassified]]) -> Published:
        """Match each classified message; returns the mail.classified events to publish (in order, one per
        pair, with the match) and the contact statuses."""
        out = Published()
        waiting: list[PendingReply] = []
        claims: dict[str, int] = {}
        now = datetime.now(UTC)
        # concurrently: an index miss that asks the database (another replica's send) overlaps the others
        outcomes = await asyncio.gather(*(self.matcher.match(ev, classified) for ev, classified in pairs))
        for (ev, classified), outcome in zip(pairs, outcomes, strict=True):
            result = with_match(classified, outcome.match, system=outcome.system_mailbox)
            if outcome.match is not None:
                MATCHED.labels(outcome.match.method).inc()
                if outcome.system_mailbox:
                    claims[ev.ref.natural_key()] = len(out.classified)
                status = contact_status(result)
                if status is not None:
                    out.statuses.append(status)
            else:
                UNMATCHED.inc()
                if outcome.system_mailbox:
                    SYSTEM_UNMATCHED.inc()
                if outcome.keys:
                    waiting.append(
                        PendingReply(
                            natural_key=ev.ref.natural_key(),
                            keys=outcome.keys,
                            received=ev.model_copy(update={"text": ""}).model_dump_json(by_alias=True),
                            classified=result.model_dump_json(by_alias=True),
                            expires_at=now + self.pending_window,
                        )
                    )
            out.classified.append(result)
        if claims:
            fresh = await self.registry.claim(list(claims))
            for key, index in claims.items():
                if key not in fresh:  # a late mail.sent matched it first: same event as that publish
                    out.classified[index] = out.classified[index].model_copy(
                        update={"event_id": late_event_id(key)}
                    )
        await self.registry.add_pending(waiting)
        for status in out.statuses:
            STATUSES.labels(status.status).inc()
        return out

    async def on_sent(self, events: Sequence[MailSent]) -> Published:
        """Record sent messages; returns what the messages that were waiting for them now publish."""
        records = [SentRecord.from_event(e) for e in events]
        fresh = await self.registry.add(records)
        SENT_RECORDED.inc(len(fresh))
        keys: list[str] = []
        for r in records:
            keys += [f"id:{r.scope}|{d}" for d in r.digests()]
            keys += [f"rc:{r.scope}|{r.mailbox_id}|{rcpt}" for rcpt in r.recipients]
        out = Published()
        found: list[tuple[PendingReply, MailClassified, bool]] = []
        for item in await self.registry.pending(keys):
            received = MailReceived.model_validate_json(item.received)
            classified = MailClassified.model_validate_json(item.classified)
            outcome = await self.matcher.match(received, classified)
            if outcome.match is not None:
                found.append(
                    (
                        item,
                        with_match(classified, outcome.match, system=outcome.system_mailbox),
                        outcome.system_mailbox,
                    )
                )
        if not found:
            return out
        claimed = await self.registry.claim([item.natural_key for item, _, _ in found])
        for item, result, system in found:
            if item.natural_key not in claimed:
                continue
            assert result.match is not None
            LATE_MATCHED.inc()
            MATCHED.labels(result.match.method).inc()
            if system:
                out.classified.append(result.model_copy(update={"event_id": late_event_id(item.natural_key)}))
            status = contact_status(result)
            if status is not None:
                STATUSES.labels(status.status).inc()
                out.statuses.append(status)
            log.info(
                "late match",
                message=item.natural_key,
                sent_message_id=result.match.sent_message_id,
                method=result.match.method,
            )
        return out
