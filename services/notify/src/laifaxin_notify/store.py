"""Notify's MongoDB collections and the queries on them (database ``notify``; FerretDB v1 compatible).

Collections:

- ``preferences``: one document per (tenant_id, user_id) (``_id`` ``tenant|user``): the
  :class:`~.models.Preferences` fields and the ids of the user's bindings.
- ``bindings``: one per (tenant_id, user_id, channel, target_id): a WeChat openid, an alert email address or
  a Web Push subscription (endpoint + keys); ``active`` false after WeChat 43004. Channel ``apprise``: a random
  binding id, ``data`` = the URL sealed with notify's own key ring (``NOTIFY_SECRETS_KEYS``) (``credential``), ``scheme``, redacted
  ``display`` and ``label`` (channels/apprise.py); ``active`` false after WeCom robot 93000.
- ``deliveries``: one per dedupe key (unique index), the status history of one alert.
- ``counters``: alert counts, insert-only: one document per (tenant, user) and batch that alerted them (random
  ``_id``, ``key`` = ``tenant|user``, ``hour``, digest ``window``, ``n`` alerts, ``at``); a user's count in a
  window or an hour is the sum of ``n`` (:meth:`Store.count_alerts`). Index ``key_hour``; hours before the
  current one are deleted (:meth:`Store.prune_counters`).
- ``digests``: one per (tenant, user, window) claim, so one digest is scheduled per window.
- ``removed_mailboxes``: tombstones from ``mailbox.removed``, so in-flight tasks for it are dropped.
- ``provider_ids``: ``channel:provider_id`` (WeChat msgid) -> dedupe key, for delivery receipts.
- ``wechat_links``: pending WeChat QR-code links (``POST /v1/bindings/wechat/qrcode``), one per code: ``_id`` =
  SHA-256 hex of the random scene id (the id itself is not stored), ``tenant_id``, ``user_id``, ``expires_at``,
  and once consumed by a follow/scan event ``consumed_by`` (the openid; ``""`` before) and ``consumed_at``.
  Deleted an hour after they expire (:meth:`Store.prune_wechat_links`, from the QR-code endpoint).
- ``wechat_follows``: per openid (``_id``) the ``CreateTime`` of its latest ``unsubscribe`` event
  (``unsubscribed_at``, seconds since the epoch), so a late redelivery of an older follow/scan event does not
  bind again.
- ``email_confirmations``: double opt-in of alert email addresses, one per confirmation mail: ``_id`` = SHA-256
  hex of the random token mailed (the token itself is not stored), ``tenant_id``, ``user_id``, ``address``,
  ``created_at``, ``expires_at``, ``used_at`` (None until the token is used, once). Counted per user and hour to
  cap confirmation mails; deleted a day after they expire (:meth:`Store.prune_email_confirmations`).
- ``wechat_nonces``: WeChat callback (``timestamp``, ``nonce``) pairs already accepted (``_id`` = SHA-256 of
  ``timestamp|nonce``, ``at``), so a replayed signed request is refused; deleted once older than the accepted
  clock skew (:meth:`Store.prune_wechat_nonces`).
- ``sent``: one mark per delivery the batch path sent on its first attempt (``_id`` = dedupe key, provider id,
  time). Its ``deliveries`` document keeps the ``pending`` claim; readers (:meth:`Store.history`,
  :meth:`Store.acquire`) apply the mark, so such a delivery reads as ``sent`` and is never sent again.
  Why marks: FerretDB v1 commits every updated document as its own SQLite transaction (an ``update_many`` of 400
  documents is 400 commits, ~1-4 s on the shared box) while an ``insert_many`` is one (~25 ms for 400).

No transactions, TTL or partial indexes (FerretDB v1): keys are claimed with
:func:`laifaxin_shared.mongo.insert_unique`. Hot lookups go by ``_id`` (a delivery's ``_id`` is its dedupe key,
a preference's ``tenant|user``, a binding's ``tenant|user|channel|target``): FerretDB's SQLite backend pushes
only ``_id`` filters down to an index, other filters scan, and ``_id`` is unique on every server. A batch reads
many ids of one collection with one ``$in`` query instead (:meth:`Store._by_ids`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from laifaxin_shared.mongo import Document, ensure_indexes, insert_unique

from .models import AlertContent, Channel, DeliveryStatus, DeliveryTask, Preferences

T = TypeVar("T")
MANY_IDS = 16
"""Above this many ids, :meth:`Store._by_ids` sends one ``$in`` query instead of one lookup each."""

INDEXES: dict[str, list[IndexModel]] = {
    "preferences": [
        IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING)], unique=True, name="tenant_user")
    ],
    "bindings": [
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("user_id", ASCENDING),
                ("channel", ASCENDING),
                ("target_id", ASCENDING),
            ],
            unique=True,
            name="binding_identity",
        )
    ],
    "deliveries": [
        IndexModel([("dedupe_key", ASCENDING)], unique=True, name="dedupe_key"),
        IndexModel(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("created_at", DESCENDING)], name="history"
        ),
        IndexModel([("provider_id", ASCENDING)], name="provider_id"),
        IndexModel([("mailbox_id", ASCENDING)], name="mailbox"),
        IndexModel([("digest_window", ASCENDING)], name="digest_window"),
    ],
    "counters": [IndexModel([("key", ASCENDING), ("hour", ASCENDING)], name="key_hour")],
}


def push_target_id(endpoint: str) -> str:
    """Binding id of a Web Push subscription: the first 32 hex chars of SHA-256 of its endpoint URL."""
    return hashlib.sha256(endpoint.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Binding:
    """An active channel target of one user."""

    tenant_id: str
    user_id: str
    channel: Channel
    target_id: str
    data: dict[str, Any]
    active: bool = True


@dataclass(frozen=True)
class Acquired:
    """The result of trying to own a delivery: ``owned`` or why not (``status`` of the existing record)."""

    owned: bool
    status: str = ""
    lease_until: datetime | None = None


async def _busy_retry(op: Callable[[], Awaitable[T]], attempts: int = 6) -> T:
    """Run ``op``, retrying when the server reports a locked database.

    FerretDB's SQLite backend answers concurrent writers with ``database is locked (SQLITE_BUSY)`` as an
    ``OperationFailure`` (code 1) instead of waiting; the write did not happen, so it is safe to repeat. Any other
    failure, or the last attempt's, propagates.
    """
    for attempt in range(attempts):
        try:
            return await op()
        except OperationFailure as exc:
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.02 * (2**attempt) * (0.5 + random.random()))  # noqa: S311  # jitter, not crypto
    raise AssertionError("unreachable")


async def _claim(collection: Any, doc: Document) -> bool:
    """:func:`insert_unique` with :func:`_busy_retry` (an insert refused as busy wrote nothing)."""
    return await _busy_retry(lambda: insert_unique(collection, doc))


async def _insert_new(collection: Any, docs: list[Document]) -> None:
    """``insert_many(ordered=False)`` where a document whose ``_id`` is already there is left as it is.

    Raises:
        BulkWriteError: a write error other than a duplicate key (11000).
    """
    try:
        await _busy_retry(lambda: collection.insert_many(docs, ordered=False))
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise


async def _insert_all(collection: Any, docs: list[Document], attempts: int = 6) -> None:
    """``insert_many(ordered=False)`` of documents with client-made ``_id`` s, all written when it returns.

    Documents refused as busy (``SQLITE_BUSY`` write errors) are sent again; one written meanwhile is a duplicate
    key (11000), taken as written.

    Raises:
        BulkWriteError: another write error, or still busy after ``attempts``.
    """
    pending = docs
    for attempt in range(attempts):
        try:
            await _busy_retry(functools.partial(collection.insert_many, pending, ordered=False))
            return
        except BulkWriteError as exc:
            failed = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
            if not failed:
                return
            if attempt == attempts - 1 or any(
                "database is locked" not in str(e.get("errmsg")) for e in failed
            ):
                raise
            pending = [pending[e["index"]] for e in failed]
            await asyncio.sleep(0.02 * (2**attempt) * (0.5 + random.random()))  # noqa: S311  # jitter
    raise AssertionError("unreachable")


def _bindings_from(docs: list[Document]) -> list[Binding]:
    """Binding documents as :class:`Binding`, oldest first."""
    ordered = sorted(docs, key=lambda d: (str(d.get("created_at")), d["_id"]))
    return [
        Binding(d["tenant_id"], d["user_id"], d["channel"], d["target_id"], d["data"], d["active"])
        for d in ordered
    ]


def _user_key(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}|{user_id}"


def _binding_key(tenant_id: str, user_id: str, channel: str, target_id: str) -> str:
    return f"{tenant_id}|{user_id}|{channel}|{target_id}"


def _link_key(scene_id: str) -> str:
    return hashlib.sha256(scene_id.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Queries on notify's database. Every query is scoped by ``tenant_id``."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.preferences = db["preferences"]
        self.bindings = db["bindings"]
        self.deliveries = db["deliveries"]
        self.counters = db["counters"]
        self.digests = db["digests"]
        self.removed = db["removed_mailboxes"]
        self.provider_ids = db["provider_ids"]
        self.sent = db["sent"]
        self.wechat_links = db["wechat_links"]
        self.wechat_follows = db["wechat_follows"]
        self.email_confirmations = db["email_confirmations"]
        self.wechat_nonces = db["wechat_nonces"]

    async def ensure_indexes(self) -> None:
        """Create the declared indexes (idempotent)."""
        await ensure_indexes(self.db, INDEXES)

    # preferences -------------------------------------------------------------------------------------------
    async def _user_doc(self, tenant_id: str, user_id: str) -> Document | None:
        return await self.preferences.find_one({"_id": _user_key(tenant_id, user_id)})

    async def _ensure_user_doc(self, tenant_id: str, user_id: str) -> str:
        key = _user_key(tenant_id, user_id)
        await _claim(
            self.preferences, {"_id": key, "tenant_id": tenant_id, "user_id": user_id, "binding_ids": []}
        )
        return key

    async def get_preferences(self, tenant_id: str, user_id: str) -> Preferences:
        """The user's preferences, or the defaults when none were saved."""
        doc = await self._user_doc(tenant_id, user_id)
        if doc is None or "prefs" not in doc:
            return Preferences()
        return Preferences.model_validate(doc["prefs"])

    async def put_preferences(self, tenant_id: str, user_id: str, prefs: Preferences) -> None:
        """Save (replace) the user's preferences."""
        key = await self._ensure_user_doc(tenant_id, user_id)
        body = prefs.model_dump(mode="json")
        await _busy_retry(lambda: self.preferences.update_one({"_id": key}, {"$set": {"prefs": body}}))

    # bindings ----------------------------------------------------------------------------------------------
    async def put_binding(self, binding: Binding) -> None:
        """Create or replace a binding with ``binding.active`` (True re-activates a disabled one; an alert email
        address waiting for its confirmation is stored inactive) and list it on the user's document.

        The user document (``preferences``, ``_id`` = ``tenant|user``) keeps the binding ids, so finding a
        user's bindings is a few ``_id`` lookups rather than a collection scan.
        """
        key = _binding_key(binding.tenant_id, binding.user_id, binding.channel, binding.target_id)
        doc = {
            "_id": key,
            "tenant_id": binding.tenant_id,
            "user_id": binding.user_id,
            "channel": binding.channel,
            "target_id": binding.target_id,
            "data": binding.data,
            "active": binding.active,
            "updated_at": _now(),
        }
        if not await _claim(self.bindings, {**doc, "created_at": _now()}):
            await _busy_retry(
                lambda: self.bindings.update_one(
                    {"_id": key},
                    {"$set": {"data": binding.data, "active": binding.active, "updated_at": _now()}},
                )
            )
        user_key = await self._ensure_user_doc(binding.tenant_id, binding.user_id)
        await _busy_retry(
            lambda: self.preferences.update_one({"_id": user_key}, {"$addToSet": {"binding_ids": key}})
        )

    async def _bindings_of(self, doc: Document | None) -> list[Binding]:
        if doc is None:
            return []
        found = await asyncio.gather(
            *(self.bindings.find_one({"_id": k}) for k in doc.get("binding_ids", []))
        )
        return _bindings_from([d for d in found if d is not None])

    async def list_bindings(
        self,
        tenant_id: str,
        user_id: str,
        channels: list[Channel] | None = None,
        *,
        active_only: bool = False,
    ) -> list[Binding]:
        """The user's bindings, optionally only some channels / only active ones."""
        found = await self._bindings_of(await self._user_doc(tenant_id, user_id))
        return [
            b for b in found if (channels is None or b.channel in channels) and (b.active or not active_only)
        ]

    async def get_binding(self, tenant_id: str, user_id: str, channel: str, target_id: str) -> Binding | None:
        """One binding, active or not; None when deleted."""
        d = await self.bindings.find_one({"_id": _binding_key(tenant_id, user_id, channel, target_id)})
        if d is None:
            return None
        return Binding(d["tenant_id"], d["user_id"], d["channel"], d["target_id"], d["data"], d["active"])

    async def set_binding_active(
        self, tenant_id: str, user_id: str, channel: str, target_id: str, active: bool
    ) -> None:
        """Disable (WeChat 43004: the user unfollowed) or re-enable a binding."""
        await self.bindings.update_one(
            {"_id": _binding_key(tenant_id, user_id, channel, target_id)},
            {"$set": {"active": active, "updated_at": _now()}},
        )

    async def delete_binding(self, tenant_id: str, user_id: str, channel: str, target_id: str) -> bool:
        """Remove a binding (Web Push 404/410, or the user unbinding); True when one was removed."""
        key = _binding_key(tenant_id, user_id, channel, target_id)
        await _busy_retry(
            lambda: self.preferences.update_one(
                {"_id": _user_key(tenant_id, user_id)}, {"$pull": {"binding_ids": key}}
            )
        )
        result = await _busy_retry(lambda: self.bindings.delete_one({"_id": key}))
        return result.deleted_count > 0

    async def bindings_of_target(self, channel: str, target_id: str) -> list[Binding]:
        """Every binding (any tenant and user, active or not) of one channel target, e.g. a WeChat openid.

        A scan on FerretDB v1 (not an ``_id`` filter); used by rare events (WeChat ``unsubscribe``) only.
        """
        docs = [d async for d in self.bindings.find({"channel": channel, "target_id": target_id})]
        return _bindings_from(docs)

    # WeChat QR-code links ----------------------------------------------------------------------------------
    async def create_wechat_link(
        self, scene_id: str, tenant_id: str, user_id: str, expires_at: datetime
    ) -> None:
        """Store a pending link of ``scene_id`` (the random QR scene) to (tenant, user) until ``expires_at``.

        Only the SHA-256 of ``scene_id`` is stored (a database reader cannot bind their WeChat to the user).
        """
        doc = {
            "_id": _link_key(scene_id),
            "tenant_id": tenant_id,
            "user_id": user_id,
            "created_at": _now(),
            "expires_at": expires_at,
            "consumed_by": "",
            "consumed_at": None,
        }
        await _busy_retry(lambda: self.wechat_links.insert_one(doc))

    async def prune_wechat_links(self, before: datetime) -> int:
        """Delete the QR links (pending, used or not) that expired before ``before``; returns how many.

        On MongoDB a TTL index on ``expires_at`` could do this; FerretDB v1 has none, so the QR-code endpoint
        calls it (at most once an hour per process). A filter on ``expires_at`` scans there.
        """
        result = await _busy_retry(lambda: self.wechat_links.delete_many({"expires_at": {"$lt": before}}))
        return int(result.deleted_count)

    async def consume_wechat_link(
        self, scene_id: str, openid: str, now: datetime
    ) -> tuple[Document | None, bool]:
        """Take the pending link of ``scene_id`` for ``openid``: ``(link, True)`` when this call consumed it (it
        was unconsumed and ``expires_at`` after ``now``), ``(link, False)`` when ``openid`` had already consumed it
        (a redelivered event: the caller may bind again, idempotently), ``(None, False)`` when it is unknown,
        expired, or consumed by another openid.
        """
        key = _link_key(scene_id)
        taken = await _busy_retry(
            lambda: self.wechat_links.find_one_and_update(
                {"_id": key, "consumed_by": "", "expires_at": {"$gt": now}},
                {"$set": {"consumed_by": openid, "consumed_at": now}},
                return_document=ReturnDocument.AFTER,
            )
        )
        if taken is not None:
            return taken, True
        existing = await self.wechat_links.find_one({"_id": key})
        if existing is not None and existing.get("consumed_by") == openid:
            return existing, False
        return None, False

    async def record_wechat_unsubscribe(self, openid: str, create_time: int) -> None:
        """Remember the ``CreateTime`` of ``openid``'s latest ``unsubscribe`` event (kept if a later one is known)."""
        current = await self.wechat_follows.find_one({"_id": openid})
        if current is None:
            if await _claim(self.wechat_follows, {"_id": openid, "unsubscribed_at": create_time}):
                return
            current = await self.wechat_follows.find_one({"_id": openid}) or {}
        if int(current.get("unsubscribed_at", 0)) < create_time:
            await _busy_retry(
                lambda: self.wechat_follows.update_one(
                    {"_id": openid}, {"$set": {"unsubscribed_at": create_time}}
                )
            )

    async def wechat_unsubscribed_after(self, openid: str, create_time: int) -> bool:
        """True when ``openid`` unsubscribed after ``create_time`` (the event is older than the unfollow)."""
        doc = await self.wechat_follows.find_one({"_id": openid})
        return doc is not None and int(doc.get("unsubscribed_at", 0)) > create_time

    # alert email double opt-in ---------------------------------------------------------------------------------
    async def create_email_confirmation(
        self, token: str, tenant_id: str, user_id: str, address: str, expires_at: datetime
    ) -> None:
        """Store a confirmation of ``address`` for (tenant, user) under the SHA-256 of ``token`` (the token itself,
        mailed to the address, is not stored)."""
        doc = {
            "_id": _link_key(token),
            "tenant_id": tenant_id,
            "user_id": user_id,
            "address": address,
            "created_at": _now(),
            "expires_at": expires_at,
            "used_at": None,
        }
        await _busy_retry(lambda: self.email_confirmations.insert_one(doc))

    async def use_email_confirmation(self, token: str, now: datetime) -> Document | None:
        """Consume the confirmation of ``token``: its document when this call used it (unused and not expired),
        else None (unknown, expired or already used). Single use: a conditional update, one winner."""
        return await _busy_retry(
            lambda: self.email_confirmations.find_one_and_update(
                {"_id": _link_key(token), "used_at": None, "expires_at": {"$gt": now}},
                {"$set": {"used_at": now}},
                return_document=ReturnDocument.AFTER,
            )
        )

    async def count_email_confirmations(self, tenant_id: str, user_id: str, since: datetime) -> int:
        """Confirmation mails made for (tenant, user) since ``since`` (a scan on FerretDB v1; the collection is
        small: a few documents per user, pruned)."""
        return int(
            await self.email_confirmations.count_documents(
                {"tenant_id": tenant_id, "user_id": user_id, "created_at": {"$gte": since}}
            )
        )

    async def prune_email_confirmations(self, before: datetime) -> int:
        """Delete confirmations that expired before ``before``; returns how many."""
        result = await _busy_retry(
            lambda: self.email_confirmations.delete_many({"expires_at": {"$lt": before}})
        )
        return int(result.deleted_count)

    # WeChat callback replay protection ---------------------------------------------------------------------
    async def claim_wechat_nonce(self, timestamp: str, nonce: str, now: datetime) -> bool:
        """True the first time a signed callback's (``timestamp``, ``nonce``) is seen, False for a replay (an
        insert under a unique ``_id``: one winner across workers)."""
        key = hashlib.sha256(f"{timestamp}|{nonce}".encode()).hexdigest()
        return await _claim(self.wechat_nonces, {"_id": key, "at": now})

    async def prune_wechat_nonces(self, before: datetime) -> int:
        """Delete accepted (timestamp, nonce) pairs recorded before ``before`` (older requests are refused by
        their timestamp anyway); returns how many."""
        result = await _busy_retry(lambda: self.wechat_nonces.delete_many({"at": {"$lt": before}}))
        return int(result.deleted_count)

    # deliveries --------------------------------------------------------------------------------------------
    def _delivery_doc(self, task: DeliveryTask, status: DeliveryStatus, now: datetime) -> Document:
        return {
            "_id": task.dedupe_key,
            "dedupe_key": task.dedupe_key,
            "kind": task.kind,
            "tenant_id": task.tenant_id,
            "user_id": task.user_id,
            "channel": task.channel,
            "target_id": task.target_id,
            "event_id": task.event_id,
            "mailbox_id": task.mailbox_id,
            "content": task.content.model_dump(mode="json"),
            "digest_window": task.digest_window,
            "status": status,
            "attempts": task.attempt,
            "provider_id": "",
            "last_error": "",
            "created_at": now,
            "updated_at": now,
            "lease_until": None,
        }

    async def record(self, task: DeliveryTask, status: DeliveryStatus, *, detail: str = "") -> bool:
        """Claim the dedupe key with a non-sending status (deferred, digested, skipped); False if taken."""
        doc = self._delivery_doc(task, status, _now())
        doc["last_error"] = detail
        return await _claim(self.deliveries, doc)

    async def acquire(self, task: DeliveryTask, lease_s: float, *, resume: bool = True) -> Acquired:
        """Own the delivery for ``lease_s`` seconds before sending: the dedupe claim.

        First sight: insert ``pending`` under the unique ``dedupe_key``. Already there: take it over when its
        sender's lease expired (a worker died mid-send) or, for a task coming back from a retry or deferral
        topic (``resume``), when it waits (``retrying``/``deferred``); otherwise report the existing status
        (``sent`` ... means: never send again; a ``sent`` mark counts as ``sent`` whatever the claim says). A
        redelivered event (``resume=False``) never jumps a wait.
        """
        now = _now()
        lease_until = now + timedelta(seconds=lease_s)
        doc = self._delivery_doc(task, "pending", now)
        doc["lease_until"] = lease_until
        if await _claim(self.deliveries, doc):
            return Acquired(True, "pending", lease_until)
        if await self.sent.find_one({"_id": task.dedupe_key}) is not None:
            return Acquired(False, "sent")  # sent by the batch path: its claim still reads pending
        taken = await _busy_retry(
            lambda: self.deliveries.find_one_and_update(
                {
                    "_id": task.dedupe_key,
                    "$or": [
                        {"status": {"$in": ["retrying", "deferred"] if resume else []}},
                        {"status": "pending", "lease_until": {"$lt": now}},
                    ],
                },
                {"$set": {"status": "pending", "lease_until": lease_until, "updated_at": now}},
                return_document=ReturnDocument.AFTER,
            )
        )
        if taken is not None:
            return Acquired(True, "pending", lease_until)
        existing = await self.deliveries.find_one({"_id": task.dedupe_key})
        if existing is None:  # deleted in between (mailbox removed)
            return Acquired(False, "gone")
        return Acquired(False, existing["status"], existing.get("lease_until"))

    async def finish(
        self,
        dedupe_key: str,
        status: DeliveryStatus,
        *,
        attempts: int,
        provider_id: str = "",
        detail: str = "",
    ) -> None:
        """Record the outcome of an attempt and release the lease."""
        update = {
            "$set": {
                "status": status,
                "attempts": attempts,
                "provider_id": provider_id,
                "last_error": detail[:500],
                "updated_at": _now(),
                "lease_until": None,
            }
        }
        await _busy_retry(lambda: self.deliveries.update_one({"_id": dedupe_key}, update))

    async def update_by_provider_id(
        self, channel: str, provider_id: str, status: DeliveryStatus, detail: str
    ) -> int:
        """Apply a provider receipt (WeChat TEMPLATESENDJOBFINISH) to the delivery with that id."""
        update = {"$set": {"status": status, "last_error": detail[:500], "updated_at": _now()}}
        mapped = await self.provider_ids.find_one({"_id": f"{channel}:{provider_id}"})
        if mapped is not None:
            result = await self.deliveries.update_one({"_id": mapped["dedupe_key"]}, update)
        else:
            result = await self.deliveries.update_many(
                {"channel": channel, "provider_id": provider_id}, update
            )
        return result.modified_count

    # batches (one round trip for many documents: FerretDB's cost is per command, not per document) -------------
    async def claim_many(self, tasks: list[DeliveryTask], lease_s: float) -> set[str]:
        """Insert ``pending`` claims for fresh tasks in one ``insert_many(ordered=False)``; returns the dedupe
        keys claimed. Keys already present are left to :meth:`acquire` (duplicate, busy or lease expired)."""
        if not tasks:
            return set()
        now = _now()
        docs = []
        for t in tasks:
            doc = self._delivery_doc(t, "pending", now)
            doc["lease_until"] = now + timedelta(seconds=lease_s)
            docs.append(doc)
        keys = {t.dedupe_key for t in tasks}
        try:
            await _busy_retry(lambda: self.deliveries.insert_many(docs, ordered=False))
        except BulkWriteError as exc:
            # duplicates are someone else's claim; other write errors (SQLITE_BUSY) wrote nothing: both go to
            # the per-delivery path, which claims with insert_unique or finds the existing record
            failed = {docs[e["index"]]["_id"] for e in exc.details.get("writeErrors", [])}
            return keys - failed
        return keys

    async def finish_sent_many(self, sent: list[tuple[DeliveryTask, str]]) -> None:
        """Record first-attempt successes as ``sent`` marks and map provider ids (WeChat msgid) to them.

        ``sent`` is (task, provider id) pairs whose ``pending`` claim this worker holds. Two ``insert_many``
        (one transaction each on FerretDB) whatever the count; a mark or mapping already there is kept.
        """
        if not sent:
            return
        now = _now()
        marks = [
            {"_id": t.dedupe_key, "channel": t.channel, "provider_id": pid, "attempts": 1, "sent_at": now}
            for t, pid in sent
        ]
        await _insert_new(self.sent, marks)
        mapped = [
            {"_id": f"{t.channel}:{pid}", "dedupe_key": t.dedupe_key}
            for t, pid in sent
            if pid and t.channel == "wechat"
        ]
        if mapped:  # a repeated msgid (client_msg_id dedupe) is already mapped
            await _insert_new(self.provider_ids, mapped)

    async def sent_marks(self, keys: list[str]) -> dict[str, Document]:
        """The ``sent`` marks of these dedupe keys, by key (``_id`` lookups: marks accumulate, so a ``$in``
        scan on FerretDB would grow with them)."""
        found = await asyncio.gather(*(self.sent.find_one({"_id": k}) for k in keys))
        return {str(d["_id"]): d for d in found if d is not None}

    async def _by_ids(self, collection: Any, ids: list[str]) -> dict[str, Document]:
        """Documents by ``_id``: one ``$in`` query for more than :data:`MANY_IDS` ids, else ``_id`` lookups.

        On MongoDB ``$in`` on ``_id`` is an index lookup. FerretDB v1 pushes only ``{_id: value}`` down to SQLite
        and answers ``$in`` by scanning the collection, which at development and CI sizes (thousands of
        documents) is still far cheaper than hundreds of round trips (measured: 400 lookups ~0.5 s, a scan of
        2 400 documents ~40 ms).
        """
        if len(ids) > MANY_IDS:
            return {str(d["_id"]): d async for d in collection.find({"_id": {"$in": ids}})}
        found = await asyncio.gather(*(collection.find_one({"_id": i}) for i in ids))
        return {str(d["_id"]): d for d in found if d is not None}

    async def load_users(
        self, users: set[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], Preferences], dict[tuple[str, str], list[Binding]]]:
        """Preferences and active bindings of many users: one query for their documents, one for their
        bindings (see :meth:`_by_ids`)."""
        order = list(users)
        user_docs = await self._by_ids(self.preferences, [_user_key(t, u) for t, u in order])
        binding_ids = [k for d in user_docs.values() for k in d.get("binding_ids", [])]
        binding_docs = await self._by_ids(self.bindings, binding_ids)
        prefs: dict[tuple[str, str], Preferences] = {}
        bindings: dict[tuple[str, str], list[Binding]] = {}
        for t, u in order:
            doc = user_docs.get(_user_key(t, u))
            prefs[(t, u)] = (
                Preferences.model_validate(doc["prefs"]) if doc and "prefs" in doc else Preferences()
            )
            found = [binding_docs[k] for k in (doc or {}).get("binding_ids", []) if k in binding_docs]
            bindings[(t, u)] = [b for b in _bindings_from(found) if b.active]
        return prefs, bindings

    async def removed_mailboxes(self, mailboxes: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (tenant, mailbox) pairs were removed, in one query."""
        if not mailboxes:
            return set()
        found = self.removed.find({"_id": {"$in": [f"{t}|{m}" for t, m in mailboxes]}})
        out = set()
        async for d in found:
            tenant, _, mailbox = str(d["_id"]).partition("|")
            out.add((tenant, mailbox))
        return out

    async def history(
        self, tenant_id: str, user_id: str, *, event_id: str | None = None, limit: int = 50
    ) -> list[Document]:
        """Newest deliveries of a user (optionally of one event), without internal fields.

        A ``sent`` mark is applied: a ``pending`` claim with one reads as ``sent`` (attempts, provider id and
        time from the mark); one a WeChat receipt moved on (``delivered``/``failed``) gets the mark's attempts
        and provider id.
        """
        query: dict[str, Any] = {"tenant_id": tenant_id, "user_id": user_id}
        if event_id:
            query["event_id"] = event_id
        cursor = self.deliveries.find(query, {"_id": 0, "lease_until": 0}).sort("created_at", DESCENDING)
        docs = [d async for d in cursor.limit(limit)]
        markable = ("pending", "delivered", "failed")
        marks = await self.sent_marks(
            [d["dedupe_key"] for d in docs if d.get("status") in markable and not d.get("provider_id")]
        )
        for d in docs:
            mark = marks.get(d["dedupe_key"])
            if mark is None:
                continue
            d.update(attempts=mark["attempts"], provider_id=mark["provider_id"])
            if d.get("status") == "pending":
                d.update(status="sent", updated_at=mark["sent_at"])
        return docs

    async def digested_items(self, task: DeliveryTask) -> list[AlertContent]:
        """Contents folded into the digest window of ``task`` for its channel and target, oldest first."""
        cursor = self.deliveries.find(
            {
                "tenant_id": task.tenant_id,
                "user_id": task.user_id,
                "channel": task.channel,
                "target_id": task.target_id,
                "digest_window": task.digest_window,
                "status": "digested",
            }
        ).sort("created_at", ASCENDING)
        return [AlertContent.model_validate(d["content"]) async for d in cursor]

    # rate limit and digest ---------------------------------------------------------------------------------
    async def count_alerts(
        self, hour: str, window: str, incs: dict[tuple[str, str], int]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """Count alerts of many users: ``incs`` maps (tenant, user) to alerts to add; returns (count in
        ``window``, count in ``hour``) per user, this call's own alerts included.

        Insert-only, two round trips whatever the number of users: one ``insert_many`` of one document per user
        (``key``, ``hour``, ``window``, ``n``, ``at``; one transaction on FerretDB v1, where every *updated*
        document is one), then one ``find`` of those users' documents of the hour (``key`` ``$in``, ``hour``),
        summed here. Exact or conservative across workers: a count never misses an alert whose insert finished
        before this one's read, so of two workers counting one user at once, at least the later reader sees
        both (as if serialized) and at worst both do (both may digest); no increment is lost (FerretDB's
        ``$inc`` is read-modify-write and could lose one). On FerretDB v1 the ``find`` scans the collection
        (only ``_id`` filters use an index there): its cost grows with the documents of the hour; on MongoDB
        it is a ``key_hour`` index lookup.
        """
        keys = {user: _user_key(*user) for user in incs}
        if not keys:
            return {}
        now = _now()
        docs = [
            {"_id": ObjectId(), "key": keys[u], "hour": hour, "window": window, "n": n, "at": now}
            for u, n in incs.items()
            if n > 0
        ]
        if docs:
            await _insert_all(self.counters, docs)
        totals = {key: [0, 0] for key in keys.values()}
        cursor = self.counters.find(
            {"key": {"$in": list(totals)}, "hour": hour}, {"_id": 0, "key": 1, "window": 1, "n": 1}
        )
        async for d in cursor:
            total = totals[d["key"]]
            total[1] += int(d["n"])
            if d.get("window") == window:
                total[0] += int(d["n"])
        return {user: (totals[key][0], totals[key][1]) for user, key in keys.items()}

    async def prune_counters(self, hour: str) -> int:
        """Delete the counter documents of hours before ``hour`` (and any without an hour: the per-user-and-hour
        documents of earlier versions); returns how many.

        On MongoDB a TTL index on ``at`` could do this; FerretDB v1 has no TTL indexes, so the counter calls it
        (:class:`~.pipeline.StoreCounter`: at most once per hour per worker).
        """
        result = await _busy_retry(lambda: self.counters.delete_many({"hour": {"$not": {"$gte": hour}}}))
        return int(result.deleted_count)

    async def claim_digest(self, tenant_id: str, user_id: str, window: str) -> bool:
        """True for the first caller per (user, window): that caller schedules the digest."""
        return await _claim(self.digests, {"_id": f"{tenant_id}|{user_id}|{window}", "created_at": _now()})

    # mailbox removal ---------------------------------------------------------------------------------------
    async def remove_mailbox(self, tenant_id: str, mailbox_id: str) -> int:
        """Drop notify's state for a removed mailbox: a tombstone, and its pending/deferred deliveries skipped.

        Returns how many waiting deliveries were cancelled.
        """
        await _claim(self.removed, {"_id": f"{tenant_id}|{mailbox_id}", "removed_at": _now()})
        result = await self.deliveries.update_many(
            {
                "tenant_id": tenant_id,
                "mailbox_id": mailbox_id,
                "status": {"$in": ["retrying", "deferred", "digested"]},
            },
            {"$set": {"status": "skipped", "last_error": "mailbox removed", "updated_at": _now()}},
        )
        return result.modified_count

    async def mailbox_removed(self, tenant_id: str, mailbox_id: str) -> bool:
        """True when ``mailbox.removed`` was seen for this mailbox."""
        return await self.removed.find_one({"_id": f"{tenant_id}|{mailbox_id}"}) is not None
