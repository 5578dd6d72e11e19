"""The Sent folder: APPEND a copy of what was sent, and look a Message-ID up there to settle an outcome in doubt.

The folder is the one LIST marks ``\\Sent`` (RFC 6154 section 2), else the first whose last level is a usual
English or Chinese name (decoded from modified UTF-7, RFC 3501 section 5.1.3: ``&XfJT0ZAB-`` is 已发送), else
``Sent``, created. Providers that file SMTP-submitted mail themselves (the catalog's ``sending.files_sent_copy``:
Gmail, Outlook/Microsoft 365, Zoho) get no APPEND, or the user would see two copies; there the lookup still
works, because the provider's own copy carries our Message-ID.

A copy is appended only after the server's 250, and a failed APPEND is logged and never causes a resend.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aioimaplib
from imapclient import imap_utf7

from laifaxin_shared.imap import connect_imap
from laifaxin_shared.logging import get_logger
from laifaxin_shared.providers.errors import explain, explain_exception

log = get_logger(__name__)

SENT_NAMES = frozenset(
    {
        "sent",
        "sent items",
        "sent mail",
        "sent messages",
        "sent-mail",
        "已发送",
        "已发送邮件",
        "已发邮件",
        "寄件備份",
        "寄件备份",
    }
)
"""Usual names of the Sent folder where the server has no SPECIAL-USE: Thunderbird/Dovecot ``Sent``, Outlook
``Sent Items``, Gmail ``[Gmail]/Sent Mail`` (Chinese UI 已发邮件), QQ ``Sent Messages``, NetEase 已发送."""

_LIST = re.compile(
    rb'^(?:LIST )?\((?P<flags>[^)]*)\) (?P<delim>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$', re.IGNORECASE
)


class SentCopyError(Exception):
    """The Sent folder could not be reached or written (the message is sent all the same)."""


@dataclass(frozen=True)
class ImapTarget:
    """A mailbox's IMAP server and login. ``password`` is the opened credential (never logged)."""

    host: str
    port: int
    security: str
    username: str
    password: str
    imap_id_required: bool = False
    provider_id: str | None = None

    def __repr__(self) -> str:
        return f"ImapTarget({self.username!r}@{self.host}:{self.port})"


