"""The read model in the inbox's own database, written only from Kafka events, insert-only and batched.

Collections (``_id`` layouts in :mod:`laifaxin_inbox.keys`):

- ``messages``: ``_id`` = the message key (``mailbox/folder/UIDVALIDITY/UID``); the ``mail.received`` fields.
- ``classes``: ``_id`` = the message key; the ``mail.classified`` fields (category, match, owner).
- ``listing``: ``tenant|user|time|key``: each owner's messages by time (the list endpoint's range scan).
- ``categories``: ``tenant|user|category|time|key`` (category filter and badge counts).
- ``owners``: ``tenant|user|key``: who may read a message (one ``_id`` lookup per message request).
- ``threads``: ``tenant|user|root|time|kind|ident``: received and sent messages of a conversation.
- ``replied``: ``tenant|Message-ID``: messages a ``mail.sent`` of the tenant answered (In-Reply-To/References).
- ``state``: ``tenant|user|key``: what the user set (read, handled); the only documents ever updated.
- ``mailboxes``: ``_id`` = mailbox id: owner, address, system flag, removed.

Every write of an event is an unordered ``insert_many`` whose duplicate-key errors (code 11000) are ignored, so
a redelivered batch changes nothing (FerretDB v1 has no transactions; each insert is atomic on its own).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from laifaxin_shared.mongo import Document

from . import keys

COLLECTIONS = (
    "messages",
    "classes",
    "listing",
    "categories",
    "owners",
    "threads",
    "replied",
    "state",
    "mailboxes",
)


class Store:
    """The collections of the read model and the few operations on them."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.messages = db["messages"]
        self.classes = db["classes"]
        self.listing = db["listing"]
        self.categories = db["categories"]
        self.owners = db["owners"]
        self.threads = db["threads"]
        self.replied = db["replied"]
        self.state = db["state"]
        self.mailboxes = db["mailboxes"]

    async def init(self) -> None:
        """Create the collections (no secondary index: every query is by ``_id``)."""
        existing = set(await self.db.list_collection_names())
        for name in COLLECTIONS:
            if name not in existing:
                with contextlib.suppress(CollectionInvalid, OperationFailure):  # created meanwhile elsewhere
                    await self.db.create_collection(name)

    async def insert(self, collection: str, docs: Sequence[Document]) -> int:
        """Insert ``docs`` unordered; documents whose ``_id`` exists are left as they are. Returns how many
        were new.

        Raises:
            pymongo.errors.PyMongoError: any error but a duplicate key (the batch is then redelivered).
        """
        if not docs:
            return 0
        try:
            result = await self.db[collection].insert_many(list(docs), ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return len(docs) - len(errors)

    async def by_ids(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        """The documents of ``collection`` with these ``_id`` s, by ``_id``."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        return {d["_id"]: d async for d in self.db[collection].find({"_id": {"$in": wanted}})}

    async def range(
        self, collection: str, low: str, high: str, *, descending: bool = True, limit: int = 100
    ) -> list[Document]:
        """Documents with ``low <= _id < high``, in ``_id`` order (newest first when ``descending``)."""
        cursor = (
            self.db[collection]
            .find({"_id": {"$gte": low, "$lt": high}})
            .sort("_id", -1 if descending else 1)
            .limit(limit)
        )
        return [d async for d in cursor]

    async def count_range(self, collection: str, low: str, high: str) -> int:
        return int(await self.db[collection].count_documents({"_id": {"$gte": low, "$lt": high}}))

    async def set_state(self, tenant_id: str, user_id: str, key: str, changes: dict[str, Any]) -> Document:
        """Merge ``changes`` (``read``, ``handled``) into the user's state of a message; returns the state."""
        sid = keys.owner_id(tenant_id, user_id, key)
        await self.state.update_one({"_id": sid}, {"$set": changes}, upsert=True)
        return await self.state.find_one({"_id": sid}) or {"_id": sid}

    async def put_mailbox(self, doc: Document) -> None:
        await self.mailboxes.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def remove_mailbox(self, mailbox_id: str) -> None:
        await self.mailboxes.update_one({"_id": mailbox_id}, {"$set": {"removed": True}}, upsert=True)
