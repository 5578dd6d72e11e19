"""Syncing one selected folder: cursor, baseline, UIDVALIDITY, bounded UID FETCH, store -> publish -> cursor.

The rules (ARCHITECTURE.md "Sync algorithm", reference/sync.md lessons 1, 2, 5, 6, 7, 9):

- **Cheap change detection.** A folder is fetched only when SELECT/EXAMINE or STATUS shows a change against
  the cursor: UIDNEXT moved, or (with CONDSTORE, RFC 7162 3.1) HIGHESTMODSEQ moved.
- **Baseline.** The first sync of a folder records UIDNEXT as ``baseline_uidnext``; messages below it are
  history: published (with ``initial_sync=true``) only when their INTERNALDATE is inside the mailbox's
  ``initial_window_days``, found with ``UID SEARCH SINCE`` (RFC 3501 6.4.4) and checked exactly per message.
- **UIDVALIDITY change** (RFC 3501 2.3.1.1): re-baseline quietly at the new UIDNEXT, nothing is replayed, and
  the caller reports ``uidvalidity_reset`` once. A UIDNEXT that went backwards without a UIDVALIDITY change
  is a server fault (Delta Chat): the cursor is pulled back so the folder is re-read; the index keeps
  anything already published from being published twice.
- **Bounded batches.** ``UID FETCH`` of at most ``batch`` UIDs with ``(UID INTERNALDATE RFC822.SIZE
  BODY.PEEK[])`` (PEEK leaves ``\\Seen`` alone, RFC 3501 6.4.5).
- **Order of effects per batch**: index claim (unique location + unique Message-ID/hash) -> raw bytes stored
  -> ``mail.received`` (or the DLQ for quarantined bytes) acknowledged with acks=all -> cursor advanced (the
  commit point). A crash anywhere leaves the cursor behind; the retry finds the entries it had claimed at the
  same location and republishes them under the same ``event_id`` (consumers dedupe on it), and skips copies
  indexed at another location: at-least-once publish, one index entry per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import aioimaplib
from bson import Binary

from laifaxin_shared.events import MailReceived
from laifaxin_shared.events.base import utc_now
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mime import QuarantineError, parse_message
from laifaxin_sync.imap_parse import FetchedMessage, FolderStatus, parse_fetch, parse_search, uid_set
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.publisher import Publisher
from laifaxin_sync.store import Cursor, IndexEntry, SyncStore, dedupe_key, message_key

log = get_logger(__name__)

FETCH_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ImapCommandError(RuntimeError):
    """The server answered NO/BAD to a sync command; ``text`` is its reply (no credentials in it)."""

    def __init__(self, command: str, text: str) -> None:
        super().__init__(f"{command}: {text}")
        self.command = command
        self.text = text


@dataclass(frozen=True)
class MailboxIdentity:
    """Who a folder belongs to: the envelope fields of its events."""

    mailbox_id: str
    tenant_id: str
    user_id: str
    initial_window_days: int


@dataclass(frozen=True)
class Folder:
    """A synced folder: decoded name (as in ``MessageRef.folder``), the name for commands, and its role."""

    name: str
    command_name: str
    role: Literal["inbox", "junk", "other"]


def imap_date(day: datetime) -> str:
    """A SEARCH date (RFC 3501 9 ``date``): ``1-Feb-2026``."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def _check(response: aioimaplib.Response, command: str) -> aioimaplib.Response:
    if response.result != "OK":
        text = b" ".join(x for x in response.lines if isinstance(x, bytes)).decode("utf-8", "replace")
        raise ImapCommandError(command, text[:500])
    return response


