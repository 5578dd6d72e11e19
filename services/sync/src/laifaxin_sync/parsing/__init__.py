"""MIME parsing for the sync service: raw RFC 5322 bytes -> ``mail.received`` content fields or quarantine.

Public API: :func:`parse_message`, :class:`ParsedMessage`, :class:`QuarantineError`,
:data:`CLASSIFICATION_HEADERS`, :data:`MAX_MESSAGE_BYTES`, and :func:`decode_bytes` (charset rules).
"""

from .charsets import decode_bytes
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
    "ParsedMessage",
    "QuarantineError",
    "QuarantineReason",
    "decode_bytes",
    "parse_message",
]
