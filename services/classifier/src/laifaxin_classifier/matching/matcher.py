"""The matcher: which sent message a received one answers (or reports on), and how that was decided.

Methods, tried in this order (the first that finds a sent message wins; :data:`CONFIDENCE` per method):

1. ``in_reply_to`` / ``references``: the reply's In-Reply-To, then its References newest first, name a sent
   Message-ID or the provider's rewritten one (RFC 5322 section 3.6.4).
2. ``reply_token``: a To, Cc, Delivered-To or X-Original-To address ``local+TOKEN@domain`` (RFC 5233) carries a
   token that verifies (:mod:`laifaxin_shared.replytoken`); a forged, tampered, expired or unknown-key token is
   ignored and counted (``classifier_reply_tokens_rejected_total``).
3. ``dsn``: a delivery status notification (RFC 3464) whose returned message or quoted headers carry a sent
   Message-ID, or whose failed recipient was sent to from this mailbox within :attr:`Matcher.dsn_window`.
4. ``heuristic``: the sender was a recipient of this mailbox within :attr:`Matcher.heuristic_window` and the
   subject is that message's subject behind at least one reply prefix (:mod:`.subjects`); the newest such send
   wins (the same subject sent by two campaigns to one recipient is ambiguous and left unmatched). Not applied to
   bounces.

Every lookup stays in the scope of the receiving mailbox (:mod:`.records`): a tenant's sent mail never matches
another tenant's mail; the system mailbox searches the system-mailbox sends of every tenant, and the match names
the owner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import Counter

from laifaxin_shared.events import MailClassified, MailReceived, MatchMethod, ReplyMatch
from laifaxin_shared.replytoken import ReplyTokens, VerifiedToken, token_from_address

from .dsn import failed_recipients, is_bounce, original_message_ids
from .records import SentRecord, digest_hex, tenant_scope
from .registry import SentRegistry
from .subjects import reply_subject, subject_key

CONFIDENCE: dict[MatchMethod, float] = {
    "in_reply_to": 1.0,
    "references": 0.98,
    "reply_token": 0.99,
    "dsn": 0.97,
    "heuristic": 0.8,
}
DSN_BY_RECIPIENT_CONFIDENCE = 0.9
HEURISTIC_AMBIGUOUS_CONFIDENCE = 0.65

TOKENS_REJECTED = Counter(
    "classifier_reply_tokens_rejected_total",
    "Reply tokens that did not verify (ignored), by reason",
    ["reason"],
)
_TOKEN_SHAPE = re.compile(r"^[a-z0-9]{1,8}\.[a-z2-7]{16,}$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The match of one received message, or the keys a late mail.sent could match it by."""

    match: ReplyMatch | None
    system_mailbox: bool
    keys: tuple[str, ...] = ()
    rejected_tokens: tuple[str, ...] = ()


