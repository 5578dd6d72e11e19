"""Send-time SMTP replies (MAIL, RCPT, DATA) -> stable codes: every exact provider text of the send research
notes' table (section 2), as the submission server or the recipient's MX answers it, classified by
:func:`explain_send`; then the enhanced-status and bare-code fallbacks, GBK replies and redaction."""

from __future__ import annotations

import pytest

from laifaxin_shared.providers.errors import ErrorCode, explain_send

E = ErrorCode

# (exact text, SMTP step that answered it, expected code)
EXACT_SEND_TEXTS: list[tuple[str, str, ErrorCode]] = [
    # Gmail
    (
        "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to\n"
        "550 5.4.5  https://support.google.com/a/answer/166852 a1-20020a17 - gsmtp",
        "data",
        E.DAILY_QUOTA_REACHED,
    ),
    ("550 5.4.5 Daily user sending quota exceeded. q5sm1 - gsmtp", "data", E.DAILY_QUOTA_REACHED),
    ("550 5.4.5 Daily SMTP relay limit exceeded for user", "mail", E.DAILY_QUOTA_REACHED),
    ("550 5.7.1 Daily SMTP relay limit exceeded for customer", "mail", E.DAILY_QUOTA_REACHED),
    ("450 4.2.1 Peak SMTP relay limit exceeded for customer", "mail", E.RATE_LIMITED),
    (
        "421 4.7.0 [203.0.113.9] Our system has detected an unusual rate of unsolicited mail originating from "
        "your IP address. To protect our users from spam, mail sent from your IP address has been temporarily "
        "blocked.",
        "data",
        E.RATE_LIMITED,
    ),
    (
        "550 5.7.28 [203.0.113.9] Our system has detected an unusual rate of unsolicited mail originating from "
        "your IP address.",
        "data",
        E.IP_BLOCKED,
    ),
    (
        "550 5.7.1 [203.0.113.9] Our system has detected that this message is likely unsolicited mail.",
        "data",
        E.CONTENT_REJECTED_SPAM,
    ),
    (
        "421 4.7.0 This message is suspicious due to the nature of the content or the links within",
        "data",
        E.CONTENT_REJECTED_SPAM,
    ),
    ("552 5.3.4 Your message exceeded Google's message size limits", "data", E.MESSAGE_TOO_LARGE),
    ("452 4.5.3 Your message has too many recipients", "rcpt", E.TOO_MANY_RECIPIENTS),
    ("454 4.7.0 Too many login attempts, please try again later", "auth", E.RATE_LIMITED),
    ("550 5.7.0 Mail sending denied", "mail", E.SENDER_NOT_ALLOWED),
    ("550 5.1.1 The email account that you tried to reach does not exist", "rcpt", E.RECIPIENT_UNKNOWN),
    # Outlook.com / Microsoft 365
    (
        "554 5.2.0 STOREDRV.Submission.Exception:OutboundSpamException; Failed to process message due to a "
        "permanent exception with message WASCL UserAction verdict is not None. Actual verdict is RefuseQuota, "
        "ShowTierUpgrade",
        "data",
        E.DAILY_QUOTA_REACHED,
    ),
    (
        "554 5.2.0 STOREDRV.Submission.Exception:OutboundSpamException; WASCL UserAction verdict is not None. "
        "Actual verdict is HipNotify, ShowTierUpgrade",
        "data",
        E.SENDER_NOT_ALLOWED,
    ),
    (
        "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message",
        "data",
        E.DAILY_QUOTA_REACHED,
    ),
    (
        "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients",
        "data",
        E.DAILY_QUOTA_REACHED,
    ),
    (
        "550 5.7.233 Message can't be sent because your tenant has exceeded its daily limit for sending email to "
        "external recipients (tenant external recipient rate limit)",
        "data",
        E.DAILY_QUOTA_REACHED,
    ),
    (
        "432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more "
        "information.",
        "data",
        E.RATE_LIMITED,
    ),
    ("550 5.7.501 Access denied, spam abuse detected", "mail", E.SENDER_NOT_ALLOWED),
    (
        "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP",
        "mail",
        E.IP_BLOCKED,
    ),
    (
        "550 5.7.520 Access denied, Your organization does not allow external forwarding. AS(7555)",
        "data",
        E.SENDER_NOT_ALLOWED,
    ),
    (
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        "data",
        E.SENDER_NOT_ALLOWED,
    ),
    (
        "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
        "data",
        E.SENDER_NOT_ALLOWED,
    ),
    (
        "550 5.7.515 Access denied, sending domain example.com does not meet the required authentication level",
        "data",
        E.SENDER_NOT_ALLOWED,
    ),
    ("552 5.3.4 Message size exceeds fixed maximum message size", "data", E.MESSAGE_TOO_LARGE),
    # Yahoo
    ("554 6.6.0 Error sending message for delivery", "data", E.SENDER_NOT_ALLOWED),
    ("550 Request failed; Mailbox unavailable", "data", E.CONTENT_REJECTED_SPAM),
    (
        "421 4.7.0 [TSS04] Messages from 203.0.113.9 temporarily deferred due to user complaints",
        "data",
        E.RATE_LIMITED,
    ),
    ("553 5.7.2 [TSS06] All messages from 203.0.113.9 will be permanently deferred", "mail", E.IP_BLOCKED),
    # Zoho
    ("553 Relaying disallowed as sales@acme.example", "mail", E.SENDER_NOT_ALLOWED),
    ("554 5.1.8 Email Outgoing Blocked", "mail", E.SENDER_NOT_ALLOWED),
    ("554 5.1.8 Sender Address Blocked", "mail", E.SENDER_NOT_ALLOWED),
    # QQ / Exmail
    ("550 The mail may contain inappropriate words or content.", "data", E.CONTENT_REJECTED_SPAM),
    ("501 mail from address must be same as authorization user", "mail", E.SENDER_NOT_ALLOWED),
    (
        "502 Invalid input from 203.0.113.9 to newxmesmtplogicsvrsza7.qq.com.",
        "mail",
        E.SENDER_NOT_ALLOWED,
    ),
    ("550 Connection frequency limited", "mail", E.RATE_LIMITED),
    ("550 Ip frequency limited", "mail", E.RATE_LIMITED),
    ("550 Sender frequency limited", "data", E.RATE_LIMITED),
    ("550 Domain frequency limited", "rcpt", E.RATE_LIMITED),
    (
        "550 Mail content denied. http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022&&no=1000726",
        "data",
        E.CONTENT_REJECTED_SPAM,
    ),
    ("550 Error: mail rejected by antispam server", "data", E.CONTENT_REJECTED_SPAM),
    ("550 Mailbox not found. http://service.mail.qq.com/detail/122/169", "rcpt", E.RECIPIENT_UNKNOWN),
    ("552 Message too large. http://service.mail.qq.com/detail/122/168", "data", E.MESSAGE_TOO_LARGE),
    # NetEase 163/126/yeah and NetEase Enterprise
    (
        "554 DT:SPM 163 smtp14,EsCowAD3l6pQ8gVnTL0XAA--.1 1728440913,please see "
        "http://mail.163.com/help/help_spam_16.htm?ip=203.0.113.9&hostid=smtp14&time=1728440913",
        "data",
        E.CONTENT_REJECTED_SPAM,
    ),
    ("550 DT:SPM", "data", E.CONTENT_REJECTED_SPAM),
    ("451 DT:SPM ,please try again", "data", E.RATE_LIMITED),
    ("451 MI:SFQ 163 smtp10,DsCowAD3l6pQ8gVnTL0XAA--.1 1728440913", "mail", E.RATE_LIMITED),
    ("451 RP:QRC 163 smtp10", "rcpt", E.RATE_LIMITED),
    ("450 MI:DMC 163 smtp10", "mail", E.RATE_LIMITED),
    ("450 RP:DRC 163 smtp10", "rcpt", E.RATE_LIMITED),
    ("421 HL:ICC 163 smtp10", "mail", E.RATE_LIMITED),
    ("421 HL:REP 163 smtp10", "mail", E.RATE_LIMITED),
    ("554 MI:STC 163 smtp10,DsCowAD3l6pQ8gVnTL0XAA--.1 1728440913", "mail", E.DAILY_QUOTA_REACHED),
    ("554 5.5.0 MI:STC", "mail", E.DAILY_QUOTA_REACHED),
    ("550 RP:TRC 163 smtp10", "rcpt", E.DAILY_QUOTA_REACHED),
    ("554 5.5.3 RP:TRC", "rcpt", E.DAILY_QUOTA_REACHED),
    ("550 MI:STC", "mail", E.DAILY_QUOTA_REACHED),
    ("554 You have exceed daily message limit,for single send email", "data", E.DAILY_QUOTA_REACHED),
    ("550 RP:RCL 163 smtp10", "rcpt", E.TOO_MANY_RECIPIENTS),
    ("550 Requested mail action not taken: too much recipient", "rcpt", E.TOO_MANY_RECIPIENTS),
    ("554 DT:SUM envelope sender is not the header From", "data", E.SENDER_NOT_ALLOWED),
    ("550 User has no permission", "mail", E.SENDER_NOT_ALLOWED),
    ("554 MI:SPB 163 smtp10", "mail", E.SENDER_NOT_ALLOWED),
    ("450 WM:BLU 163 smtp10", "mail", E.SENDER_NOT_ALLOWED),
    ("451 too much fail authentication", "mail", E.SENDER_NOT_ALLOWED),
    ("554 HL:IHU 163 smtp10", "mail", E.IP_BLOCKED),
    ("554 HL:IPB 163 smtp10", "mail", E.IP_BLOCKED),
    ("554 IP in blacklist", "mail", E.IP_BLOCKED),
    ("450 DT:RBL 163 smtp10", "mail", E.IP_BLOCKED),
    ("554 5.7.3 HL:ITC", "mail", E.IP_BLOCKED),
    ("552 Requested mail action aborted: exceeded mailsize limit", "data", E.MESSAGE_TOO_LARGE),
    ("552 Illegal Attachment", "data", E.CONTENT_REJECTED_SPAM),
    # Alibaba, Sina, Sohu
    (
        "554 Reject by behaviour spamANTISPAM_BAT[01201311R150e, e02c03289]: too frequently sending",
        "data",
        E.RATE_LIMITED,
    ),
    (
        "554 Reject by behaviour spamANTISPAM_BAT[01201311R150e]: much too frequently sending",
        "data",
        E.RATE_LIMITED,
    ),
    ("550 Too many connect", "mail", E.RATE_LIMITED),
    ("553 5.7.1 SENDER REJECT", "mail", E.DAILY_QUOTA_REACHED),
    ("553 5.7.0 IP REJECT", "mail", E.IP_BLOCKED),
]


