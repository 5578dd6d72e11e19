"""Submission through a mailbox's own SMTP server (aiosmtplib), with sessions reused per mailbox.

One :class:`SmtpPool` per worker keeps at most ``SEND_CONNECTIONS_PER_MAILBOX`` sessions per mailbox, reuses an
idle one for the next message (RSET between messages is implied by a new MAIL, RFC 5321 section 4.1.1.2) and
closes sessions unused for ``SEND_SESSION_IDLE_SECONDS``. Implicit TLS (RFC 8314) or STARTTLS (RFC 3207) as the
mailbox was bound; certificates are always verified (system roots plus ``SEND_CA_FILE``).

The message goes through the three steps one by one (MAIL, RCPT per recipient, DATA) so that a failure names its
step, and so that the caller can record, just before DATA, that the message data is about to leave: a
connection lost after that point is an outcome in doubt (:attr:`Outcome.status` ``unknown``, RFC 1047); before
it, nothing was handed over and the command may be tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import aiosmtplib

from laifaxin_shared.logging import get_logger
from laifaxin_shared.providers.errors import (
    ErrorCode,
    MailError,
    SendStage,
    explain_exception,
    explain_send,
    make_error,
)

log = get_logger(__name__)

_BRACKETED_ID = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")


@dataclass(frozen=True)
class Target:
    """Where and as whom one mailbox submits. ``password`` is the opened credential (never logged)."""

    mailbox_id: str
    host: str
    port: int
    security: Literal["ssl", "starttls"]
    username: str
    password: str = field(repr=False)
    provider_id: str | None = None

    @property
    def key(self) -> str:
        """Identity of a session: a changed server, login or password opens a new one."""
        pw = hashlib.sha256(self.password.encode()).hexdigest()[:16]
        return f"{self.host}:{self.port}:{self.security}:{self.username}:{pw}"


OutcomeStatus = Literal["accepted", "failed", "retry", "unknown"]


@dataclass
class Outcome:
    """What became of one submission.

    ``accepted``: 250 after DATA (``reply`` is its text, ``provider_message_id`` the ``<id>`` it names, as
    Outlook/Microsoft 365 do when they replace the Message-ID). ``failed``: a reply said no for good.
    ``retry``: nothing was handed over and trying later may work (4xx, connection trouble before DATA).
    ``unknown``: the connection broke after the data was sent.
    """

    status: OutcomeStatus
    stage: SendStage = "data"
    error: MailError | None = None
    smtp_code: int | None = None
    reply: str = ""
    provider_message_id: str | None = None
    refused: dict[str, MailError] = field(default_factory=dict)


@dataclass
class _Session:
    smtp: aiosmtplib.SMTP
    key: str
    last_used: float


class SmtpPool:
    """SMTP sessions per mailbox, and :meth:`submit`.

    Args:
        ssl_context: verifying client context (``client_tls_context(SEND_CA_FILE)``).
        timeout: seconds for connecting and for each command.
        per_mailbox: sessions at most open per mailbox.
        idle_seconds: close a session unused this long.
    """

    def __init__(
        self, ssl_context: ssl.SSLContext, *, timeout: float, per_mailbox: int = 2, idle_seconds: float = 60.0
    ) -> None:
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.per_mailbox = per_mailbox
        self.idle_seconds = idle_seconds
        self._idle: dict[str, list[_Session]] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self.connects = 0

    def _limit(self, mailbox_id: str) -> asyncio.Semaphore:
        sem = self._limits.get(mailbox_id)
        if sem is None:
            sem = self._limits[mailbox_id] = asyncio.Semaphore(self.per_mailbox)
        return sem

    async def _connect(self, target: Target) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            use_tls=target.security == "ssl",
            start_tls=target.security == "starttls",
            tls_context=self.ssl_context,
            timeout=self.timeout,
        )
        await smtp.connect()
        self.connects += 1
        return smtp

    def _take_idle(self, target: Target) -> _Session | None:
        sessions = self._idle.get(target.mailbox_id, [])
        while sessions:
            session = sessions.pop()
            if session.key == target.key and session.smtp.is_connected:
                return session
            session.smtp.close()
        return None

    def _give_back(self, mailbox_id: str, session: _Session) -> None:
        if not session.smtp.is_connected:
            return
        session.last_used = asyncio.get_running_loop().time()
        self._idle.setdefault(mailbox_id, []).append(session)

    async def _login(self, target: Target) -> _Session | Outcome:
        """A fresh, logged-in session, or the failure (stage connect or auth)."""
        try:
            smtp = await self._connect(target)
        except aiosmtplib.SMTPResponseException as exc:
            return self._failed(exc.code, exc.message, "connect", target)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
                cause = TimeoutError(str(exc))
            error = explain_exception(
                cause,
                "smtp",
                host=target.host,
                port=target.port,
                security=target.security,
                provider_id=target.provider_id,
                secrets=[target.password],
            )
            return Outcome("retry" if error.retryable else "failed", "connect", error)
        try:
            await _authenticate(smtp, target)
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            return self._failed(exc.code, exc.message, "auth", target)
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            error = explain_exception(exc, "smtp", provider_id=target.provider_id, secrets=[target.password])
            return Outcome("retry", "auth", error)
        return _Session(smtp, target.key, asyncio.get_running_loop().time())

    def _failed(self, code: int, message: str, stage: SendStage, target: Target) -> Outcome:
        error = explain_send(
            message, smtp_code=code, stage=stage, provider_id=target.provider_id, secrets=[target.password]
        )
        return Outcome("retry" if error.retryable else "failed", stage, error, smtp_code=code)

    async def submit(
        self,
        target: Target,
        sender: str,
        recipients: list[str],
        build: Callable[[bool], bytes],
        before_data: Callable[[], Awaitable[None]],
    ) -> Outcome:
        """Submit one message.

        Args:
            target: the mailbox's server and login.
            sender: envelope sender (the bound address: QQ and NetEase refuse any other).
            recipients: envelope recipients.
            build: the message bytes, given whether the server offers SMTPUTF8; may raise ``ValueError``
                (then the outcome is ``failed`` at ``validate``... reported as ``unknown`` code by the caller).
            before_data: awaited after RCPT and before DATA (the caller records the phase).

        Never raises for server or network trouble: every case is an :class:`Outcome`.
        """
        async with self._limit(target.mailbox_id):
            for attempt in (1, 2):
                session = self._take_idle(target)
                reused = session is not None
                if session is None:
                    fresh = await self._login(target)
                    if isinstance(fresh, Outcome):
                        return fresh
                    session = fresh
                outcome = await self._transaction(session, target, sender, recipients, build, before_data)
                if outcome is None and reused and attempt == 1:
                    continue  # an idle session the server had closed: nothing was sent; once more, fresh
                if outcome is None:
                    error = make_error(
                        ErrorCode.SERVER_UNAVAILABLE, protocol="smtp", provider_id=target.provider_id
                    )
                    return Outcome("retry", "mail", error)
                self._give_back(target.mailbox_id, session)
                return outcome
        raise AssertionError("unreachable")

    async def _transaction(
        self,
        session: _Session,
        target: Target,
        sender: str,
        recipients: list[str],
        build: Callable[[bool], bytes],
        before_data: Callable[[], Awaitable[None]],
    ) -> Outcome | None:
        """MAIL, RCPT, DATA on ``session``; None when the connection was gone before DATA (retry)."""
        smtp = session.smtp
        stage: SendStage = "mail"
        try:
            smtputf8 = smtp.supports_extension("smtputf8")
            data = build(smtputf8)
            options: list[str] = []
            size_limit = _size_limit(smtp)
            if size_limit and len(data) > size_limit:
                error = make_error(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    protocol="smtp",
                    provider_id=target.provider_id,
                    server_text=f"message of {len(data)} bytes; the server's SIZE limit is {size_limit}",
                    rule="ehlo_size",
                )
                return Outcome("failed", "mail", error)
            if smtp.supports_extension("size"):
                options.append(f"SIZE={len(data)}")
            if smtputf8 and not data.isascii():
                options.append("SMTPUTF8")
                if smtp.supports_extension("8bitmime"):
                    options.append("BODY=8BITMIME")
            await smtp.mail(sender, options=options, encoding="utf-8" if smtputf8 else "ascii")
            stage = "rcpt"
            refused: dict[str, MailError] = {}
            first: aiosmtplib.SMTPRecipientRefused | None = None
            for rcpt in recipients:
                try:
                    await smtp.rcpt(rcpt, encoding="utf-8" if smtputf8 else "ascii")
                except aiosmtplib.SMTPRecipientRefused as exc:
                    first = first or exc
                    refused[rcpt] = explain_send(
                        exc.message, smtp_code=exc.code, stage="rcpt", provider_id=target.provider_id
                    )
            if len(refused) == len(recipients):
                assert first is not None
                with contextlib.suppress(aiosmtplib.SMTPException):
                    await smtp.rset()
                out = self._failed(first.code, first.message, "rcpt", target)
                out.refused = refused
                return out
            stage = "data"
            try:
                await before_data()
            except BaseException:
                smtp.close()  # MAIL and RCPT are done: the session cannot be reused; DATA never started
                raise
            response = await smtp.data(data)
        except aiosmtplib.SMTPSenderRefused as exc:
            await _rset(smtp)
            return self._failed(exc.code, exc.message, "mail", target)
        except aiosmtplib.SMTPDataError as exc:
            await _rset(smtp)
            return self._failed(exc.code, exc.message, "data", target)
        except aiosmtplib.SMTPResponseException as exc:
            await _rset(smtp)
            return self._failed(exc.code, exc.message, stage, target)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            smtp.close()
            if stage != "data":
                log.info(
                    "smtp session lost before DATA", mailbox_id=target.mailbox_id, error=type(exc).__name__
                )
                return None
            error = make_error(
                ErrorCode.UNKNOWN_OUTCOME,
                protocol="smtp",
                provider_id=target.provider_id,
                server_text=f"{type(exc).__name__} after the message data was sent",
                rule="lost_after_data",
            )
            return Outcome("unknown", "data", error)
        reply = response.message
        found = _BRACKETED_ID.search(reply)
        return Outcome(
            "accepted",
            "data",
            smtp_code=response.code,
            reply=reply[:500],
            provider_message_id=found.group(1) if found else None,
            refused=refused,
        )

    async def drop(self, mailbox_id: str) -> None:
        """Close a mailbox's idle sessions (its settings changed or it was removed)."""
        for session in self._idle.pop(mailbox_id, []):
            await _quit(session.smtp)

    async def reap(self) -> None:
        """Close sessions idle longer than ``idle_seconds``."""
        now = asyncio.get_running_loop().time()
        for mailbox_id, sessions in list(self._idle.items()):
            keep = [s for s in sessions if now - s.last_used < self.idle_seconds and s.smtp.is_connected]
            for s in sessions:
                if s not in keep:
                    await _quit(s.smtp)
            if keep:
                self._idle[mailbox_id] = keep
            else:
                self._idle.pop(mailbox_id, None)

    async def close(self) -> None:
        """QUIT every session."""
        for mailbox_id in list(self._idle):
            await self.drop(mailbox_id)


async def _authenticate(smtp: aiosmtplib.SMTP, target: Target) -> None:
    """One AUTH (RFC 4954): PLAIN where offered, else LOGIN, else aiosmtplib's choice. aiosmtplib's ``login``
    tries every mechanism after a refusal, and each try counts as a failed login at providers that lock an
    account after a few (NetEase, QQ).

    Raises:
        aiosmtplib.SMTPAuthenticationError: refused (``.code``, ``.message``).
    """
    if smtp.last_ehlo_response is None:
        await smtp.ehlo()  # the AUTH mechanisms are in the EHLO reply
    methods = smtp.supported_auth_methods
    if "plain" in methods:
        await smtp.auth_plain(target.username, target.password)
    elif "login" in methods:
        await smtp.auth_login(target.username, target.password)
    else:
        await smtp.login(target.username, target.password)


def _size_limit(smtp: aiosmtplib.SMTP) -> int | None:
    value = smtp.esmtp_extensions.get("size", "")
    try:
        limit = int(value.strip())
    except ValueError:
        return None
    return limit or None


async def _rset(smtp: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        await smtp.rset()


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        async with asyncio.timeout(5):
            await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        smtp.close()