@dataclass
class Matcher:
    """Matches received messages against a :class:`SentRegistry`.

    Args:
        registry: the sent messages.
        tokens: the reply token key ring (None: the token method is off).
        system_tenant_id: tenant of the platform's system mailbox (binding's ``BINDING_SYSTEM_TENANT_ID``);
            mail of that tenant is system-mailbox mail.
        heuristic_window: how far back the heuristic looks for a send to the sender.
        dsn_window: how far back a bounce's failed recipient is looked up.
    """

    registry: SentRegistry
    tokens: ReplyTokens | None = None
    system_tenant_id: str = "laifaxin-system"
    heuristic_window: timedelta = field(default_factory=lambda: timedelta(days=30))
    dsn_window: timedelta = field(default_factory=lambda: timedelta(days=14))

    def is_system(self, ev: MailReceived) -> bool:
        """Whether the message arrived in the system mailbox."""
        return ev.tenant_id == self.system_tenant_id

    async def match(self, ev: MailReceived, classified: MailClassified | None = None) -> Outcome:
        """Match one message (``classified``: its classification, used for bounces)."""
        system = self.is_system(ev)
        scope = tenant_scope(ev.tenant_id, system=system)
        keys: list[str] = []
        # 1. threading headers
        if ev.in_reply_to:
            d = digest_hex(ev.in_reply_to)
            keys.append(f"id:{scope}|{d}")
            record = await self.registry.find(scope, [d])
            if record is not None:
                return self._found(record, "in_reply_to", ev, system, classified)
        refs = [digest_hex(r) for r in reversed(ev.references) if r]
        if refs:
            keys += [f"id:{scope}|{d}" for d in refs]
            record = await self.registry.find(scope, refs)
            if record is not None:
                return self._found(record, "references", ev, system, classified)
        # 2. reply tokens
        verified, rejected = self._tokens(ev)
        if verified:
            digests = [v.digest_hex for v in verified]
            keys += [f"id:{scope}|{d}" for d in digests]
            record = await self.registry.find(scope, digests)
            if record is not None:
                return self._found(record, "reply_token", ev, system, classified)
        when = reference_time(ev)
        mailbox = ev.ref.mailbox_id
        # 3. delivery status notifications
        if is_bounce(classified, ev):
            ids = [digest_hex(i) for i in original_message_ids(ev)]
            keys += [f"id:{scope}|{d}" for d in ids]
            record = await self.registry.find(scope, ids) if ids else None
            if record is not None:
                return self._found(record, "dsn", ev, system, classified)
            for rcpt in failed_recipients(ev, classified):
                keys.append(f"rc:{scope}|{mailbox}|{rcpt}")
                sent = await self.registry.sent_to(
                    scope, mailbox, rcpt, since=when - self.dsn_window, until=when + timedelta(hours=1)
                )
                if sent:
                    return self._found(
                        sent[0],
                        "dsn",
                        ev,
                        system,
                        classified,
                        recipient=rcpt,
                        confidence=DSN_BY_RECIPIENT_CONFIDENCE,
                    )
            return Outcome(None, system, tuple(dict.fromkeys(keys)), rejected)
        # 4. heuristic: a recent recipient answering under the sent subject
        sender = (ev.from_.email if ev.from_ else "").strip().lower()
        stripped = reply_subject(ev.subject)
        if sender and stripped is not None and stripped[1] > 0:
            keys.append(f"rc:{scope}|{mailbox}|{sender}")
            wanted = subject_key(stripped[0])
            sent = await self.registry.sent_to(
                scope, mailbox, sender, since=when - self.heuristic_window, until=when + timedelta(hours=1)
            )
            same = [s for s in sent if s.subject_key == wanted]
            if len({s.campaign_id for s in same}) > 1:
                keys.pop()  # sends of different campaigns under one subject: no way to tell which; no guess
                same = []
            if same:
                confidence = CONFIDENCE["heuristic"] if len(same) == 1 else HEURISTIC_AMBIGUOUS_CONFIDENCE
                return self._found(same[0], "heuristic", ev, system, classified, confidence=confidence)
        return Outcome(None, system, tuple(dict.fromkeys(keys)), rejected)

    def _tokens(self, ev: MailReceived) -> tuple[list[VerifiedToken], tuple[str, ...]]:
        if self.tokens is None:
            return [], ()
        addresses = [a.email for a in (*ev.to, *ev.cc)]
        for name in ("delivered-to", "x-original-to"):
            addresses += ev.headers.get(name, "").split("\n")
        verified: list[VerifiedToken] = []
        rejected: list[str] = []
        for address in dict.fromkeys(a.strip().strip("<>") for a in addresses if "+" in a):
            token = token_from_address(address)
            if token is None or not _TOKEN_SHAPE.match(token):
                continue  # a plain sub-address (user+news@), not a token
            result = self.tokens.verify(token)
            if isinstance(result, VerifiedToken):
                verified.append(result)
            else:
                TOKENS_REJECTED.labels(result.reason).inc()
                rejected.append(result.reason)
        return verified, tuple(rejected)

    def _found(
        self,
        record: SentRecord,
        method: MatchMethod,
        ev: MailReceived,
        system: bool,
        classified: MailClassified | None,
        *,
        recipient: str | None = None,
        confidence: float | None = None,
    ) -> Outcome:
        if recipient is None:
            candidates = (
                failed_recipients(ev, classified)
                if is_bounce(classified, ev)
                else [ev.from_.email.lower()]
                if ev.from_
                else []
            )
            recipient = next((c for c in candidates if c in record.recipients), None)
            if recipient is None and len(record.recipients) == 1:
                recipient = record.recipients[0]
        match = ReplyMatch(
            sent_message_id=record.message_id,
            sent_mailbox_id=record.mailbox_id,
            sent_event_id=record.event_id or None,
            owner_tenant_id=record.tenant_id,
            owner_user_id=record.user_id,
            campaign_id=record.campaign_id,
            recipient=recipient,
            method=method,
            confidence=CONFIDENCE[method] if confidence is None else confidence,
            system_mailbox=record.system,
        )
        return Outcome(match, system)


def reference_time(ev: MailReceived) -> datetime:
    """When the message was written or received: Date, else INTERNALDATE, arrival, or the event time."""
    return ev.date or ev.internal_date or ev.arrived_at or ev.occurred_at
