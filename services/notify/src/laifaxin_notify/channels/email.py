"""Alert email through a configured SMTP relay with aiosmtplib, TLS verified (RFC 5321 reply classes).

A 4xx reply (transient, RFC 5321 section 4.2.1) is retried; a 5xx reply is permanent. Connection failures and
timeouts are retried. The Message-ID is derived from the dedupe key, so a duplicate (crash between send and
bookkeeping) can at least be traced; SMTP has no provider-side idempotency key.

Connections to the relay are kept and reused (one SMTP session carries many transactions, RFC 5321 section 3.3):
at most ``connections`` at once, each closed after ``idle_s`` unused (servers may drop an idle client after 5
minutes, section 4.5.3.2.7) or after ``messages_per_connection`` messages (relays cap a session). A kept
connection the relay closed meanwhile is replaced once, transparently.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from ..models import DeliveryTask
from ..store import Binding
from .base import Outcome


def _classify_code(code: int, text: str) -> Outcome:
    detail = f"smtp {code} {text}"[:300]
    if 400 <= code < 500:
        return Outcome("retry", detail)
    if code >= 500:
        return Outcome("failed", detail)
    return Outcome("retry", detail)


def build_message(task: DeliveryTask, sender: str, to: str) -> EmailMessage:
    """The alert mail: sender, subject, category and a link to the message (text/plain, UTF-8)."""
    c = task.content
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"[Laifaxin] {c.title}: {c.subject}"[:250]
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{task.dedupe_key}@notify.laifaxin>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to alerts
    lines = [
        f"{c.title}",
        "",
        f"From: {c.sender}",
        f"Subject: {c.subject}",
        f"Category: {c.category}",
    ]
    if c.snippet:
        lines += ["", c.snippet]
    if c.url:
        lines += ["", f"Open: {c.url}"]
    msg.set_content("\n".join(lines))
    return msg


def build_confirmation(
    sender: str, to: str, *, code: str, link: str, expires_in_s: int, message_id: str
) -> EmailMessage:
    """The double opt-in mail for a new alert address: a fixed text (nothing the requester typed but the
    address itself), the one-time ``code`` and the ``link`` that confirms it, and how long they are valid.
    ``Auto-Submitted: auto-generated`` (RFC 3834); the ``Message-ID`` is ``<message_id@notify.laifaxin>``."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "[Laifaxin] Confirm this address for alerts / 确认提醒邮箱"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{message_id}@notify.laifaxin>"
    msg["Auto-Submitted"] = "auto-generated"
    hours = max(1, round(expires_in_s / 3600))
    msg.set_content(
        "\n".join(
            [
                "Someone asked to receive Laifaxin mail alerts at this address.",
                "If it was you, confirm it by opening this link:",
                "",
                link,
                "",
                f"or by entering the confirmation code: {code}",
                "",
                f"The link and the code are valid for {hours} hour(s) and work once. If it was not you,",
                "ignore this mail: no alert is sent to an address that was not confirmed.",
                "",
                "有人请求将此地址用于来发信邮件提醒。如果是您本人，请打开上面的链接或输入确认码确认；",
                "如果不是，请忽略本邮件：未经确认的地址不会收到任何提醒。",
            ]
        )
    )
    return msg


@dataclass
class _Session:
    """One open SMTP session to the relay: how many messages it carried, and when it was last used."""

    client: aiosmtplib.SMTP
    sent: int = 0
    last_used: float = 0.0


