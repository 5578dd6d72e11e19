"""A labelled corpus of answers to sent mail in the styles of real clients, generated in code (fixed seed).

Used by the matching tests, ``python -m laifaxin_classifier.matching.evaluate`` (precision and recall) and the
demo. Each :class:`Case` is raw RFC 5322 bytes as the receiving mailbox gets them, the mailbox it lands in, and
the Message-ID of the sent message it answers (None: it answers none of ours).

Client styles (what each puts in the headers, from their own output): Gmail ("Re: ", In-Reply-To and
References, "On ... wrote:"), Outlook/Exchange ("RE: ", Thread-Index and Thread-Topic, In-Reply-To and
References, the "From: / Sent: / To: / Subject:" block; "Automatic reply: " auto-replies with
X-Auto-Response-Suppress and Auto-Submitted), QQ Mail ("回复：" with a full-width colon and no threading
headers from the web client; "自动回复: " auto-replies), NetEase 163/126 ("回复: " or "Re:", In-Reply-To only),
Foxmail ("回复: ", In-Reply-To and References, "------------------ 原始邮件 ------------------"), and delivery
status notifications (RFC 3464 multipart/report with text/rfc822-headers; Exim with X-Failed-Recipients and the
quoted message; a Chinese provider's 退信 with the original headers in the text). Traps that must not match:
forwards, a colleague answering under the same subject, new mail from recipients, threading ids of mail we did
not send, forged and expired reply tokens, and another tenant's recipients.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import cast

from laifaxin_shared.events import EmailAddress, MailSent
from laifaxin_shared.replytoken import ReplyTokens

SYSTEM_MAILBOX = "mbx_system"
SYSTEM_ADDRESS = "campaigns@mail.laifaxin.test"
SYSTEM_TENANT = "laifaxin-system"


@dataclass(frozen=True)
class Mailbox:
    """A receiving mailbox: tenant, owner, id, address; ``system`` for the platform's system mailbox."""

    tenant_id: str
    user_id: str
    mailbox_id: str
    address: str
    system: bool = False


@dataclass(frozen=True)
class Case:
    """One received message and the sent Message-ID it answers (None: it must stay unmatched)."""

    name: str
    style: str
    raw: bytes
    mailbox: Mailbox
    expected: str | None
    threaded: bool


@dataclass
class Corpus:
    """Sent mail and the answers to it."""

    sent: list[MailSent] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)


SUBJECTS = [
    "Quotation for LED panels",
    "LED 面板报价",
    "New catalogue 2027: solar street lights",
    "Free samples of our PCB assemblies",
    "关于贵司采购需求的合作建议",
    "Partnership proposal: OEM packaging",
    "Price list for stainless steel fasteners",
    "Invitation: Canton Fair booth 12.1 C23",
    "Follow-up on your inquiry about pumps",
    "外贸询盘回复：不锈钢水槽",
    "Custom silicone parts — best price this month",
    "Your order sample is ready",
]
FIRST = [
    "maria",
    "zhang.wei",
    "li.na",
    "jonas",
    "anna",
    "tom",
    "wang.fang",
    "sarah",
    "ahmed",
    "yuki",
    "carlos",
]
DOMAINS = [
    "buyer.example",
    "import.example.de",
    "qq.com",
    "163.com",
    "126.com",
    "gmail.com",
    "outlook.com",
    "trade.example.cn",
]


def _address(rng: random.Random, n: int) -> str:
    return f"{rng.choice(FIRST)}{n}@{rng.choice(DOMAINS)}"


