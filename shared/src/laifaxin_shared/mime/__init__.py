"""MIME parsing shared by sync and the classifier: raw RFC 5322 bytes -> ``mail.received`` content fields or quarantine.

Public API: :func:`parse_message`, :class:`ParsedMessage`, :class:`QuarantineError`,
:data:`CLASSIFICATION_HEADERS`, :data:`MAX_MESSAGE_BYTES`, :class:`MimeLimits` and :func:`check_limits`
(structure limits checked before parsing), and :func:`decode_bytes` (charset rules).

Use in the fetch path (pure and synchronous; about a millisecond for typical mail; the limits bound the work a
hostile message can cause, but a service should still parse mail off its event loop, in a process it can stop
at a CPU-time deadline, as sync's parse pool does)::

    try:
        parsed = parse_message(raw)
    except QuarantineError as exc:  # not a message: store raw, publish to mail.received.dlq
        ...  # exc.reason (short code), exc.detail (human text)
    else:
        event = parsed.to_event(tenant_id=..., user_id=..., mailbox_id=..., folder="INBOX",
                                uidvalidity=..., uid=..., raw_ref=..., initial_sync=...)

``parsed.message_id`` (or ``parsed.content_hash`` when it is empty) is the de-duplication key;
``parsed.defects`` lists damage that was worked around (log it, do not quarantine on it).
"""

from .charsets import decode_bytes
from .limits import MimeLimits, check_limits
from .message import (
    CLASSIFICATION_HEADERS,
    MAX_MESSAGE_BYTES,
    ParsedMessage,
    QuarantineError,
    QuarantineReason,
    parse_message,
)

__all__ = [
    "CLASSIFICATION_HEADERS",
    "MAX_MESSAGE_BYTES",
    "MimeLimits",
    "ParsedMessage",
    "QuarantineError",
    "QuarantineReason",
    "check_limits",
    "decode_bytes",
    "parse_message",
]