@pytest.mark.parametrize(("text", "stage", "code"), EXACT_SEND_TEXTS)
def test_exact_send_time_texts(text: str, stage: str, code: ErrorCode) -> None:
    error = explain_send(text, stage=stage)  # type: ignore[arg-type]
    assert error.code is code, (error.code, error.rule)
    assert error.server_text == text.strip()
    assert error.protocol == "smtp"
    assert error.message.en and error.message.zh and error.fix.en and error.fix.zh


@pytest.mark.parametrize(("text", "stage", "code"), EXACT_SEND_TEXTS)
def test_code_given_apart_from_the_text(text: str, stage: str, code: ErrorCode) -> None:
    """aiosmtplib's exceptions carry ``.code`` and ``.message`` apart (the message without the code)."""
    head, _, rest = text.partition(" ")
    if not head.isdigit():
        pytest.skip("no reply code in front")
    error = explain_send(rest, smtp_code=int(head), stage=stage)  # type: ignore[arg-type]
    assert error.code is code, (error.code, error.rule)
    assert error.server_text is not None and error.server_text.startswith(head)


def test_the_four_categories_the_service_acts_on() -> None:
    assert (
        explain_send("550 5.1.1 <x@y>: Recipient address rejected: User unknown", stage="rcpt").code
        is E.RECIPIENT_UNKNOWN
    )
    assert explain_send("552 5.3.4 Message too big", stage="data").code is E.MESSAGE_TOO_LARGE
    assert explain_send("554 DT:SPM 163 smtp14", stage="data").code is E.CONTENT_REJECTED_SPAM
    assert explain_send("554 MI:STC", stage="data").retryable  # deferred to the next day, not dropped


