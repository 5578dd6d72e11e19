"""Alert email through a configured SMTP relay with aiosmtplib, TLS verified (RFC 5321 reply classes).

A 4xx reply (transient, RFC 5321 section 4.2.1) is retried; a 5xx reply is permanent. Connection failures and
timeouts are retried. The Message-ID is derived from the dedupe key, so a duplicate (crash between send and
bookkeeping) can at least be traced; SMTP has no provider-side idempotency key.
"""

from __future__ import annotations

import ssl
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


class EmailSender:
    """Sends alert mails via one relay (implicit TLS or STARTTLS, AUTH when a username is set)."""

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
    ) -> None:
        if security not in ("ssl", "starttls"):
            raise ValueError("security must be 'ssl' or 'starttls'")
        self.host = host
        self.port = port
        self.security = security
        self.sender = sender
        self._username = username
        self._password = password
        self._tls = tls_context or ssl.create_default_context()
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"EmailSender(host={self.host!r}, port={self.port})"

    async def aclose(self) -> None:
        return None

    async def send(self, task: DeliveryTask, binding: Binding) -> Outcome:
        """Send the alert to ``binding.target_id`` (the alert address)."""
        msg = build_message(task, self.sender, binding.target_id)
        try:
            errors, reply = await aiosmtplib.send(
                msg,
                hostname=self.host,
                port=self.port,
                username=self._username or None,
                password=self._password or None,
                use_tls=self.security == "ssl",
                start_tls=self.security == "starttls",
                tls_context=self._tls,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return _classify_code(first.code, first.message)
        except aiosmtplib.SMTPAuthenticationError as exc:
            return Outcome("failed", f"smtp auth {exc.code}", dead_letter=True, alert=True)
        except aiosmtplib.SMTPResponseException as exc:
            return _classify_code(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Outcome("retry", f"smtp transport: {type(exc).__name__}")
        if errors:
            code, text = next(iter(errors.values()))
            return _classify_code(code, text)
        return Outcome("sent", "250", provider_id=reply[:200])
