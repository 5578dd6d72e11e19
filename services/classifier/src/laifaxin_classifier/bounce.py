"""Delivery failure reports: detection and what the report says.

Sources: RFC 3464 (message/delivery-status fields Action, Status, Final-Recipient, Diagnostic-Code), RFC 3463
(enhanced status codes: class 5 permanent, class 4 persistent transient), RFC 6522 (multipart/report), Exim's
X-Failed-Recipients, Microsoft's X-MS-Exchange-Message-Is-Ndr, and the body phrases of common MTAs as collected
by Sisimai (lib/sisimai/lhost/*.rb) and flufl.bounce (``_detectors/simplematch.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from laifaxin_shared.events.mail import BounceInfo

from .message import ClassifierInput

_SENDER = re.compile(
    r"^(?:mailer[-_]?daemon|post[-_]?master|mail[-_]?delivery[-_]?(?:system|subsystem)?|"
    r"mdaemon|bounces?|returned[-_]?mail)(?:@|$)",
    re.IGNORECASE,
)
_SENDER_NAME = re.compile(
    r"mail delivery (?:system|subsystem)|mailer[- ]daemon|postmaster|"
    r"microsoft outlook|系统退信|退信",
    re.IGNORECASE,
)

_SUBJECT = re.compile(
    r"undeliver|undelivered mail|delivery status notification \(fail|delivery status notification \(delay|"
    r"delivery status notification|error sending your mail|delivery failure|delivery has failed|failure notice|mail delivery failed|returned mail|"
    r"delivery notification|could not be delivered|non[- ]?delivery|warning: could not send|"
    r"mail system error|message not delivered|nondeliverable|rejected:|delivery problem|"
    r"unzustellbar|nicht zustellbar|non remis|non distribuable|échec de la remise|no se puede entregar|"
    r"no entregado|não entregue|non recapitabile|onbestelbaar|не доставлено|недоставлен|"
    r"niedostarczon|iletilemedi|không gửi được|退信|系统退信|无法投递|無法傳遞|未送達|配信不能|"
    r"エラー|返送|تعذر التسليم",
)

_BODY = re.compile(
    r"this is the mail system at host|i'm sorry to have to inform you that your message could not|"
    r"this message was created automatically by mail delivery software|"
    r"a message that you sent could not be delivered|delivery to the following recipients? (?:failed|has failed)|"
    r"delivery has failed to these recipients|your message (?:could not|wasn't|was not) (?:be )?delivered|"
    r"the following addresses? had permanent fatal errors|permanent error|permanent failure|"
    r"this is a permanent error|the following message to <[^>]+> was undeliverable|"
    r"address not found|user unknown|no such user|mailbox (?:unavailable|not found|full|is full)|"
    r"recipient address rejected|undeliverable|undelivered mail|failed recipients|mail loop detected|could not be delivered|message delivery has been delayed|"
    r"delivery to the following recipient has been delayed|this is a delivery status notification|"
    r"remote host said:|smtp error from remote (?:mail server|server)|unrouteable address|"
    r"hi\. this is the qmail-send program|the mail system\b|returned to sender|"
    r"delivery incomplete|your email couldn't be delivered|message blocked|"
    r"域名不存在|邮箱不存在|用户不存在|退信|無法送達|投递失败|发送失败|配信できませんでした|"
    r"宛先不明|zustellung (?:ist )?fehlgeschlagen|konnte nicht zugestellt werden|"
    r"n'a pas pu être remis|no se pudo entregar|não pôde ser entregue|non è stato possibile recapitare|"
    r"kon niet worden bezorgd|не может быть доставлено|не удалось доставить|nie mógł zostać dostarczony|"
    r"teslim edilemedi|không thể gửi|لم يتم تسليم",
)

# MTA texts that only a bounce writes: one is enough.
_BODY_STRONG = re.compile(
    r"this is the mail system at host|i'm sorry to have to inform you that your message could not|"
    r"this message was created automatically by mail delivery software|hi\. this is the qmail-send program|"
    r"delivery has failed to these recipients|the following addresses? had permanent fatal errors|"
    r"could not be delivered to:|an error has occurred while attempting to deliver|"
    r"we had trouble delivering your message|\"notificationtype\"\s*:\s*\"bounce\"|"
    r"delivery to the following recipients? failed permanently|your message could not be delivered to",
)

_STATUS = re.compile(r"^Status:\s*([245])\.(\d{1,3})\.(\d{1,3})", re.IGNORECASE | re.MULTILINE)
_STATUS_IN_TEXT = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45])[0-9]{2}[ -]")
_ACTION = re.compile(r"^Action:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_FINAL_RCPT = re.compile(
    r"^(?:Final|Original)-Recipient:\s*(?:rfc822;\s*)?<?([^\s<>;]+@[^\s<>;]+)>?", re.IGNORECASE | re.MULTILINE
)
_DIAG = re.compile(r"^Diagnostic-Code:\s*(?:[\w-]+;\s*)?(.+(?:\n[ \t]+.+)*)", re.IGNORECASE | re.MULTILINE)
_SOFT_WORDS = re.compile(
    r"delayed|will retry|still trying|temporar|mailbox (?:is )?full|quota|over quota|"
    r"try again later|greylist|暂时|延迟",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class BounceVerdict:
    """A detected delivery failure: what it says and the rule names that fired."""

    info: BounceInfo
    reasons: tuple[str, ...]
    confidence: float


def detect_bounce(msg: ClassifierInput) -> BounceVerdict | None:
    """Decide whether ``msg`` is a delivery failure report; ``None`` when it is not.

    Strong signs (each enough): a multipart/report with report-type delivery-status or a
    message/delivery-status part (RFC 3464/6522); X-Failed-Recipients (Exim); X-MS-Exchange-Message-Is-Ndr.
    Weaker signs need two: a bounce sender (MAILER-DAEMON@, postmaster@, "Mail Delivery System"; RFC 5321
    section 4.5.5 null reverse-path shows as ``Return-Path: <>``), a bounce subject, a bounce body phrase.
    Hard vs soft comes from the first Status code (5.x.x hard, 4.x.x soft; RFC 3463), else from the
    Action field ("delayed" = soft) or body words.
    """
    h = msg.headers
    reasons: list[str] = []
    strong = False
    if msg.delivery_status or (msg.report_type == "delivery-status"):
        reasons.append("bounce:rfc3464-delivery-status")
        strong = True
    if "x-failed-recipients" in h:
        reasons.append("bounce:header:x-failed-recipients")
        strong = True
    if h.get("x-ms-exchange-message-is-ndr") is not None:
        reasons.append("bounce:header:x-ms-exchange-message-is-ndr")
        strong = True
    weak = 0
    if _SENDER.match(msg.from_addr) or _SENDER_NAME.search(msg.from_name):
        reasons.append("bounce:sender")
        weak += 1
    if h.get("return-path", "").strip() == "<>":
        reasons.append("bounce:null-return-path")
        weak += 1
    if _SUBJECT.search(msg.subject.lower()):
        reasons.append("bounce:subject")
        weak += 1
    body = msg.text[:6000].lower()
    if _BODY_STRONG.search(body):
        reasons.append("bounce:mta-text")
        weak += 2
    elif _BODY.search(body):
        reasons.append("bounce:body-phrase")
        weak += 1
    # A null Return-Path also marks auto-replies (RFC 3834 section 3.3), so it only helps the other signs.
    content_signs = weak - (1 if "bounce:null-return-path" in reasons else 0)
    if not strong and not (content_signs >= 2 or (content_signs >= 1 and _SENDER.match(msg.from_addr))):
        return None
    if not strong and "bounce:sender" not in reasons and _looks_auto_reply(msg):
        return None
    return BounceVerdict(info=bounce_info(msg), reasons=tuple(reasons), confidence=0.99 if strong else 0.95)


_FEEDBACK = re.compile(r"^Feedback-Type:\s*\w+", re.IGNORECASE | re.MULTILINE)
_FEEDBACK_SUBJECT = re.compile(
    r"complaint about message|abuse report|spam complaint|feedback report", re.IGNORECASE
)


def feedback_report(msg: ClassifierInput) -> str | None:
    """``"report:feedback-report"`` for an abuse / spam complaint report (ARF, RFC 5965: multipart/report with
    report-type=feedback-report, a ``Feedback-Type:`` field, or a complaint-report subject), else ``None``.
    Such a report says a recipient marked our mail as spam; it is machine-sent, so ``notification``."""
    if msg.report_type == "feedback-report" or _FEEDBACK.search(msg.text[:6000]):
        return "report:feedback-report"
    if _FEEDBACK_SUBJECT.search(msg.subject):
        return "report:feedback-report-subject"
    return None


def _looks_auto_reply(msg: ClassifierInput) -> bool:
    return bool(
        re.search(
            r"out of (?:the )?office|automatic reply|auto[- ]?reply|vacation|abwesen",
            msg.subject,
            re.IGNORECASE,
        )
    )


_HARD_WORDS = re.compile(
    r"permanent (?:error|failure)|failed permanently|fatal error|user unknown|no such user|does not exist|"
    r"address not found|mailbox not found|recipient not found|邮箱不存在|用户不存在|宛先不明",
    re.IGNORECASE,
)


def bounce_info(msg: ClassifierInput) -> BounceInfo:
    """What the report says: kind (hard/soft/unknown), failed recipient, status code, diagnostic text."""
    dsn = msg.delivery_status or ""
    status: str | None = None
    kind: Literal["hard", "soft", "unknown"] = "unknown"
    m = _STATUS.search(dsn)
    if m is None:
        m = _STATUS_IN_TEXT.search(msg.text[:6000])
    if m is not None:
        status = f"{m.group(1)}.{m.group(2)}.{m.group(3)}"
        kind = "hard" if m.group(1) == "5" else "soft" if m.group(1) == "4" else "unknown"
    if kind == "unknown":
        action = _ACTION.search(dsn)
        if action is not None and action.group(1).lower() == "delayed":
            kind = "soft"
        elif action is not None and action.group(1).lower() == "failed":
            kind = "hard"
        elif _SOFT_WORDS.search(msg.subject + "\n" + msg.text[:6000]):
            kind = "soft"
        elif _HARD_WORDS.search(msg.text[:6000]):
            kind = "hard"
        else:
            code = _SMTP_CODE.search(msg.text[:6000])
            if code is not None:
                kind = "hard" if code.group(1) == "5" else "soft"
    recipient: str | None = None
    r = _FINAL_RCPT.search(dsn)
    if r is not None:
        recipient = r.group(1)
    elif msg.failed_recipients:
        recipient = msg.failed_recipients[0]
    diagnostic: str | None = None
    d = _DIAG.search(dsn)
    if d is not None:
        diagnostic = " ".join(d.group(1).split())[:2000]
    return BounceInfo(kind=kind, recipient=recipient, status=status, diagnostic=diagnostic)
