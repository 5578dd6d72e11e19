"""Queries of the inbox: every one scoped to the caller's tenant and user by the ``_id`` prefix it scans.

A user sees the messages listed for them: those of the mailboxes they own (from ``mail.received``) and replies
in the system mailbox matched to a campaign they sent (from ``mail.classified``). Anything else is 404, the
same answer as for a message that does not exist.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

from laifaxin_shared.auth import Principal
from laifaxin_shared.events import Category
from laifaxin_shared.mongo import Document

from . import keys
from .content import Attachment, ContentError, RawClient, parse, stream_attachment
from .models import (
    AttachmentOut,
    CountsOut,
    MailboxOut,
    MatchOut,
    MessageOut,
    MessagePage,
    MessageSummary,
    StatePatch,
    ThreadItem,
    ThreadOut,
)
from .sanitize import sanitize_html
from .store import Store

CATEGORIES: tuple[str, ...] = get_args(Category)


class NotFound(Exception):
    """No such message for this caller (or not theirs)."""


class BadRequest(Exception):
    """A malformed parameter (``str(exc)`` says which)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What the list keeps; None means "any"."""

    mailbox_id: str | None = None
    folder: str | None = None
    category: str | None = None
    campaign_id: str | None = None
    sent_message_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    unread: bool | None = None
    handled: bool | None = None


def _encode_cursor(listing_id: str) -> str:
    return base64.urlsafe_b64encode(listing_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this API returned") from None


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class InboxService:
    """Reads the read model (:class:`Store`) and sync's raw content (:class:`RawClient`)."""

    def __init__(self, store: Store, raw: RawClient, *, page_max: int = 200, scan_max: int = 5000) -> None:
        self.store = store
        self.raw = raw
        self.page_max = page_max
        self.scan_max = scan_max

    # ----------------------------------------------------------------------------------------------- list
    async def list_messages(
        self, who: Principal, filters: Filters, *, limit: int = 50, cursor: str | None = None
    ) -> MessagePage:
        """A page of the caller's messages, newest first.

        The scan is a range of ``listing`` (or of ``categories`` with a category filter) bounded by the date
        range and the cursor; other filters are applied to each entry. At most ``scan_max`` entries are read
        per request: a page may then be short, with a cursor to go on.

        Raises:
            BadRequest: a cursor this API did not return, or an unknown category.
        """
        limit = max(1, min(limit, self.page_max))
        if filters.category is not None:
            if filters.category not in CATEGORIES:
                raise BadRequest(f"category must be one of {', '.join(CATEGORIES)}")
            prefix = keys.category_prefix(who.tenant_id, who.user_id, filters.category)
        else:
            prefix = keys.listing_prefix(who.tenant_id, who.user_id)
        low = keys.ts(keys.ms(filters.since)) if filters.since else ""
        high = keys.ts(keys.ms(filters.until) + 1) if filters.until else keys.END
        if cursor:
            after = _decode_cursor(cursor)
            if not after[:13].isdigit() or after[13:14] != keys.SEP:
                raise BadRequest("cursor is not one this API returned")
            high = min(high, after)
        items: list[MessageSummary] = []
        scanned = 0
        last_id: str | None = None
        exhausted = False
        while len(items) < limit and scanned < self.scan_max:
            filtered = any(v is not None for v in _post_filters(filters))
            want = min(max(limit * 2, 50) if filtered else limit, self.scan_max - scanned)
            chunk = await self.store.scan(prefix, low=low, high=high, limit=want)
            scanned += len(chunk)
            if len(chunk) < want:
                exhausted = True
            for summary, entry in await self._rows(who, chunk, filters):
                last_id = entry
                if summary is not None:
                    items.append(summary)
                    if len(items) == limit:
                        break
            if len(items) == limit or exhausted:
                break
            high = chunk[-1]
        full = len(items) == limit
        next_cursor = _encode_cursor(last_id) if last_id is not None and (full or not exhausted) else None
        return MessagePage(items=items, next_cursor=next_cursor)

    async def _rows(
        self, who: Principal, entries: list[str], filters: Filters
    ) -> list[tuple[MessageSummary | None, str]]:
        """Each index entry joined with its message, classification, state and answer; None where a filter
        drops it."""
        keys_ = [keys.entry_value(e) for e in entries]
        msgs = await self.store.by_ids("messages", keys_)
        classes = await self.store.by_ids("classes", keys_)
        states = await self.store.by_ids(
            "state", [keys.owner_id(who.tenant_id, who.user_id, k) for k in keys_]
        )
        replied = await self.store.by_ids(
            "replied",
            [keys.replied_id(who.tenant_id, m["message_id"]) for m in msgs.values() if m.get("message_id")],
        )
        mailboxes = await self.store.by_ids("mailboxes", {m["mailbox_id"] for m in msgs.values()})
        out: list[tuple[MessageSummary | None, str]] = []
        for entry in entries:
            key = keys.entry_value(entry)
            msg = msgs.get(key)
            if msg is None or mailboxes.get(msg["mailbox_id"], {}).get("removed"):
                out.append((None, entry))
                continue
            summary = self._summary(who, msg, classes.get(key), states, replied)
            out.append((summary if _keep(summary, msg, classes.get(key), filters) else None, entry))
        return out

    def _summary(
        self,
        who: Principal,
        msg: Document,
        cls: Document | None,
        states: dict[str, Document],
        replied: dict[str, Document],
    ) -> MessageSummary:
        key = msg["_id"]
        state = states.get(keys.owner_id(who.tenant_id, who.user_id, key), {})
        answered = (
            bool(msg.get("message_id")) and keys.replied_id(who.tenant_id, msg["message_id"]) in replied
        )
        handled = state["handled"] if state.get("handled") is not None else answered
        match = cls.get("match") if cls else None
        return MessageSummary.model_validate(
            {
                "id": keys.public_id(key),
                "mailbox_id": msg["mailbox_id"],
                "folder": msg["folder"],
                "message_id": msg.get("message_id", ""),
                "subject": msg.get("subject", ""),
                "from": msg.get("from"),
                "date": msg.get("date"),
                "received_at": _at(msg["arrived_ms"]),
                "snippet": (cls or {}).get("snippet") or (msg.get("text") or "")[:200],
                "category": cls.get("category") if cls else None,
                "match": MatchOut.model_validate(match) if match else None,
                "has_attachments": bool(msg.get("attachments")),
                "read": bool(state.get("read", False)),
                "handled": bool(handled),
                "replied": answered,
            }
        )

    # ----------------------------------------------------------------------------------------------- one
    async def _owned(self, who: Principal, public_id: str) -> Document:
        key = keys.key_of(public_id)
        if key is None:
            raise NotFound
        owned = await self.store.owners.find_one({"_id": keys.owner_id(who.tenant_id, who.user_id, key)})
        msg = await self.store.messages.find_one({"_id": key}) if owned is not None else None
        if msg is None:
            raise NotFound
        mailbox = await self.store.mailboxes.find_one({"_id": msg["mailbox_id"]})
        if mailbox is not None and mailbox.get("removed"):
            raise NotFound
        return msg

    async def _summary_of(self, who: Principal, msg: Document) -> MessageSummary:
        key = msg["_id"]
        cls = await self.store.classes.find_one({"_id": key})
        states = await self.store.by_ids("state", [keys.owner_id(who.tenant_id, who.user_id, key)])
        replied = await self.store.by_ids(
            "replied", [keys.replied_id(who.tenant_id, msg["message_id"])] if msg.get("message_id") else []
        )
        return self._summary(who, msg, cls, states, replied)

    async def get_message(self, who: Principal, public_id: str) -> MessageOut:
        """One message with headers, text, sanitised HTML and attachments (the last two parsed from sync's raw
        copy; when it cannot be read, ``content_error`` says why and the event's text is shown).

        Raises:
            NotFound: not the caller's, or no such message.
        """
        msg = await self._owned(who, public_id)
        summary = await self._summary_of(who, msg)
        out = MessageOut.model_validate(
            {
                **summary.model_dump(by_alias=True),
                "to": msg.get("to") or [],
                "cc": msg.get("cc") or [],
                "reply_to": msg.get("reply_to") or [],
                "in_reply_to": msg.get("in_reply_to") or "",
                "references": msg.get("references") or [],
                "headers": msg.get("headers") or {},
                "text": msg.get("text") or "",
            }
        )
        try:
            raw, truncated = await self.raw.fetch(msg["raw_ref"])
        except ContentError as exc:
            out.content_error = exc.code
            return out
        parsed = parse(raw, truncated=truncated)
        out.raw_truncated = truncated
        if parsed.text and msg.get("text_truncated"):
            out.text = parsed.text
        if parsed.html is not None:
            safe = sanitize_html(parsed.html)
            out.html = safe.html
            out.remote_images_blocked = safe.remote_images_blocked
        out.attachments = [_attachment_out(a) for a in parsed.attachments]
        return out

    async def attachment(
        self, who: Principal, public_id: str, index: int
    ) -> tuple[Attachment, Iterator[bytes]]:
        """An attachment of the caller's message and an iterator of its decoded bytes.

        Raises:
            NotFound: no such message for the caller, or no attachment at ``index``.
            ContentError: sync's raw copy could not be read.
        """
        msg = await self._owned(who, public_id)
        raw, truncated = await self.raw.fetch(msg["raw_ref"])
        parsed = parse(raw, truncated=truncated)
        if not 0 <= index < len(parsed.attachments):
            raise NotFound
        att = parsed.attachments[index]
        return att, stream_attachment(att)

    async def set_state(self, who: Principal, public_id: str, patch: StatePatch) -> MessageSummary:
        """Mark a message read/unread, handled/not handled.

        Raises:
            NotFound: not the caller's message.
        """
        msg = await self._owned(who, public_id)
        changes = patch.model_dump(exclude_none=True)
        if changes:
            await self.store.set_state(who.tenant_id, who.user_id, msg["_id"], changes)
        return await self._summary_of(who, msg)

    async def thread(self, who: Principal, public_id: str) -> ThreadOut:
        """The conversation of a message: the caller's received and sent messages sharing its root, oldest
        first.

        Raises:
            NotFound: not the caller's message.
        """
        msg = await self._owned(who, public_id)
        root = msg.get("thread_root") or msg.get("message_id") or msg["_id"]
        prefix = keys.thread_prefix(who.tenant_id, who.user_id, root)
        values = [keys.entry_value(i[len(prefix) :]) for i in await self.store.range_ids("threads", prefix)]
        received = await self.store.by_ids("messages", [v[2:] for v in values if v.startswith("r|")])
        sent = await self.store.by_ids(
            "sent", [keys.replied_id(who.tenant_id, v[2:]) for v in values if v.startswith("s|")]
        )
        items: list[ThreadItem] = []
        for v in values:
            if v.startswith("r|"):
                m = received.get(v[2:])
                if m is None:
                    continue
                items.append(
                    ThreadItem.model_validate(
                        {
                            "kind": "received",
                            "id": keys.public_id(m["_id"]),
                            "message_id": m.get("message_id", ""),
                            "subject": m.get("subject", ""),
                            "from": m.get("from"),
                            "at": _at(m["arrived_ms"]),
                        }
                    )
                )
            else:
                d = sent.get(keys.replied_id(who.tenant_id, v[2:]))
                if d is None:
                    continue
                items.append(
                    ThreadItem.model_validate(
                        {
                            "kind": "sent",
                            "message_id": d.get("message_id", ""),
                            "subject": d.get("subject", ""),
                            "from": d.get("from"),
                            "at": d["sent_at"],
                        }
                    )
                )
        return ThreadOut(root=root, items=items)

    async def counts(self, who: Principal) -> CountsOut:
        """Messages per category, and the open To Reply count (up to ``scan_max`` examined)."""
        cats: dict[str, int] = {}
        for cat in CATEGORIES:
            cats[cat] = await self.store.count(keys.category_prefix(who.tenant_id, who.user_id, cat))
        entries = await self.store.scan(
            keys.category_prefix(who.tenant_id, who.user_id, "to_reply"), limit=self.scan_max
        )
        rows = await self._rows(who, entries, Filters(handled=False))
        return CountsOut(categories=cats, to_reply_open=sum(1 for s, _ in rows if s is not None))

    async def mailboxes(self, who: Principal) -> list[MailboxOut]:
        """The caller's bound mailboxes (from mailbox.verified, without removed ones)."""
        cursor = self.store.mailboxes.find({"tenant_id": who.tenant_id, "user_id": who.user_id})
        return [
            MailboxOut(
                id=d["_id"],
                email=d.get("email", ""),
                nickname=d.get("nickname", ""),
                is_system=bool(d.get("is_system")),
            )
            async for d in cursor
            if not d.get("removed")
        ]


def _post_filters(f: Filters) -> tuple[object, ...]:
    """The filters applied entry by entry (category and dates bound the scan itself)."""
    return (f.mailbox_id, f.folder, f.campaign_id, f.sent_message_id, f.unread, f.handled)


def _keep(s: MessageSummary, msg: Document, cls: Document | None, f: Filters) -> bool:
    if f.mailbox_id is not None and msg["mailbox_id"] != f.mailbox_id:
        return False
    if f.folder is not None and msg["folder"] != f.folder:
        return False
    if f.category is not None and s.category != f.category:
        return False
    if f.campaign_id is not None and (cls or {}).get("campaign_id") != f.campaign_id:
        return False
    if f.sent_message_id is not None and (cls or {}).get("sent_message_id") != f.sent_message_id:
        return False
    if f.unread is not None and (not s.read) != f.unread:
        return False
    return not (f.handled is not None and s.handled != f.handled)


def _attachment_out(a: Attachment) -> AttachmentOut:
    return AttachmentOut(
        index=a.index,
        filename=a.filename,
        content_type=a.content_type,
        size_bytes=a.size_bytes,
        inline=a.inline,
        content_id=a.content_id,
    )
