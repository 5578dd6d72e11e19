"""Message content on demand: the raw message read from sync's ``GET /v1/raw`` with a signed grant, parsed with the
standard ``email`` package into its HTML body and attachments.

Bounds: a raw message over ``INBOX_MAX_RAW_BYTES`` is refused while it streams in; MIME nesting deeper than
:data:`~laifaxin_shared.mime.message.MAX_DEPTH` is not followed; at most
:data:`~laifaxin_shared.mime.message.MAX_ATTACHMENTS` attachments are listed (the limits the sync parser applies).
An attachment is decoded chunk by chunk while it is sent (base64 in aligned slices, RFC 2045 section 6.8), so its
decoded bytes are never held whole.
"""

from __future__ import annotations

import base64
import binascii
import quopri
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

import httpx

from laifaxin_shared import content_token
from laifaxin_shared.mime.charsets import decode_bytes
from laifaxin_shared.mime.message import MAX_ATTACHMENTS, MAX_DEPTH

_PARSER = BytesParser(policy=policy.default)
DECODE_CHUNK_CHARS = 64 * 1024  # base64 characters per decoded slice (a multiple of 4)


class ContentError(Exception):
    """The raw message could not be had: ``code`` is ``content_unavailable`` (sync not configured or not
    answering), ``content_missing`` (sync has no such message) or ``content_too_large``."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment of a parsed message; ``index`` is its position in :attr:`Parsed.attachments`."""

    index: int
    filename: str
    content_type: str
    size_bytes: int
    inline: bool
    content_id: str | None
    part: Message = field(repr=False)


@dataclass(slots=True)
class Parsed:
    """The parts of a message the inbox shows."""

    html: str | None = None
    text: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    truncated: bool = False


class RawClient:
    """Reads raw messages from sync with a grant signed by ``secret`` (:mod:`laifaxin_shared.content_token`)."""

    def __init__(self, base_url: str, secret: str, *, timeout_s: float, max_bytes: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.max_bytes = max_bytes
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def fetch(self, raw_ref: str) -> tuple[bytes, bool]:
        """The raw bytes of ``raw_ref`` and whether sync's stored copy was truncated.

        Raises:
            ContentError: see the class.
        """
        if not self.secret:
            raise ContentError("content_unavailable", "INBOX_SYNC_CONTENT_SECRET is not set")
        headers = content_token.sign(self.secret, raw_ref, ttl_s=60)
        try:
            async with self.http.stream("GET", f"{self.base_url}/v1/raw", headers=headers) as resp:
                if resp.status_code == 404:
                    raise ContentError("content_missing", "sync has no such raw message")
                if resp.status_code != 200:
                    raise ContentError("content_unavailable", f"sync answered {resp.status_code}")
                buf = bytearray()
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > self.max_bytes:
                        raise ContentError("content_too_large", f"over {self.max_bytes} bytes")
                return bytes(buf), resp.headers.get("x-laifaxin-truncated") == "1"
        except httpx.HTTPError as exc:
            raise ContentError("content_unavailable", type(exc).__name__) from None


def _filename(part: Message) -> str:
    try:
        return str(part.get_filename() or "")
    except Exception:  # noqa: BLE001  # a malformed parameter: the attachment is still listed, unnamed
        return ""


def _decoded_size(part: Message) -> int:
    payload = part.get_payload(decode=False)
    if not isinstance(payload, str):
        return 0
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        return len("".join(payload.split())) * 3 // 4
    return len(payload)


def _body_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    return decode_bytes(data, part.get_content_charset()).text


def parse(raw: bytes, *, truncated: bool = False) -> Parsed:
    """The HTML body (first ``text/html`` part that is not an attachment), the text body and the attachments
    (leaf parts with a filename, an ``attachment`` disposition or a non-text type), in document order."""
    msg = _PARSER.parsebytes(raw)
    out = Parsed(truncated=truncated)

    def visit(part: Message, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                for sub in payload:
                    if isinstance(sub, Message):
                        visit(sub, depth + 1)
            return
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        name = _filename(part)
        is_body = ctype in ("text/plain", "text/html") and disposition != "attachment" and not name
        if is_body:
            if ctype == "text/html" and out.html is None:
                out.html = _body_text(part)
            elif ctype == "text/plain" and out.text is None:
                out.text = _body_text(part)
            return
        if len(out.attachments) >= MAX_ATTACHMENTS:
            return
        cid = part.get("content-id")
        out.attachments.append(
            Attachment(
                index=len(out.attachments),
                filename=name,
                content_type=ctype,
                size_bytes=_decoded_size(part),
                inline=disposition == "inline" or (disposition is None and cid is not None),
                content_id=str(cid).strip().strip("<>") if cid else None,
                part=part,
            )
        )

    visit(msg, 0)
    return out


def stream_attachment(att: Attachment) -> Iterator[bytes]:
    """The decoded bytes of ``att`` in slices (base64 and quoted-printable decoded, others as stored)."""
    part = att.part
    if isinstance(part, EmailMessage) and part.get_content_maintype() == "message":
        yield part.as_bytes()
        return
    payload = part.get_payload(decode=False)
    if not isinstance(payload, str):
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            yield data
        return
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        pending = ""
        for line in payload.splitlines():
            pending += line.strip()
            if len(pending) >= DECODE_CHUNK_CHARS:
                cut = len(pending) - len(pending) % 4
                yield _b64(pending[:cut])
                pending = pending[cut:]
        if pending:
            yield _b64(pending + "=" * (-len(pending) % 4))
    elif cte == "quoted-printable":
        yield quopri.decodestring(payload.encode("ascii", "surrogateescape"))
    else:
        yield payload.encode("utf-8", "surrogateescape")


def _b64(chunk: str) -> bytes:
    try:
        return base64.b64decode(chunk, validate=False)
    except binascii.Error:
        return b""
