"""What a delivery status notification says about the message it reports on: the original Message-ID and the
recipients that failed.

Sources, in order: the ``original_message_id`` / ``original_recipients`` the shared MIME parser read from the
returned message or headers (RFC 3464 section 2, RFC 6522 section 3: message/rfc822, text/rfc822-headers);
``Message-ID:`` lines of headers a non-standard bounce quotes in its text (qmail, Exim's "This is a copy of the
message, including all the headers", Chinese providers' 退信 pages); the per-recipient fields of the
message/delivery-status part (``Final-Recipient`` / ``Original-Recipient``, RFC 3464 section 2.3); Exim's
``X-Failed-Recipients``; what the classifier's bounce layer found; and addresses in the first 4,000 characters
of the text.
"""

from __future__ import annotations

import re

from laifaxin_shared.events import MailClassified, MailReceived

_MESSAGE_ID_LINE = re.compile(r"^[ \t>]*Message-ID:[ \t]*<([^<>\s]{3,998})>", re.IGNORECASE | re.MULTILINE)
_RECIPIENT_FIELD = re.compile(
    r"^(?:Final|Original)-Recipient:\s*(?:rfc822\s*;\s*)?<?([^\s<>;]+@[^\s<>;]+?)>?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_ADDRESS_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}")
MAX_IDS = 5


def is_bounce(classified: MailClassified | None, ev: MailReceived) -> bool:
    """The classifier called it a bounce, or it carries a delivery-status part."""
    if classified is not None and (classified.category == "bounce" or classified.flags.bounce):
        return True
    return bool(ev.delivery_status) or (ev.report_type or "").lower() == "delivery-status"


def original_message_ids(ev: MailReceived) -> list[str]:
    """Message-IDs of the reported message: the parser's, then quoted ``Message-ID:`` lines (at most 5).

    The bounce's own Message-ID is left out (a quoted header block may repeat it).
    """
    own = ev.ref.message_id.strip("<>").lower()
    ids: list[str] = []
    if ev.original_message_id:
        ids.append(ev.original_message_id.strip().strip("<>"))
    for m in _MESSAGE_ID_LINE.finditer(ev.text):
        ids.append(m.group(1))
    out = [i for i in dict.fromkeys(ids) if i.lower() != own]
    return out[:MAX_IDS]


def failed_recipients(ev: MailReceived, classified: MailClassified | None) -> list[str]:
    """Recipients the report names, lowercased, most specific first."""
    found: list[str] = []
    if classified is not None and classified.bounce is not None and classified.bounce.recipient:
        found.append(classified.bounce.recipient)
    found += _RECIPIENT_FIELD.findall(ev.delivery_status or "")
    found += [a for a in ev.headers.get("x-failed-recipients", "").replace("\n", ",").split(",")]
    found += ev.original_recipients
    # Non-standard bounces (qmail, Chinese providers' 退信) name the address only in their text; an address found
    # there only matters if this mailbox sent to it lately, which the matcher checks.
    own = {a.email.lower() for a in (*ev.to, *ev.cc)} | {(ev.from_.email.lower() if ev.from_ else "")}
    found += [a for a in _ADDRESS_IN_TEXT.findall(ev.text[:4000]) if a.lower() not in own][:10]
    return [a for a in dict.fromkeys(x.strip().strip("<>").lower() for x in found) if "@" in a][:20]
