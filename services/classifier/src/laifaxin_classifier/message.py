"""What the classifier looks at: :class:`ClassifierInput`, built from a ``mail.received`` event or from raw
RFC 5322 bytes.

Both constructors run the service's own path: :meth:`ClassifierInput.from_bytes` parses with the shared MIME
parser (:func:`laifaxin_shared.mime.parse_message`, the one sync uses), builds the ``mail.received`` event sync
would publish, and reads it with :meth:`ClassifierInput.from_event`. The CLI and the service therefore see the
same subject, headers and text for the same message.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from flufl.bounce import all_failures

from laifaxin_shared.events.mail import TEXT_CAP_CHARS, AttachmentMeta, MailReceived
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mime import QuarantineError, decode_bytes, parse_message

log = get_logger(__name__)

RAW_CAP_BYTES = 4 * 1024 * 1024
"""Most bytes of a raw message parsed; the rest (usually attachments) is ignored and noted in ``defects``."""


@dataclass(frozen=True, slots=True)
class ClassifierInput:
    """One message as the classifier sees it.

    ``headers`` maps lowercased field names to decoded values (repeated fields joined with ``"\\n"``);
    ``text`` is the body as plain text (HTML reduced), at most :data:`TEXT_CAP_CHARS` characters, still with
    quoted history (the classifier strips it). ``delivery_status`` is the text of a message/delivery-status
    part (RFC 3464). ``failed_recipients`` are addresses a bounce names (X-Failed-Recipients, or what
    flufl.bounce's MTA detectors found). ``defects`` names what went wrong while parsing (e.g.
    ``"charset-fallback"``, ``"binary-garbage"``, ``"raw-truncated"``), for the classifier's reasons. ``date`` is
    the Date header (aware), used to fill the year of an out-of-office return date.
    """

    subject: str = ""
    from_addr: str = ""
    from_name: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    content_type: str = "text/plain"
    report_type: str | None = None
    delivery_status: str | None = None
    attachments: tuple[AttachmentMeta, ...] = ()
    html_only: bool = False
    text_truncated: bool = False
    in_reply_to: str = ""
    date: datetime | None = None
    failed_recipients: tuple[str, ...] = ()
    defects: tuple[str, ...] = ()

    @classmethod
    def from_event(cls, ev: MailReceived) -> ClassifierInput:
        """The classifier's view of a ``mail.received`` event (no parsing; the event is already decoded)."""
        headers = {k.lower(): v for k, v in ev.headers.items()}
        failed = tuple(a.strip() for a in headers.get("x-failed-recipients", "").split(",") if a.strip())
        text, text_defects = _screen_text(ev.text)
        return cls(
            subject=ev.subject,
            from_addr=(ev.from_.email if ev.from_ else "").lower(),
            from_name=ev.from_.name if ev.from_ else "",
            headers=headers,
            text=text,
            content_type=ev.content_type.lower(),
            report_type=ev.report_type.lower() if ev.report_type else None,
            delivery_status=ev.delivery_status,
            attachments=tuple(ev.attachments),
            html_only=ev.html_only,
            text_truncated=ev.text_truncated,
            in_reply_to=ev.in_reply_to,
            date=ev.date,
            failed_recipients=failed,
            defects=text_defects,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ClassifierInput:
        """Parse one RFC 5322 message (bytes as stored, CRLF or LF) exactly as sync would, then read the event.

        Never raises on bad input: bytes the shared parser quarantines are decoded as best it can and the
        reason is in ``defects`` (``unparseable:<reason>``). Bytes past :data:`RAW_CAP_BYTES` are ignored
        (``"raw-truncated"``). Failed recipients of a bounce are completed with flufl.bounce's MTA detectors.
        """
        defects: list[str] = []
        if len(raw) > RAW_CAP_BYTES:
            raw = raw[:RAW_CAP_BYTES]
            defects.append("raw-truncated")
        try:
            parsed = parse_message(raw)
        except QuarantineError as exc:
            return _unparseable(raw, exc, defects)
        event = parsed.to_event(
            tenant_id="local",
            user_id="local",
            mailbox_id="local",
            folder="INBOX",
            uidvalidity=1,
            uid=1,
            raw_ref="local",
        )
        base = cls.from_event(event)
        failed = base.failed_recipients
        from_addr = base.from_addr
        if not failed and (
            base.delivery_status or base.content_type == "multipart/report" or _BOUNCE_SENDER.match(from_addr)
        ):
            failed = tuple(_flufl_recipients(raw))
        parser_defects = [d.replace("_", "-") for d in parsed.defects]
        return dataclasses.replace(
            base,
            failed_recipients=failed,
            defects=(*defects, *parser_defects, *base.defects),
        )


_GARBAGE_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\ufffd]")


def _screen_text(text: str) -> tuple[str, tuple[str, ...]]:
    """Drop text that is mostly control or replacement characters (binary mislabelled as text)."""
    sample = text[:4000]
    if sample and len(_GARBAGE_CHARS.findall(sample)) > 0.1 * len(sample):
        return "", ("binary-garbage",)
    return text, ()


def _unparseable(raw: bytes, exc: QuarantineError, defects: list[str]) -> ClassifierInput:
    """Input for bytes the shared parser refuses: their best-effort text, and why."""
    decoded = decode_bytes(raw[: TEXT_CAP_CHARS * 4])
    text, screen = _screen_text(decoded.text[:TEXT_CAP_CHARS].strip())
    extra = [f"unparseable:{exc.reason}"]
    if decoded.defect:
        extra.append("charset-fallback")
    return ClassifierInput(text=text, defects=(*defects, *extra, *screen))


_BOUNCE_SENDER = re.compile(r"^(mailer[-_]?daemon|post[-_]?master)@", re.IGNORECASE)


def _flufl_recipients(raw: bytes) -> list[str]:
    """Failed recipients found by flufl.bounce's per-MTA detectors (Mailman's bounce library)."""
    compat = email.message_from_bytes(raw, policy=email.policy.compat32)
    # flufl.bounce logs a full traceback (log.exception) before re-raising when a detector chokes on a
    # malformed bounce; we handle that case below, so its logger is held at CRITICAL for the call.
    flufl_log = logging.getLogger("flufl.bounce")
    previous = flufl_log.level
    flufl_log.setLevel(logging.CRITICAL)
    try:
        temporary, permanent = all_failures(compat)
    except (ValueError, TypeError, LookupError, IndexError, AttributeError, UnicodeError) as exc:
        log.debug("flufl_bounce_detector_failed", error=type(exc).__name__, detail=str(exc)[:200])
        return []  # the rules still see the text and the delivery-status part
    finally:
        flufl_log.setLevel(previous)
    found = sorted({*permanent, *temporary})
    return [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in found][:20]