class FolderSync:
    """Sync of the folders of one mailbox over one authenticated connection.

    ``guard`` is awaited before each batch: it raises to abandon the sync (stop requested, lease lost), so no
    cursor moves after that point. ``on_reset`` is awaited once per UIDVALIDITY change with the folder name.
    """

    def __init__(
        self,
        *,
        identity: MailboxIdentity,
        store: SyncStore,
        publisher: Publisher,
        metrics: SyncMetrics,
        batch: int,
        raw_max_bytes: int,
        catchup_batch: int | None = None,
        guard: Callable[[], None],
        on_reset: Callable[[Folder, int, int], Awaitable[None]],
    ) -> None:
        self.identity = identity
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.batch = batch
        self.catchup_batch = catchup_batch or batch
        self.raw_max_bytes = raw_max_bytes
        self.guard = guard
        self.on_reset = on_reset
        self.cursors: dict[str, Cursor] = {}

    async def cursor(self, folder: Folder) -> Cursor | None:
        """The folder's cursor (cached after the first read)."""
        cur = self.cursors.get(folder.name)
        if cur is None:
            cur = await self.store.load_cursor(self.identity.mailbox_id, folder.name)
            if cur is not None:
                self.cursors[folder.name] = cur
        return cur

    async def changed(self, folder: Folder, status: FolderStatus) -> bool:
        """True when STATUS/EXAMINE counters differ from the cursor (or there is no cursor yet)."""
        cur = await self.cursor(folder)
        if cur is None or status.uidvalidity != cur.uidvalidity:
            return True
        if status.highestmodseq is not None and cur.highestmodseq is not None:
            if status.highestmodseq != cur.highestmodseq:
                return True
            return status.uidnext is not None and cur.last_uid < status.uidnext - 1
        return status.uidnext is None or status.uidnext != cur.uidnext or cur.last_uid < status.uidnext - 1

    async def sync_selected(self, client: aioimaplib.IMAP4, folder: Folder, status: FolderStatus) -> int:
        """Sync ``folder``, which ``client`` has just SELECTed/EXAMINEd with the reply ``status``.

        Returns the number of ``mail.received`` events published. Raises ImapCommandError, aioimaplib and
        network errors, Kafka and Mongo errors; whatever was acknowledged before stays acknowledged.
        """
        if status.uidvalidity is None or status.uidnext is None:
            raise ImapCommandError("EXAMINE", f"{folder.name}: no UIDVALIDITY/UIDNEXT in the reply")
        cur = await self.cursor(folder)
        if cur is None:
            cur = await self._baseline(client, folder, status, self.identity.initial_window_days)
        elif status.uidvalidity != cur.uidvalidity:
            old = cur.uidvalidity
            cur = await self._baseline(client, folder, status, None, resets=cur.resets + 1)
            log.warning(
                "uidvalidity changed: re-baselined without replay",
                mailbox_id=self.identity.mailbox_id,
                folder=folder.name,
                old=old,
                new=status.uidvalidity,
            )
            await self.on_reset(folder, old, status.uidvalidity)
        elif status.uidnext < cur.uidnext or status.uidnext <= cur.high_water:
            log.warning(
                "UIDNEXT went backwards: resync",
                mailbox_id=self.identity.mailbox_id,
                folder=folder.name,
                cursor_uidnext=cur.uidnext,
                server_uidnext=status.uidnext,
            )
            # UIDs above the baseline may have been reused for new mail: read them again. high_water keeps what
            # was published from being published again; a reused location is re-indexed (FolderSync._process).
            cur.last_uid = min(cur.last_uid, cur.baseline_uidnext - 1)
        published = 0
        if await self.changed(folder, status) or cur.last_uid < status.uidnext - 1:
            published = await self.fetch_new(client, folder)
        cur.uidnext = max(status.uidnext, cur.last_uid + 1)
        cur.highestmodseq = status.highestmodseq
        cur.messages = status.messages
        await self.store.save_cursor(cur)
        return published

    async def _baseline(
        self,
        client: aioimaplib.IMAP4,
        folder: Folder,
        status: FolderStatus,
        window_days: int | None,
        resets: int = 0,
    ) -> Cursor:
        assert status.uidvalidity is not None and status.uidnext is not None
        last_uid = status.uidnext - 1
        window_start = None
        if window_days:
            window_start = utc_now() - timedelta(days=window_days)
            reply = _check(
                await client.uid_search(f"SINCE {imap_date(window_start)}", charset=None), "UID SEARCH"
            )
            in_window = [u for u in parse_search(reply.lines) if u < status.uidnext]
            if in_window:
                last_uid = min(in_window) - 1
        cur = Cursor(
            mailbox_id=self.identity.mailbox_id,
            folder=folder.name,
            uidvalidity=status.uidvalidity,
            uidnext=status.uidnext,
            last_uid=last_uid,
            baseline_uidnext=status.uidnext,
            window_start=window_start,
            highestmodseq=None,  # unknown until the first pass completes: forces a fetch check
            messages=status.messages,
            resets=resets,
        )
        await self.store.save_cursor(cur)
        self.cursors[folder.name] = cur
        return cur

    async def fetch_new(self, client: aioimaplib.IMAP4, folder: Folder) -> int:
        """Fetch and publish every UID above the cursor, batch by batch, until none is left.

        The folder must be selected. Returns the number of ``mail.received`` events published.
        """
        cur = await self.cursor(folder)
        if cur is None:
            raise RuntimeError(f"no cursor for {folder.name}")
        published = 0
        while True:
            reply = _check(await client.uid_search(f"UID {cur.last_uid + 1}:*", charset=None), "UID SEARCH")
            # "n:*" with n above the largest UID still matches the last message (RFC 3501 6.4.8): filter.
            uids = [u for u in parse_search(reply.lines) if u > cur.last_uid]
            if not uids:
                return published
            if cur.last_uid + 1 < cur.baseline_uidnext and cur.window_start is not None:
                history = _check(
                    await client.uid_search(
                        f"UID {cur.last_uid + 1}:{cur.baseline_uidnext - 1} SINCE {imap_date(cur.window_start)}",
                        charset=None,
                    ),
                    "UID SEARCH",
                )
                wanted = set(parse_search(history.lines))
                uids = [u for u in uids if u >= cur.baseline_uidnext or u in wanted]
            elif cur.last_uid + 1 < cur.baseline_uidnext:
                uids = [u for u in uids if u >= cur.baseline_uidnext]
            if not uids:
                cur.last_uid = max(cur.last_uid, cur.baseline_uidnext - 1)
                cur.high_water = max(cur.high_water, cur.last_uid)
                await self.store.save_cursor(cur)
                continue
            size = self.catchup_batch if len(uids) > self.catchup_batch else self.batch
            chunks = [uids[i : i + size] for i in range(0, len(uids), size)]
            published += await self._batches(client, folder, cur, chunks)

    async def _fetch(self, client: aioimaplib.IMAP4, uids: list[int]) -> list[FetchedMessage]:
        """UID FETCH a batch. When the server refuses the batch (NO/BAD), the UIDs are fetched one by one and
        a UID refused alone is skipped with a log line and an error count: one broken message must not hold the
        folder (Nylas #288/#396)."""
        reply = await client.uid("fetch", uid_set(uids), FETCH_ITEMS)
        if reply.result != "OK":
            if len(uids) == 1:
                text = b" ".join(x for x in reply.lines if isinstance(x, bytes)).decode("utf-8", "replace")
                log.warning("UID FETCH refused; message skipped", uid=uids[0], server_text=text[:300])
                self.metrics.errors.labels("fetch_refused").inc()
                return []
            out: list[FetchedMessage] = []
            for uid in uids:
                out.extend(await self._fetch(client, [uid]))
            return out
        wanted = set(uids)
        return sorted((m for m in parse_fetch(reply.lines) if m.uid in wanted), key=lambda m: m.uid)

    async def _batches(
        self, client: aioimaplib.IMAP4, folder: Folder, cur: Cursor, chunks: list[list[int]]
    ) -> int:
        """Process ``chunks`` in order; the UID FETCH of the next chunk runs while this one is stored and
        published (it has no side effect), so the IMAP round trip overlaps Mongo and Kafka."""
        published = 0
        self.guard()
        pending: asyncio.Task[list[FetchedMessage]] = asyncio.create_task(self._fetch(client, chunks[0]))
        try:
            for i, chunk in enumerate(chunks):
                fetched = await pending
                if i + 1 < len(chunks):
                    self.guard()
                    pending = asyncio.create_task(self._fetch(client, chunks[i + 1]))
                published += await self._process(folder, cur, chunk, fetched)
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, aioimaplib.AioImapException, OSError):
                    await pending
        return published

    async def _process(
        self, folder: Folder, cur: Cursor, uids: list[int], fetched: list[FetchedMessage]
    ) -> int:
        """Index -> store raw -> publish -> mark published -> advance the cursor, for one fetched batch."""
        missing = set(uids) - {m.uid for m in fetched}
        if missing:
            log.info(
                "uids expunged before fetch", mailbox_id=cur.mailbox_id, folder=folder.name, n=len(missing)
            )
        arrived = utc_now()
        candidates: list[tuple[FetchedMessage, IndexEntry, MailReceived | None]] = []
        for msg in fetched:
            initial = msg.uid < cur.baseline_uidnext
            if (
                initial
                and cur.window_start is not None
                and msg.internal_date is not None
                and msg.internal_date < cur.window_start
            ) or msg.body is None:
                continue
            candidates.append(self._prepare(folder, cur, msg, initial, arrived))
        # Raw bytes go in while the index slots are claimed (both must precede the publish; a duplicate's raw
        # copy under its own location is harmless). Raw documents are keyed by location, so retries rewrite none.
        existing, _ = await asyncio.gather(
            self.store.index_many([entry for _, entry, _ in candidates]),
            self.store.store_raw([self._raw_doc(entry.key, msg) for msg, entry, _ in candidates]),
        )
        events: list[tuple[str, MailReceived]] = []
        quarantines: list[tuple[str, FetchedMessage, str, str]] = []
        duplicates = 0
        for (msg, entry, event), held in zip(candidates, existing, strict=True):
            if held is not None and held["_id"] == entry.key and held["dedupe_key"] != entry.dedupe_key:
                # Another message at an indexed location: the server reused a UID (UIDNEXT went backwards).
                if not await self.store.reindex(entry, self._raw_doc(entry.key, msg)):
                    duplicates += 1
                    continue
                held = None
            elif held is not None and (held["_id"] != entry.key or entry.uid <= cur.high_water):
                duplicates += 1  # the same message at another location, or published before a resync
                continue
            if event is None:  # quarantined (a retry keeps the reason first recorded)
                source = held or entry.to_doc()
                quarantines.append((entry.key, msg, source["reason"], source.get("detail", "")))
                continue
            if (
                held is not None
            ):  # the cursor never passed it: a retried batch, publish again under the same event_id
                event = event.model_copy(update={"event_id": uuid.UUID(held["event_id"])})
            events.append((entry.key, event))
        self.guard()
        if events:
            await self.publisher.received([e for _, e in events])
        for key, msg, reason, detail in quarantines:
            log.warning(
                "message quarantined",
                mailbox_id=cur.mailbox_id,
                folder=folder.name,
                uid=msg.uid,
                reason=reason,
            )
            ref = {"folder": folder.name, "uidvalidity": cur.uidvalidity, "uid": msg.uid, "index_key": key}
            await self.publisher.quarantine(
                msg.body or b"", mailbox_id=cur.mailbox_id, reason=reason, detail=detail, ref=ref
            )
        acked = utc_now()
        for _, event in events:
            self.metrics.published.labels(event.folder_role, str(event.initial_sync).lower()).inc()
            if not event.initial_sync and event.internal_date is not None:
                self.metrics.lag.observe(max(0.0, (acked - event.internal_date).total_seconds()))
        for _, _, reason, _ in quarantines:
            self.metrics.quarantined.labels(reason).inc()
        if duplicates:
            self.metrics.duplicates.inc(duplicates)
        cur.last_uid = max(cur.last_uid, max(uids))
        cur.high_water = max(cur.high_water, cur.last_uid)
        cur.uidnext = max(cur.uidnext, cur.last_uid + 1)
        await self.store.save_cursor(cur)
        return len(events)

    def _raw_doc(self, key: str, msg: FetchedMessage) -> dict[str, Any]:
        body = msg.body or b""
        return {
            "_id": f"sync:raw_messages/{key}",
            "mailbox_id": self.identity.mailbox_id,
            "size_bytes": len(body),
            "truncated": len(body) > self.raw_max_bytes,
            "data": Binary(body[: self.raw_max_bytes]),
            "stored_at": utc_now(),
        }

    def _prepare(
        self, folder: Folder, cur: Cursor, msg: FetchedMessage, initial: bool, arrived: datetime
    ) -> tuple[FetchedMessage, IndexEntry, MailReceived | None]:
        """Parse one message into its index entry and event (None for a quarantined one)."""
        body = msg.body or b""
        key = message_key(cur.mailbox_id, folder.name, cur.uidvalidity, msg.uid)
        where = IndexEntry(
            key=key,
            mailbox_id=cur.mailbox_id,
            folder=folder.name,
            uidvalidity=cur.uidvalidity,
            uid=msg.uid,
            dedupe_key="",
        )
        try:
            parsed = parse_message(body)
        except QuarantineError as exc:
            where.dedupe_key = dedupe_key(cur.mailbox_id, "", hashlib.sha256(body).hexdigest())
            where.reason = exc.reason
            where.extra = {"detail": exc.detail[:500]}
            return msg, where, None
        event = parsed.to_event(
            tenant_id=self.identity.tenant_id,
            user_id=self.identity.user_id,
            mailbox_id=cur.mailbox_id,
            folder=folder.name,
            uidvalidity=cur.uidvalidity,
            uid=msg.uid,
            raw_ref=f"sync:raw_messages/{key}",
            folder_role=folder.role,
            initial_sync=initial,
            internal_date=msg.internal_date,
            arrived_at=arrived,
        )
        where.dedupe_key = dedupe_key(cur.mailbox_id, parsed.message_id, parsed.content_hash)
        where.event_id = str(event.event_id)
        return msg, where, event