def _base(
    *, from_: str, to: str, subject: str, when: datetime, message_id: str, domain: str = "client.example"
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = from_
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{message_id}@{domain}>"
    return msg


def _thread(msg: EmailMessage, sent_id: str, *, references: bool = True) -> None:
    msg["In-Reply-To"] = f"<{sent_id}>"
    if references:
        msg["References"] = f"<{sent_id}>"


def reply_gmail(sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool) -> EmailMessage:
    """Gmail: "Re: ", In-Reply-To and References, the "On ..., X <x> wrote:" quote."""
    msg = _base(
        from_=rcpt, to=to, subject=f"Re: {sent.subject}", when=when, message_id=uid, domain="mail.gmail.com"
    )
    if threaded:
        _thread(msg, sent.message_id)
    msg.set_content(
        f"Hi,\n\nThanks, could you send the price for 500 pcs and the lead time?\n\nBest,\n{rcpt.split('@')[0]}\n\n"
        f"On {format_datetime(sent.sent_at)}, {sent.from_.name} <{sent.from_.email}> wrote:\n> {sent.subject}\n"
    )
    return msg


def reply_outlook(
    sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool
) -> EmailMessage:
    """Outlook: "RE: ", Thread-Topic/Thread-Index, In-Reply-To and References, the header block quote."""
    msg = _base(
        from_=rcpt, to=to, subject=f"RE: {sent.subject}", when=when, message_id=uid, domain="outlook.com"
    )
    msg["Thread-Topic"] = sent.subject
    msg["Thread-Index"] = "AQHZ1x2vJk3n8Yw5s0KpQmC7hL2dTw=="
    if threaded:
        _thread(msg, sent.message_id)
    msg.set_content(
        "Hello,\n\nWe are interested. Please send your catalogue and MOQ.\n\nRegards\n\n"
        f"From: {sent.from_.name} <{sent.from_.email}>\nSent: Monday, 1 December 2026 08:00\n"
        f"To: {rcpt}\nSubject: {sent.subject}\n"
    )
    return msg


def reply_qq(sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool) -> EmailMessage:
    """QQ Mail web: "回复：" (full-width colon), no In-Reply-To / References."""
    msg = _base(
        from_=rcpt, to=to, subject=f"回复：{sent.subject}", when=when, message_id=uid, domain="qq.com"
    )
    msg["X-Mailer"] = "QQMail 2.x"
    msg.set_content(
        "您好，请发一下报价单和交货期，谢谢。\n\n------------------ 原始邮件 ------------------\n"
    )
    return msg


def reply_netease(
    sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool
) -> EmailMessage:
    """NetEase 163/126 web mail: "回复: " (or "Re:"), In-Reply-To only."""
    prefix = "回复: " if len(uid) % 2 else "Re:"
    msg = _base(
        from_=rcpt, to=to, subject=f"{prefix}{sent.subject}", when=when, message_id=uid, domain="163.com"
    )
    msg["X-Mailer"] = "Coremail Webmail Server Version XT5.0.13"
    if threaded:
        _thread(msg, sent.message_id, references=False)
    msg.set_content("你好，样品什么时候可以寄出？\n\n在 2026-12-01 08:00:00，发件人写道：\n>原邮件\n")
    return msg


def reply_foxmail(
    sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool
) -> EmailMessage:
    """Foxmail: "回复: ", In-Reply-To and References, the 原始邮件 quote block."""
    msg = _base(
        from_=rcpt, to=to, subject=f"回复: {sent.subject}", when=when, message_id=uid, domain="foxmail.com"
    )
    msg["X-Mailer"] = "Foxmail 7.2.25.375[cn]"
    if threaded:
        _thread(msg, sent.message_id)
    msg.set_content(
        "请问最低起订量是多少？\n\n------------------ 原始邮件 ------------------\n"
        f'发件人: "{sent.from_.name}"<{sent.from_.email}>;\n主题: {sent.subject}\n'
    )
    return msg


def auto_outlook(
    sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool
) -> EmailMessage:
    """Exchange out-of-office: "Automatic reply: ", Auto-Submitted, In-Reply-To and References."""
    msg = _base(from_=rcpt, to=to, subject=f"Automatic reply: {sent.subject}", when=when, message_id=uid)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    if threaded:
        _thread(msg, sent.message_id)
    msg.set_content("I am out of the office until 15 December 2026 with limited access to email.")
    return msg


def auto_qq(sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool) -> EmailMessage:
    """QQ Mail auto-reply: "自动回复: ", no threading headers."""
    msg = _base(
        from_=rcpt, to=to, subject=f"自动回复: {sent.subject}", when=when, message_id=uid, domain="qq.com"
    )
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("您好，我正在休假中，12月15日回来后会尽快回复您。")
    return msg


def rejection(sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool) -> EmailMessage:
    """A person opting out ("not interested", "请勿再发")."""
    msg = _base(from_=rcpt, to=to, subject=f"Re: {sent.subject}", when=when, message_id=uid)
    if threaded:
        _thread(msg, sent.message_id)
    msg.set_content("Not interested. Please remove me from your mailing list. 请勿再发。")
    return msg


def bounce_rfc3464(
    sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool
) -> EmailMessage:
    """Postfix-style DSN: multipart/report with message/delivery-status and text/rfc822-headers (RFC 3464)."""
    text = (
        f"From: MAILER-DAEMON@mx.buyer.example (Mail Delivery System)\nTo: {to}\n"
        f"Subject: Undelivered Mail Returned to Sender\nDate: {format_datetime(when)}\n"
        f"Message-ID: <{uid}@mx.buyer.example>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-b"\n\n'
        "--dsn-b\nContent-Type: text/plain; charset=us-ascii\n\n"
        "This is the mail system at host mx.buyer.example.\n\n"
        "I'm sorry to have to inform you that your message could not be delivered.\n\n"
        "--dsn-b\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.buyer.example\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: 5.1.1\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\n\n"
        "--dsn-b\nContent-Type: text/rfc822-headers\n\n"
        f"From: {sent.from_.email}\nTo: {rcpt}\nSubject: {sent.subject}\nMessage-ID: <{sent.message_id}>\n\n"
        "--dsn-b--\n"
    )
    return cast("EmailMessage", message_from_bytes(text.encode("utf-8"), policy=policy.default))


def bounce_exim(sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool) -> EmailMessage:
    """Exim: X-Failed-Recipients and the quoted original (headers in the text)."""
    msg = _base(
        from_="Mail Delivery System <Mailer-Daemon@mx.example.de>",
        to=to,
        subject="Mail delivery failed: returning message to sender",
        when=when,
        message_id=uid,
        domain="mx.example.de",
    )
    msg["X-Failed-Recipients"] = rcpt
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its recipients. "
        f"This is a permanent error. The following address(es) failed:\n\n  {rcpt}\n    mailbox is full\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        f"Message-ID: <{sent.message_id}>\nFrom: {sent.from_.email}\nTo: {rcpt}\nSubject: {sent.subject}\n"
    )
    return msg


