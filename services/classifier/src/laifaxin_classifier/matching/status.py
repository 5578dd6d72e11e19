"""Contact status: what a matched answer says about mailing its recipient again (topic ``contact.status``).

From the classification of the matched message: ``ooo`` -> ``out_of_office`` (with the return date the
classifier read); ``bounce`` -> ``bounced_hard`` for a permanent failure (RFC 3463 class 5), else
``bounced_soft`` (class 4, or a report that does not say: retrying later is the cautious reading);
``rejection`` -> ``opted_out``; a spam complaint (ARF, RFC 5965, a ``report:feedback-report`` reason) ->
``opted_out``; ``to_reply`` and ``inquiry`` -> ``replied``; other notifications set nothing.
"""

from __future__ import annotations

from laifaxin_shared.events import (
    ContactEvidence,
    ContactStatus,
    ContactStatusKind,
    MailClassified,
    contact_event_id,
)


def status_kind(classified: MailClassified) -> ContactStatusKind | None:
    """The status a classified answer sets, or None."""
    category = classified.category
    if category == "ooo":
        return "out_of_office"
    if category == "bounce":
        return (
            "bounced_hard"
            if classified.bounce is not None and classified.bounce.kind == "hard"
            else "bounced_soft"
        )
    if category == "rejection":
        return "opted_out"
    if category in ("to_reply", "inquiry"):
        return "replied"
    if any(r.startswith("report:feedback-report") for r in classified.reasons):
        return "opted_out"
    return None


def contact_status(classified: MailClassified) -> ContactStatus | None:
    """The ``contact.status`` event of a classified message that carries a match with a recipient, else None.

    Tenant and user are the sent message's owner; ``event_id`` is derived from the received message and the
    recipient (a redelivery yields the same event); ``occurred_at`` is when the answer was classified.
    """
    match = classified.match
    if match is None or not match.recipient:
        return None
    kind = status_kind(classified)
    if kind is None:
        return None
    return ContactStatus(
        event_id=contact_event_id(classified.ref, match.recipient),
        occurred_at=classified.occurred_at,
        tenant_id=match.owner_tenant_id,
        user_id=match.owner_user_id,
        recipient=match.recipient,
        status=kind,
        return_date=classified.ooo_return_date if kind == "out_of_office" else None,
        bounce=classified.bounce if kind.startswith("bounced") else None,
        evidence=ContactEvidence(
            sent_message_id=match.sent_message_id,
            sent_mailbox_id=match.sent_mailbox_id,
            campaign_id=match.campaign_id,
            method=match.method,
            confidence=match.confidence,
            reply=classified.ref,
            received_event_id=classified.received_event_id,
            reasons=classified.reasons,
        ),
    )
