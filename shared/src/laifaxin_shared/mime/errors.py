"""Why bytes are quarantined instead of parsed: :class:`QuarantineError` and its reasons."""

from __future__ import annotations

from typing import Literal

__all__ = ["QuarantineError", "QuarantineReason"]

QuarantineReason = Literal[
    "empty",
    "too_large",
    "no_headers",
    "not_a_message",
    "parser_error",
    "header_too_large",
    "too_many_encoded_words",
    "too_many_parts",
    "too_deep",
    "parse_budget_exceeded",
    "event_too_large",
]


class QuarantineError(Exception):
    """The bytes cannot be understood as a message at all, or not within the parsing budget; store them and
    send a dead letter to ``mail.received.dlq``.

    ``reason`` is a short code (:data:`QuarantineReason`): ``empty`` (no bytes or only whitespace),
    ``too_large`` (over ``max_size``), ``no_headers`` (no RFC 5322 header field before the body),
    ``not_a_message`` (header fields, but none a message has), ``parser_error`` (the stdlib parser failed in a
    way not handled per header or part); over a :class:`~laifaxin_shared.mime.MimeLimits` limit, found before
    parsing: ``header_too_large`` (a header block, one field or one header line), ``too_many_encoded_words``
    (RFC 2047 words in one field), ``too_many_parts`` (MIME parts: boundary delimiter lines or boundary
    declarations), ``too_deep`` (nested multiparts); set by the caller that runs the parser:
    ``parse_budget_exceeded`` (the parse took more than its CPU time budget), ``event_too_large`` (the
    ``mail.received`` record built from it is larger than the broker accepts). ``detail`` is human text for
    operators.
    """

    def __init__(self, reason: QuarantineReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: QuarantineReason = reason
        self.detail = detail
