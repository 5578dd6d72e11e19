"""Events -> read-model documents (:mod:`laifaxin_inbox.store`), a batch at a time, idempotent on redelivery.

- ``mail.received``: the message, its listing, owner and thread entries for the mailbox's owner.
- ``mail.classified``: the classification and a category entry for its owner; mail of the system mailbox that
  matched a sent message also gets listing, owner and thread entries for the campaign owner (the event's
  tenant/user), who reads it in their inbox.
- ``mail.sent``: a sent entry in the conversation, and ``replied`` entries for every msg-id its In-Reply-To and
  References name: those messages leave To Reply.
- ``mailbox.verified`` / ``mailbox.removed``: the mailbox list (removed mailboxes' mail is no longer listed).

Sort time of a message: ``arrived_at`` (when sync first saw it, the same value on both mail events), else the
event's ``occurred_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from laifaxin_shared.events import MailboxRemoved, MailboxVerified, MailClassified, MailReceived, MailSent
from laifaxin_shared.mongo import Document

from . import keys
from .live import Hub
from .store import Store


def _addr(a: Any) -> Document | None:
    return None if a is None else {"name": a.name, "email": a.email}


class Ingest:
    """Writes batches of events into ``store`` and tells ``hub`` what is new."""

    def __init__(self, store: Store, hub: Hub) -> None:
        self.store = store
        self.hub = hub

    async def received(self, events: Sequence[MailReceived]) -> int:
        """Write a batch of ``mail.received``; returns how many messages were new."""
        msgs: list[Document] = []
        entries: list[tuple[str, int, str]] = []
        owners: list[Document] = []
        threads: list[Document] = []
        for ev in events:
            key = ev.ref.natural_key()
            at = keys.ms(ev.arrived_at or ev.occurred_at)
            root = keys.thread_root(ev.ref.message_id, ev.in_reply_to, ev.references)
            msgs.append(
                {
                    "_id": key,
                    "event_id": str(ev.event_id),
                    "tenant_id": ev.tenant_id,
                    "user_id": ev.user_id,
                    "mailbox_id": ev.ref.mailbox_id,
                    "folder": ev.ref.folder,
                    "folder_role": ev.folder_role,
                    "message_id": ev.ref.message_id,
                    "subject": ev.subject,
                    "from": _addr(ev.from_),
                    "to": [_addr(a) for a in ev.to],
                    "cc": [_addr(a) for a in ev.cc],
                    "reply_to": [_addr(a) for a in ev.reply_to],
                    "date": ev.date,
                    "arrived_ms": at,
                    "in_reply_to": ev.in_reply_to,
                    "references": ev.references,
                    "headers": ev.headers,
                    "content_type": ev.content_type,
                    "text": ev.text,
                    "text_truncated": ev.text_truncated,
                    "html_only": ev.html_only,
                    "attachments": [a.model_dump() for a in ev.attachments],
                    "size_bytes": ev.size_bytes,
                    "raw_ref": ev.raw_ref,
                    "thread_root": root,
                }
            )
            self._entries(ev.tenant_id, ev.user_id, key, at, root, entries, owners, threads)
        new = await self.store.insert("messages", msgs)
        await self.store.insert("owners", owners)
        await self.store.insert("threads", threads)
        await self.store.append(entries)
        for ev in events:
            self.hub.publish(
                ev.tenant_id,
                ev.user_id,
                {"type": "message", "id": keys.public_id(ev.ref.natural_key()), "subject": ev.subject},
            )
        return new

    @staticmethod
    def _entries(
        tenant_id: str,
        user_id: str,
        key: str,
        at: int,
        root: str,
        entries: list[tuple[str, int, str]],
        owners: list[Document],
        threads: list[Document],
    ) -> None:
        entries.append((keys.listing_prefix(tenant_id, user_id), at, key))
        threads.append(
            {"_id": f"{keys.thread_prefix(tenant_id, user_id, root)}{keys.ts(at)}{keys.SEP}r{keys.SEP}{key}"}
        )
        owners.append({"_id": keys.owner_id(tenant_id, user_id, key)})

    async def classified(self, events: Sequence[MailClassified]) -> int:
        """Write a batch of ``mail.classified``; returns how many classifications were new."""
        classes: list[Document] = []
        entries: list[tuple[str, int, str]] = []
        owners: list[Document] = []
        threads: list[Document] = []
        foreign = [ev for ev in events if ev.system_mailbox and ev.match is not None]
        known = await self.store.by_ids("messages", [ev.ref.natural_key() for ev in foreign])
        for ev in events:
            key = ev.ref.natural_key()
            at = keys.ms(ev.arrived_at or ev.occurred_at)
            match = ev.match.model_dump() if ev.match is not None else None
            classes.append(
                {
                    "_id": key,
                    "tenant_id": ev.tenant_id,
                    "user_id": ev.user_id,
                    "category": ev.category,
                    "confidence": ev.confidence,
                    "language": ev.language,
                    "snippet": ev.snippet,
                    "match": match,
                    "campaign_id": ev.match.campaign_id if ev.match is not None else None,
                    "sent_message_id": ev.match.sent_message_id if ev.match is not None else None,
                    "system_mailbox": ev.system_mailbox,
                    "ooo_return_date": ev.ooo_return_date.isoformat() if ev.ooo_return_date else None,
                }
            )
            entries.append((keys.category_prefix(ev.tenant_id, ev.user_id, ev.category), at, key))
            if ev.system_mailbox and ev.match is not None:
                doc = known.get(key)
                root = doc["thread_root"] if doc else ev.match.sent_message_id
                self._entries(ev.tenant_id, ev.user_id, key, at, root, entries, owners, threads)
        new = await self.store.insert("classes", classes)
        await self.store.insert("owners", owners)
        await self.store.insert("threads", threads)
        await self.store.append(entries)
        for ev in events:
            self.hub.publish(
                ev.tenant_id,
                ev.user_id,
                {"type": "classified", "id": keys.public_id(ev.ref.natural_key()), "category": ev.category},
            )
        return new

    async def sent(self, events: Sequence[MailSent]) -> int:
        """Write a batch of ``mail.sent``; returns how many answered msg-ids were new."""
        sent: list[Document] = []
        threads: list[Document] = []
        replied: list[Document] = []
        for ev in events:
            at = keys.ms(ev.sent_at)
            named = [*([ev.in_reply_to] if ev.in_reply_to else []), *ev.references]
            root = keys.thread_root(ev.message_id, ev.in_reply_to, ev.references)
            prefix = keys.thread_prefix(ev.tenant_id, ev.user_id, root)
            threads.append({"_id": f"{prefix}{keys.ts(at)}{keys.SEP}s{keys.SEP}{ev.message_id}"})
            sent.append(
                {
                    "_id": keys.replied_id(ev.tenant_id, ev.message_id),
                    "message_id": ev.message_id,
                    "subject": ev.subject,
                    "from": _addr(ev.from_),
                    "to": [_addr(a) for a in ev.to],
                    "sent_at": ev.sent_at,
                    "mailbox_id": ev.mailbox_id,
                }
            )
            for msg_id in dict.fromkeys(named):
                replied.append(
                    {
                        "_id": keys.replied_id(ev.tenant_id, msg_id),
                        "by": ev.message_id,
                        "at": ev.sent_at,
                    }
                )
        await self.store.insert("sent", sent)
        await self.store.insert("threads", threads)
        new = await self.store.insert("replied", replied)
        for ev in events:
            if ev.in_reply_to or ev.references:
                self.hub.publish(ev.tenant_id, ev.user_id, {"type": "replied", "message_id": ev.in_reply_to})
        return new

    async def verified(self, ev: MailboxVerified) -> None:
        await self.store.put_mailbox(
            {
                "_id": ev.mailbox_id,
                "tenant_id": ev.tenant_id,
                "user_id": ev.user_id,
                "email": ev.email,
                "nickname": ev.nickname,
                "provider_id": ev.provider_id,
                "is_system": ev.is_system,
                "removed": False,
            }
        )

    async def removed(self, ev: MailboxRemoved) -> None:
        await self.store.remove_mailbox(ev.mailbox_id)