def _unquote(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def find_sent_folder(lines: Sequence[bytes | bytearray]) -> str | None:
    """The Sent folder's wire name (modified UTF-7) from LIST reply lines; None when there is none."""
    named: str | None = None
    items = list(lines)
    for i, line in enumerate(items):
        if not isinstance(line, bytes | bytearray):
            continue
        m = _LIST.match(bytes(line))
        if not m:
            continue
        raw = m.group("name")
        if re.fullmatch(rb"\{\d+\}", raw.strip()) and i + 1 < len(items):
            wire = bytes(items[i + 1]).decode("utf-8", "replace")
        else:
            wire = _unquote(raw)
        flags = {f.lower() for f in m.group("flags").decode("ascii", "replace").split()}
        if "\\noselect" in flags or "\\nonexistent" in flags:
            continue
        if "\\sent" in flags:
            return wire
        delim = _unquote(m.group("delim")) if m.group("delim").upper() != b"NIL" else None
        try:
            decoded = str(imap_utf7.decode(wire.encode("ascii")))
        except (UnicodeError, ValueError):
            decoded = wire
        leaf = decoded.rsplit(delim, 1)[-1] if delim else decoded
        if named is None and leaf.strip().casefold() in SENT_NAMES:
            named = wire
    return named


def quote(wire_name: str) -> str:
    """A mailbox name as a quoted string (RFC 3501 section 4.3)."""
    return '"' + wire_name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(response: aioimaplib.Response) -> str:
    return b" ".join(x for x in response.lines if isinstance(x, bytes)).decode("utf-8", "replace")


class SentFolder:
    """IMAP access to one mailbox's Sent folder (a short session per use)."""

    def __init__(self, ssl_context: ssl.SSLContext, *, timeout: float) -> None:
        self.ssl_context = ssl_context
        self.timeout = timeout

    async def _open(self, target: ImapTarget) -> aioimaplib.IMAP4:
        try:
            client = await connect_imap(
                target.host,
                target.port,
                "ssl" if target.security == "ssl" else "starttls",
                ssl_context=self.ssl_context,
                timeout=self.timeout,
            )
        except (OSError, aioimaplib.AioImapException, ssl.SSLError) as exc:
            error = explain_exception(
                exc, "imap", host=target.host, port=target.port, secrets=[target.password]
            )
            raise SentCopyError(error.code.value) from None
        login = await client.login(target.username, target.password)
        if login.result != "OK":
            error = explain("imap", _text(login) or "NO", target.provider_id, secrets=[target.password])
            await _logout(client)
            raise SentCopyError(error.code.value)
        if target.imap_id_required and client.has_capability("ID"):
            await client.id(name="Laifaxin", version="1.0", vendor="Laifaxin")  # RFC 2971; NetEase needs it
        return client

    async def _folder(self, client: aioimaplib.IMAP4, *, create: bool) -> str | None:
        listing = await client.list('""', '"*"')
        if listing.result != "OK":
            raise SentCopyError(f"LIST failed: {_text(listing)[:200]}")
        found = find_sent_folder(listing.lines)
        if found is None and create:
            created = await client.create(quote("Sent"))
            if created.result != "OK" and "ALREADYEXISTS" not in _text(created).upper():
                raise SentCopyError(f"CREATE Sent failed: {_text(created)[:200]}")
            found = "Sent"
        return found

    async def append(self, target: ImapTarget, data: bytes, when: datetime) -> str:
        """APPEND ``data`` to the Sent folder, flagged ``\\Seen``; returns the folder's wire name.

        Raises:
            SentCopyError: the server could not be reached or refused (code or reply in the message).
        """
        client = await self._open(target)
        try:
            folder = await self._folder(client, create=True)
            assert folder is not None
            reply = await client.append(data, mailbox=quote(folder), flags="(\\Seen)", date=when)
            if reply.result != "OK":
                raise SentCopyError(f"APPEND failed: {_text(reply)[:200]}")
            return folder
        except (OSError, aioimaplib.AioImapException, TimeoutError) as exc:
            raise SentCopyError(type(exc).__name__) from None
        finally:
            await _logout(client)

    async def contains(self, target: ImapTarget, message_id: str) -> bool:
        """Whether the Sent folder holds a message with this Message-ID (``UID SEARCH HEADER Message-ID``,
        RFC 3501 section 6.4.4); False when there is no Sent folder.

        Raises:
            SentCopyError: the server could not be reached or refused the search.
        """
        client = await self._open(target)
        try:
            folder = await self._folder(client, create=False)
            if folder is None:
                return False
            selected = await client.select(quote(folder))  # aioimaplib allows UID commands only after SELECT
            if selected.result != "OK":
                raise SentCopyError(f"SELECT failed: {_text(selected)[:200]}")
            found = await client.uid_search(f'HEADER Message-ID "<{message_id}>"', charset=None)
            if found.result != "OK":
                raise SentCopyError(f"SEARCH failed: {_text(found)[:200]}")
            data = [
                line for line in found.lines[:-1] if isinstance(line, bytes)
            ]  # the last is the tagged text
            uids = [tok for line in data for tok in line.split() if tok.isdigit()]
            return bool(uids)
        except (OSError, aioimaplib.AioImapException, TimeoutError) as exc:
            raise SentCopyError(type(exc).__name__) from None
        finally:
            await _logout(client)


async def _logout(client: aioimaplib.IMAP4) -> None:
    try:
        await client.logout()
    except (OSError, aioimaplib.AioImapException, TimeoutError) as exc:
        log.debug("imap logout failed", error=type(exc).__name__)
