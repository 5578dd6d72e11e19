"""Building the message of a ``mail.send`` command with the standard library's email package.

- ``EmailMessage`` serialised with ``email.policy.SMTP`` (CRLF line ends, RFC 5322): non-ASCII display names and
  subjects are RFC 2047 encoded words (``=?utf-8?b?...?=``), bodies are quoted-printable or base64, so the
  message is 7-bit clean for any server; with ``SMTPUTF8`` (RFC 6531) offered and a non-ASCII address present,
  ``email.policy.SMTPUTF8`` keeps UTF-8 headers as they are.
- ``Message-ID`` is derived from the command: ``<lfx.<24 hex of SHA-256(tenant/command_id)>@<mailbox domain>>``
  (RFC 5322 section 3.6.4), so a rebuilt message carries the same id, which is how an outcome in doubt is
  looked up in the Sent folder, and how replies and bounces are matched to it.
- ``Date`` (RFC 5322 section 3.6.1, mandatory): when the message is built for submission.
- Replies: ``In-Reply-To`` (the parent) and ``References`` (the thread, ending with the parent).
- Campaigns with an unsubscribe URL: ``List-Unsubscribe: <https://...>`` and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058 section 3.1).
- Mail from the system mailbox: ``Reply-To`` = the signed reply token address (``reply+TOKEN@system domain``,
  :meth:`laifaxin_shared.replytoken.ReplyTokens.reply_address`), so replies find their campaign even when a
  client drops the threading headers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from laifaxin_shared.events import EmailAddress, SendCommand
from laifaxin_shared.replytoken import ReplyTokens, normalize_message_id


class MessageError(ValueError):
    """The command cannot be turned into a message (an address the server cannot take, ...)."""


def message_id_for(tenant_id: str, command_id: str, mailbox_email: str) -> str:
    """The Message-ID of a command's message, without angle brackets: ``lfx.<24 hex>@<mailbox domain>``."""
    digest = hashlib.sha256(f"{tenant_id}/{command_id}".encode()).hexdigest()[:24]
    domain = mailbox_email.rpartition("@")[2].lower() or "laifaxin.invalid"
    return f"lfx.{digest}@{domain}"


def _bracket(message_id: str) -> str:
    return f"<{normalize_message_id(message_id)}>"


def _address(addr: EmailAddress) -> Address:
    email = addr.email.strip()
    local, _, domain = email.rpartition("@")
    try:
        return Address(display_name=addr.name.strip(), username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise MessageError(f"not an email address: {email[:80]!r}") from exc


def needs_smtputf8(command: SendCommand, sender: str) -> bool:
    """True when an address (not a display name) is not ASCII: only SMTPUTF8 (RFC 6531) can carry it."""
    return not all(a.isascii() for a in [sender, *command.recipients()])


def transfer_encoding(text: str) -> str:
    """A 7-bit clean Content-Transfer-Encoding for a text body (RFC 2045 section 6): ``7bit`` for ASCII,
    ``base64`` when most characters are not ASCII (Chinese text: a third smaller than quoted-printable),
    ``quoted-printable`` otherwise (mostly-Latin text stays readable)."""
    if text.isascii():
        return "7bit"
    wide = sum(1 for ch in text if ord(ch) > 127)
    return "base64" if wide * 3 > len(text) else "quoted-printable"


@dataclass(frozen=True)
class Built:
    """A built message: the bytes to submit, its Message-ID and the reply token it carries (if any)."""

    data: bytes
    message_id: str
    reply_token: str | None
    smtputf8: bool


def build_message(
    command: SendCommand,
    *,
    mailbox_email: str,
    now: datetime,
    system_mailbox: bool = False,
    reply_tokens: ReplyTokens | None = None,
    smtputf8: bool = False,
) -> Built:
    """The message of ``command`` from ``mailbox_email``.

    Args:
        command: the command (already validated by its model).
        mailbox_email: the bound address: From and the Message-ID's domain.
        now: the Date header's time.
        system_mailbox: the platform's system mailbox: Reply-To is a signed reply token (needs
            ``reply_tokens``).
        reply_tokens: the token signer.
        smtputf8: the server offers SMTPUTF8 (needed only for non-ASCII addresses).

    Raises:
        MessageError: a non-ASCII address without SMTPUTF8, an unparseable address, or a system-mailbox
            command without a token signer.
    """
    if needs_smtputf8(command, mailbox_email) and not smtputf8:
        raise MessageError("a non-ASCII address needs SMTPUTF8 (RFC 6531), which this server does not offer")
    message_id = message_id_for(command.tenant_id, command.command_id, mailbox_email)
    msg = EmailMessage(policy=policy.SMTPUTF8 if smtputf8 else policy.SMTP)
    msg["From"] = _address(EmailAddress(name=command.from_name, email=mailbox_email))
    if command.to:
        msg["To"] = [_address(a) for a in command.to]
    if command.cc:
        msg["Cc"] = [_address(a) for a in command.cc]
    msg["Subject"] = command.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = _bracket(message_id)
    if command.in_reply_to:
        parent = _bracket(command.in_reply_to)
        refs = [_bracket(r) for r in command.references]
        if parent not in refs:
            refs.append(parent)
        msg["In-Reply-To"] = parent
        msg["References"] = " ".join(refs)
    elif command.references:
        msg["References"] = " ".join(_bracket(r) for r in command.references)
    token: str | None = None
    if system_mailbox:
        if reply_tokens is None:
            raise MessageError("system-mailbox mail needs the reply token key ring")
        address = reply_tokens.reply_address(message_id, mailbox=mailbox_email, today=now.date())
        token = address.partition("+")[2].partition("@")[0]
        msg["Reply-To"] = _address(EmailAddress(name=command.from_name, email=address))
    if command.kind == "campaign" and command.unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{command.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if command.text is not None:
        msg.set_content(command.text, cte=transfer_encoding(command.text))
        if command.html is not None:
            msg.add_alternative(command.html, subtype="html", cte=transfer_encoding(command.html))
    else:
        html = command.html or ""
        msg.set_content(html, subtype="html", cte=transfer_encoding(html))
    for att in command.attachments:
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(att.content(), maintype=maintype, subtype=subtype, filename=att.filename)
    return Built(data=msg.as_bytes(), message_id=message_id, reply_token=token, smtputf8=smtputf8)