class EmailSender:
    """Sends alert mails via one relay (implicit TLS or STARTTLS, AUTH when a username is set), over at most
    ``connections`` reused SMTP sessions.

    Args:
        connections: sessions open at once (each carries one transaction at a time); >= 1.
        idle_s: a session unused this many seconds is closed rather than reused.
        messages_per_connection: a session is closed (QUIT) after this many messages.
        timeout_s: per SMTP command, seconds.

    Raises:
        ValueError: ``security`` is not ``ssl`` or ``starttls``, or ``connections`` < 1.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        sender: str,
        username: str = "",
        password: str = "",
        tls_context: ssl.SSLContext | None = None,
        timeout_s: float = 15.0,
        connections: int = 4,
        idle_s: float = 60.0,
        messages_per_connection: int = 100,
    ) -> None:
        if security not in ("ssl", "starttls"):
            raise ValueError("security must be 'ssl' or 'starttls'")
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.host = host
        self.port = port
        self.security = security
        self.sender = sender
        self._username = username
        self._password = password
        self._tls = tls_context or ssl.create_default_context()
        self.timeout_s = timeout_s
        self.idle_s = idle_s
        self.messages_per_connection = max(1, messages_per_connection)
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Session] = []
        self.sessions_opened = 0
        """How many SMTP sessions were opened so far (reuse shows as fewer sessions than messages)."""

    def __repr__(self) -> str:
        return f"EmailSender(host={self.host!r}, port={self.port})"

    async def aclose(self) -> None:
        """QUIT every kept session (best effort: a relay that does not answer is just disconnected)."""
        idle, self._idle = self._idle, []
        for session in idle:
            await self._quit(session)

    async def _quit(self, session: _Session) -> None:
        try:
            async with asyncio.timeout(min(self.timeout_s, 5.0)):
                await session.client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            session.client.close()

    async def _open(self) -> _Session:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self._username or None,
            password=self._password or None,
            use_tls=self.security == "ssl",
            start_tls=self.security == "starttls",
            tls_context=self._tls,
            timeout=self.timeout_s,
        )
        await client.connect()  # EHLO, STARTTLS and AUTH as configured
        self.sessions_opened += 1
        return _Session(client)

    def _kept(self) -> _Session | None:
        """The most recently used kept session that is still connected and not idle too long."""
        now = time.monotonic()
        while self._idle:
            session = self._idle.pop()
            if session.client.is_connected and now - session.last_used < self.idle_s:
                return session
            session.client.close()
        return None

    async def _transaction(self, msg: EmailMessage) -> tuple[_Session, dict[str, tuple[int, str]], str]:
        """Send ``msg`` on a kept session, or a new one; a kept session the relay closed meanwhile (idle
        timeout, 421) is replaced once. Raises what aiosmtplib raises; the session is then closed."""
        session = self._kept()
        if session is not None:
            try:
                errors, reply = await session.client.send_message(msg)
                return session, dict(errors), reply
            except aiosmtplib.SMTPServerDisconnected:
                session.client.close()
            except BaseException:
                session.client.close()
                raise
        session = await self._open()
        try:
            errors, reply = await session.client.send_message(msg)
        except BaseException:
            session.client.close()
            raise
        return session, dict(errors), reply

    async def send(self, task: DeliveryTask, binding: Binding) -> Outcome:
        """Send the alert to ``binding.target_id`` (the alert address)."""
        return await self.send_message(build_message(task, self.sender, binding.target_id))

    async def send_message(self, msg: EmailMessage) -> Outcome:
        """Send one prepared mail over a kept session; the outcome classifies the relay's answer (never raises
        for it): ``sent`` with the relay's reply, ``retry`` for 4xx and transport errors, ``failed`` for 5xx."""
        async with self._slots:
            try:
                session, errors, reply = await self._transaction(msg)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                first = exc.recipients[0]
                return _classify_code(first.code, first.message)
            except aiosmtplib.SMTPAuthenticationError as exc:
                return Outcome("failed", f"smtp auth {exc.code}", dead_letter=True, alert=True)
            except aiosmtplib.SMTPResponseException as exc:
                return _classify_code(exc.code, exc.message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return Outcome("retry", f"smtp transport: {type(exc).__name__}")
            session.sent += 1
            session.last_used = time.monotonic()
            if session.sent < self.messages_per_connection and session.client.is_connected:
                self._idle.append(session)
            else:
                await self._quit(session)
        if errors:
            code, text = next(iter(errors.values()))
            return _classify_code(code, text)
        return Outcome("sent", "250", provider_id=reply[:200])