def bounce_cn(sent: MailSent, rcpt: str, to: str, when: datetime, uid: str, threaded: bool) -> EmailMessage:
    """A Chinese provider's 系统退信 naming only the failed recipient."""
    msg = _base(
        from_="postmaster@163.com", to=to, subject="系统退信", when=when, message_id=uid, domain="163.com"
    )
    msg.set_content(
        f"抱歉，您的邮件被退回来了……\n原邮件信息：\n收件人：{rcpt}\n退信原因：用户不存在 550 User not found\n"
    )
    return msg


REPLY_STYLES = {
    "gmail": reply_gmail,
    "outlook": reply_outlook,
    "qq": reply_qq,
    "netease": reply_netease,
    "foxmail": reply_foxmail,
    "auto_outlook": auto_outlook,
    "auto_qq": auto_qq,
    "rejection": rejection,
}
UNTHREADED_STYLES = frozenset({"qq", "auto_qq"})
"""Styles that never carry In-Reply-To / References."""
BOUNCE_STYLES = {"bounce_rfc3464": bounce_rfc3464, "bounce_exim": bounce_exim, "bounce_cn": bounce_cn}


def sent_event(
    *,
    mailbox: Mailbox,
    owner: tuple[str, str],
    rcpt: str,
    subject: str,
    when: datetime,
    n: int,
    token: str | None,
) -> MailSent:
    """A mail.sent event as a sender publishes it."""
    mid = f"lfx.{uuid.UUID(int=n).hex[-12:]}.cmd-{n:05d}@mail.laifaxin.test"
    return MailSent(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, mid),
        tenant_id=owner[0],
        user_id=owner[1],
        mailbox_id=mailbox.mailbox_id,
        system_mailbox=mailbox.system,
        message_id=mid,
        from_=EmailAddress(name="Acme Sales", email=mailbox.address),
        to=[EmailAddress(email=rcpt)],
        subject=subject,
        kind="campaign",
        campaign_id=f"cmp_{owner[0]}_{n % 3}",
        command_id=f"cmd-{n:05d}",
        reply_token=token,
        sent_at=when,
    )