def test_auth_step_uses_the_login_taxonomy() -> None:
    error = explain_send(
        "5.7.8 Authentication credentials invalid", smtp_code=535, stage="auth", provider_id="netease"
    )
    assert error.code is E.AUTH_FAILED
    assert error.sync_state == "auth_failed"
    assert "163" in error.fix.en or "NetEase" in error.fix.en


@pytest.mark.parametrize(
    ("code", "stage", "expected"),
    [
        (452, "rcpt", E.TOO_MANY_RECIPIENTS),
        (550, "rcpt", E.RECIPIENT_UNKNOWN),
        (553, "rcpt", E.RECIPIENT_UNKNOWN),
        (451, "data", E.RATE_LIMITED),
        (450, "mail", E.RATE_LIMITED),
        (554, "data", E.UNKNOWN),
    ],
)
def test_bare_codes_by_step(code: int, stage: str, expected: ErrorCode) -> None:
    assert explain_send("Requested action not taken", smtp_code=code, stage=stage).code is expected  # type: ignore[arg-type]


def test_gbk_reply_is_decoded() -> None:
    error = explain_send("550 邮件内容被拒绝 Mail content denied".encode("gbk"), stage="data")
    assert error.code is E.CONTENT_REJECTED_SPAM
    assert "邮件内容被拒绝" in (error.server_text or "")


def test_password_never_kept() -> None:
    error = explain_send("535 auth failed for s3cr3t-Pass", stage="auth", secrets=["s3cr3t-Pass"])
    assert "s3cr3t" not in (error.server_text or "")
