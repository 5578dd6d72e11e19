"""The demo's mass-email step: "send" a small campaign from the system mailbox and from the bound mailbox, then
write the answers real clients would send back (Gmail, Outlook, QQ Mail, NetEase, Foxmail; with and without
threading headers; auto-replies; a bounce) and a stray message with a forged reply token.

:func:`send_campaign` is the one place that sends: it submits each message to the local SMTP server
(authenticated as the sending account, implicit TLS) and publishes its ``mail.sent`` event, as the send service
will; switching the demo to that service means replacing this function.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import aiosmtplib
from aiokafka import AIOKafkaProducer

from laifaxin_classifier.matching.cli import DEV_REPLY_TOKEN_KEYS
from laifaxin_classifier.matching.corpus import BOUNCE_STYLES, REPLY_STYLES
from laifaxin_shared.events import EmailAddress, MailSent
from laifaxin_shared.imap import client_tls_context
from laifaxin_shared.replytoken import ReplyTokens
from laifaxin_shared.wire import event_headers, event_key, serialize

STYLES = [
    ("gmail", True),
    ("outlook", True),
    ("qq", False),
    ("netease", True),
    ("foxmail", False),
    ("auto_outlook", True),
    ("auto_qq", False),
    ("gmail", False),
    ("rejection", True),
    ("bounce_rfc3464", False),
]
"""(style, with threading headers) of each recipient's answer, in order."""


@dataclass(frozen=True)
class Sender:
    """A mailbox the campaign leaves from: its account, its mailbox id, and whether it is the system mailbox."""

    account: Any
    mailbox_id: str
    system: bool


async def send_campaign(
    sender: Sender,
    *,
    owner: tuple[str, str],
    recipients: list[str],
    subject: str,
    campaign_id: str,
    kafka_bootstrap_servers: str,
    topic_prefix: str,
    ca_file: str,
) -> list[MailSent]:
    """Submit one message per recipient from ``sender`` and publish its ``mail.sent``; returns the events.

    System-mailbox mail carries ``Reply-To: local+TOKEN@domain`` (a signed reply token,
    :mod:`laifaxin_shared.replytoken`, under the development key the services use by default).
    """
    tokens = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev")
    tls = client_tls_context(ca_file)
    events: list[MailSent] = []
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for n, rcpt in enumerate(recipients):
            command = f"cmd-{uuid.uuid4().hex[:12]}"
            domain = sender.account.email.partition("@")[2]
            message_id = f"lfx.{uuid.uuid4().hex[:12]}.{command}@{domain}"
            msg = EmailMessage()
            msg["From"] = sender.account.email
            msg["To"] = rcpt
            msg["Subject"] = subject
            msg["Date"] = format_datetime(datetime.now(UTC))
            msg["Message-ID"] = f"<{message_id}>"
            token = None
            if sender.system:
                token = tokens.sign(message_id)
                msg["Reply-To"] = tokens.reply_address(message_id, mailbox=sender.account.email)
            msg.set_content(f"Dear buyer,\n\nplease find our offer #{n + 1} attached.\n\nAcme Sales")
            await aiosmtplib.send(
                msg,
                hostname=sender.account.host,
                port=sender.account.smtps_port,
                use_tls=True,
                tls_context=tls,
                username=sender.account.email,
                password=sender.account.password,
            )
            event = MailSent(
                tenant_id=owner[0],
                user_id=owner[1],
                mailbox_id=sender.mailbox_id,
                system_mailbox=sender.system,
                message_id=message_id,
                from_=EmailAddress(name="Acme Sales", email=sender.account.email),
                to=[EmailAddress(email=rcpt)],
                subject=subject,
                kind="campaign",
                campaign_id=campaign_id,
                command_id=command,
                reply_token=token,
                sent_at=datetime.now(UTC),
            )
            await producer.send_and_wait(
                topic_prefix + "mail.sent",
                serialize(event),
                key=event_key(event),
                headers=[(k, v.encode()) for k, v in event_headers(event).items()],
            )
            events.append(event)
    finally:
        await producer.stop()
    return events


def answers(sent: list[MailSent], sender: Sender) -> list[bytes]:
    """One answer per sent message in the styles of :data:`STYLES`, addressed as the client would."""
    out = []
    for i, ev in enumerate(sent):
        style, threaded = STYLES[i % len(STYLES)]
        rcpt = ev.to[0].email
        when = datetime.now(UTC) + timedelta(seconds=i)
        uid = f"demo{uuid.uuid4().hex[:10]}"
        to = sender.account.email
        if sender.system and ev.reply_token:
            local, _, domain = to.partition("@")
            to = f"{local}+{ev.reply_token}@{domain}"
        if style in BOUNCE_STYLES:
            msg = BOUNCE_STYLES[style](ev, rcpt, sender.account.email, when, uid, threaded)
        else:
            msg = REPLY_STYLES[style](ev, rcpt, to, when, uid, threaded)
        out.append(bytes(msg))
    return out


def stray(sender: Sender) -> bytes:
    """A message to the system mailbox with a forged reply token: matched to nobody, alerted to nobody."""
    local, _, domain = sender.account.email.partition("@")
    msg = EmailMessage()
    msg["From"] = "promo@spam.example"
    msg["To"] = f"{local}+dev.{'a' * 36}@{domain}"
    msg["Subject"] = "Re: your offer"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<stray.{uuid.uuid4().hex[:10]}@spam.example>"
    msg.set_content("Please send your best price for 500 pcs.")
    return bytes(msg)