def generate(tokens: ReplyTokens, *, n_sent: int = 400, seed: int = 7, now: datetime | None = None) -> Corpus:
    """Sent mail from two tenants' mailboxes and the system mailbox (on behalf of both), and the cases."""
    rng = random.Random(seed)  # noqa: S311  # a reproducible corpus, not a secret
    now = now or datetime.now(UTC).replace(microsecond=0)
    acme = Mailbox("tenant-acme", "u_acme", "mbx_acme", "sales@acme.example")
    beta = Mailbox("tenant-beta", "u_beta", "mbx_beta", "export@beta.example")
    system = Mailbox(SYSTEM_TENANT, "system", SYSTEM_MAILBOX, SYSTEM_ADDRESS, system=True)
    owners = {
        acme.mailbox_id: (acme.tenant_id, acme.user_id),
        beta.mailbox_id: (beta.tenant_id, beta.user_id),
    }
    corpus = Corpus()
    picks: list[tuple[MailSent, Mailbox]] = []
    for n in range(1, n_sent + 1):
        box = rng.choice([acme, beta, system])
        owner = owners[box.mailbox_id] if not box.system else rng.choice(list(owners.values()))
        when = now - timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 1440))
        rcpt = _address(rng, n)
        subject = rng.choice(SUBJECTS)
        mid = f"lfx.{uuid.UUID(int=n).hex[-12:]}.cmd-{n:05d}@mail.laifaxin.test"
        token = tokens.sign(mid, today=when.date()) if box.system else None
        ev = sent_event(mailbox=box, owner=owner, rcpt=rcpt, subject=subject, when=when, n=n, token=token)
        corpus.sent.append(ev)
        picks.append((ev, box))
        if (
            n % 10 == 0
        ):  # a follow-up with the same subject to the same recipient two days later; nobody answers it
            again = sent_event(
                mailbox=box,
                owner=owner,
                rcpt=rcpt,
                subject=subject,
                when=when + timedelta(days=2),
                n=100_000 + n,
                token=None,
            )
            corpus.sent.append(again)
    counter = 0

    def uid() -> str:
        nonlocal counter
        counter += 1
        return f"r{counter:05d}.{rng.randrange(16**8):08x}"

    def add(
        name: str, style: str, msg: EmailMessage, box: Mailbox, expected: str | None, threaded: bool
    ) -> None:
        corpus.cases.append(Case(name, style, bytes(msg), box, expected, threaded))

    def reply_to_of(ev: MailSent, box: Mailbox) -> str:
        if box.system and ev.reply_token:
            local, _, domain = SYSTEM_ADDRESS.partition("@")
            return f"{local}+{ev.reply_token}@{domain}"
        return box.address

    for ev, box in picks:
        rcpt = ev.to[0].email
        when = ev.sent_at + timedelta(hours=rng.randint(1, 96))
        r = rng.random()
        if r < 0.70:
            style = rng.choice(list(REPLY_STYLES))
            threaded = rng.random() < 0.6
            msg = REPLY_STYLES[style](ev, rcpt, reply_to_of(ev, box), when, uid(), threaded)
            threaded = threaded and style not in UNTHREADED_STYLES
            add(f"{style}:{ev.command_id}", style, msg, box, ev.message_id, threaded)
            if rng.random() < 0.03:  # the same person answers from another address of theirs, no headers
                alias = f"{rcpt.split('@')[0]}.home@{rng.choice(DOMAINS)}"
                msg = reply_qq(ev, alias, box.address, when, uid(), False)
                add(f"alias:{ev.command_id}", "alias", msg, box, ev.message_id, False)
        elif r < 0.82:
            style = rng.choice(list(BOUNCE_STYLES))
            msg = BOUNCE_STYLES[style](ev, rcpt, box.address, ev.sent_at + timedelta(minutes=2), uid(), False)
            add(f"{style}:{ev.command_id}", style, msg, box, ev.message_id, style != "bounce_cn")
    # Traps: none of these answers one of our messages.
    for i, (ev, box) in enumerate(rng.sample(picks, min(len(picks), 120))):
        rcpt = ev.to[0].email
        when = ev.sent_at + timedelta(hours=5)
        kind = i % 8
        if kind == 0:  # a forward of our mail to a colleague, copied back to us
            msg = _base(from_=rcpt, to=box.address, subject=f"Fwd: {ev.subject}", when=when, message_id=uid())
            msg.set_content("FYI, see below.\n\n---------- Forwarded message ---------\n")
            add("trap-forward", "trap", msg, box, None, False)
        elif kind == 1:  # a colleague of the recipient answers under the same subject (not a recipient)
            msg = _base(
                from_=f"colleague{i}@{rcpt.split('@')[1]}",
                to=box.address,
                subject=f"Re: {ev.subject}",
                when=when,
                message_id=uid(),
            )
            msg.set_content("My colleague forwarded your mail. Please call me.")
            add("trap-colleague", "trap", msg, box, None, False)
        elif kind == 2:  # new mail from a recipient, another subject
            msg = _base(
                from_=rcpt,
                to=box.address,
                subject="Question about shipping terms",
                when=when,
                message_id=uid(),
            )
            msg.set_content("Do you ship DDP to Hamburg?")
            add("trap-new-subject", "trap", msg, box, None, False)
        elif kind == 3:  # threading ids of mail we did not send
            msg = _base(
                from_=rcpt,
                to=box.address,
                subject=f"Re: {ev.subject} (other thread)",
                when=when,
                message_id=uid(),
            )
            msg["In-Reply-To"] = f"<{uuid.uuid4().hex}@elsewhere.example>"
            msg["References"] = f"<{uuid.uuid4().hex}@elsewhere.example>"
            msg.set_content("See my earlier note.")
            add("trap-foreign-thread", "trap", msg, box, None, True)
        elif kind == 4 and box.system:  # a forged token (right shape, wrong MAC)
            forged = "dev." + "a" * 36
            msg = _base(
                from_=f"x{i}@spam.example",
                to=f"campaigns+{forged}@mail.laifaxin.test",
                subject="Re: hello",
                when=when,
                message_id=uid(),
            )
            msg.set_content("Click here.")
            add("trap-forged-token", "trap", msg, box, None, True)
        elif kind == 5 and box.system:  # an expired token (signed a year ago)
            old = tokens.sign(ev.message_id, today=date.today() - timedelta(days=365))
            msg = _base(
                from_=f"y{i}@old.example",
                to=f"campaigns+{old}@mail.laifaxin.test",
                subject="hello again",
                when=when,
                message_id=uid(),
            )
            msg.set_content("Still interested?")
            add("trap-expired-token", "trap", msg, box, None, True)
        elif kind == 6:  # another tenant's mailbox gets a reply from this recipient, threaded to our message
            other = beta if box.tenant_id == acme.tenant_id else acme
            msg = reply_gmail(ev, rcpt, other.address, when, uid(), True)
            add("trap-other-tenant", "trap", msg, other, None, True)
        else:  # a recipient answers mail we sent long ago (outside the heuristic window), no headers
            msg = _base(
                from_=rcpt,
                to=box.address,
                subject=f"Re: {rng.choice(SUBJECTS)} (2025)",
                when=when,
                message_id=uid(),
            )
            msg.set_content("Following up on last year.")
            add("trap-old-subject", "trap", msg, box, None, False)
    return corpus


def strip_threading(raw: bytes) -> bytes:
    """The message without In-Reply-To / References and with reply tokens removed from To (heuristic only)."""
    msg = message_from_bytes(raw, policy=policy.default)
    for name in ("In-Reply-To", "References", "Thread-Index"):
        del msg[name]
    to = str(msg.get("To", ""))
    if "+" in to and "@mail.laifaxin.test" in to:
        msg.replace_header("To", SYSTEM_ADDRESS)
    return bytes(msg)
