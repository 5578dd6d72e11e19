"""Syncing one selected folder: cursor, baseline, UIDVALIDITY, bounded UID FETCH, store -> publish -> cursor.

The rules (ARCHITECTURE.md "Sync algorithm", reference/sync.md lessons 1, 2, 5, 6, 7, 9):

- **Cheap change detection.** A folder is fetched only when SELECT/EXAMINE or STATUS shows a change against
  the cursor: UIDNEXT moved, or (with CONDSTORE, RFC 7162 3.1) HIGHESTMODSEQ moved.
- **Baseline.** The first sync of a folder records UIDNEXT as ``baseline_uidnext``; messages below it are
  history: published (with ``initial_sync=true``) only when their INTERNALDATE is inside the mailbox's
  ``initial_window_days``, found with ``UID SEARCH SINCE`` (RFC 3501 6.4.4) and checked exactly per message.
  Per folder: a user folder first found after the mailbox was bound (created or renamed since) gets its baseline
  and window then; a message it shares with another folder is published once (index by Message-ID).
- **UIDVALIDITY change** (RFC 3501 2.3.1.1): re-baseline quietly at the new UIDNEXT, nothing is replayed, and
  the caller reports ``uidvalidity_reset`` once. After ``max_resets`` changes in a row (no pass in between found
  UIDVALIDITY unchanged; Nylas stops at 5, ``MAX_UIDINVALID_RESYNCS``) a further change is held: the folder is
  re-baselined only once ``reset_hold`` has passed since the last one, doubling per extra change up to
  ``reset_hold_max``, and :class:`UidValidityUnstable` tells the caller to back off and report it once
  (a server that changes UIDVALIDITY at every SELECT must not cause endless re-baselines). A UIDNEXT that
  went backwards without a UIDVALIDITY change
  is a server fault (Delta Chat): the cursor is pulled back so the folder is re-read; the index keeps
  anything already published from being published twice.
- **Bounded batches.** ``UID FETCH`` of at most ``batch`` UIDs with ``(UID INTERNALDATE RFC822.SIZE
  BODY.PEEK[])`` (PEEK leaves ``\\Seen`` alone, RFC 3501 6.4.5). Small fetches keep aioimaplib's reply
  handling cheap (its FETCH completion check rescans the reply, so its cost grows with the square of the size).
- **A pipeline of three stages** (:meth:`FolderSync._batches`): fetch (UID FETCH, then parsing handed to the
  :class:`~laifaxin_sync.prepare.Preparer` pool) -> store (the fetched batches waiting are taken together, up
  to ``catchup_batch`` messages: one index insert and one raw insert) -> commit (publish all, wait for every
  acknowledgement, move the cursor). Each stage works on the next group while the one after it finishes the
  previous, and the cursor moves in UID order only.
- **Order of effects per group**: index claim (unique location + unique Message-ID/hash) -> raw bytes stored
  -> lease still ours -> ``mail.received`` (or the DLQ for quarantined bytes) acknowledged with acks=all ->
  cursor advanced (the commit point: a conditional write on the lease epoch, which fails with
  :class:`~laifaxin_sync.store.LeaseLost` once another worker took the mailbox). A crash anywhere leaves the
  cursor behind; the retry finds the entries it had claimed at the same location and republishes them under
  the same ``event_id`` (consumers dedupe on it), and skips copies indexed at another location: at-least-once
  publish, one index entry per message.
- **Dead letters are references with bounded bytes**: a quarantined message (unparsable, over a structure
  limit or its parsing budget, or whose ``mail.received`` record the broker refuses as too large) goes to
  ``mail.received.dlq`` as its first ``SYNC_DLQ_RAW_PREFIX_BYTES`` plus headers naming the reason, the raw store
  document (``x-dlq-raw-ref``), its location and SHA-256 (:meth:`Publisher.quarantine`). So one message can
  never make a record the broker refuses, which would hold the folder (the cursor would wait behind it for
  ever): a refused ``mail.received`` record is that message's quarantine (``event_too_large``) and the cursor
  moves on.
- **Progress, for free**: the UIDs each ``UID SEARCH`` gives to fetch and the UIDs each committed group handled
  are passed to ``on_found`` / ``on_handled`` (the mailbox loop's catch-up progress,
  :mod:`laifaxin_sync.progress`); counting them costs no command and no write.
- **Cursor writes only when needed**: a pass that changed nothing writes nothing; a folder's first cursor is
  inserted once (at the end of its first pass, or before anything above its baseline is published), and a
  worker starting many mailboxes hands their cursors over read in bulk (``known``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import aioimaplib
from bson import Binary

from laifaxin_shared.events.base import utc_now
from laifaxin_shared.logging import get_logger
from laifaxin_sync.imap_parse import FetchedMessage, FolderStatus, parse_fetch, parse_search, uid_set
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.prepare import BatchContext, ParseJob, Prepared, Preparer, with_event_id
from laifaxin_sync.publisher import DeadLetterRef, Publisher
from laifaxin_sync.store import Cursor, IndexEntry, Lease, LeaseLost, SyncStore

log = get_logger(__name__)

FETCH_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])"
RAW_STORE_MAX_BYTES = 64 * 1024 * 1024
"""Most bytes of one raw message kept in ``raw_messages`` (in chunks of ``SYNC_RAW_MAX_BYTES``): above the
largest message the parser accepts (50 MB, ``laifaxin_shared.mime.MAX_MESSAGE_BYTES``)."""
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ImapCommandError(RuntimeError):
    """The server answered NO/BAD to a sync command; ``text`` is its reply (no credentials in it)."""

    def __init__(self, command: str, text: str) -> None:
        super().__init__(f"{command}: {text}")
        self.command = command
        self.text = text


class UidValidityUnstable(Exception):
    """UIDVALIDITY changed again while re-baselining is held (see the module rules); retry at ``retry_at``."""

    def __init__(self, folder: str, resets: int, retry_at: datetime) -> None:
        super().__init__(
            f"{folder}: UIDVALIDITY changed {resets} times in a row; held until {retry_at:%H:%M:%S}"
        )
        self.folder = folder
        self.resets = resets
        self.retry_at = retry_at


@dataclass(frozen=True)
class MailboxIdentity:
    """Who a folder belongs to: the envelope fields of its events."""

    mailbox_id: str
    tenant_id: str
    user_id: str
    initial_window_days: int


@dataclass(frozen=True)
class Folder:
    """A synced folder: decoded name (as in ``MessageRef.folder``), the name for commands, and its role
    (``mail.received`` ``folder_role``: ``other`` for the user's own folders)."""

    name: str
    command_name: str
    role: Literal["inbox", "junk", "other"]


def imap_date(day: datetime) -> str:
    """A SEARCH date (RFC 3501 9 ``date``): ``1-Feb-2026``."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


@dataclass
class _Fetched:
    """One UID FETCH: the UIDs asked for, the messages to index (bodies), and their parsing under way."""

    uids: list[int]
    got: int
    jobs: list[ParseJob]
    prepared: asyncio.Future[list[Prepared]]


@dataclass
class _Stored:
    """A group indexed and stored, ready to publish: the cursor may then pass ``last_uid``."""

    last_uid: int
    uids: int = 0  # UIDs of the group (what the cursor passes, fetched or not)
    events: list[Prepared] = field(default_factory=list)
    quarantines: list[tuple[Prepared, bytes]] = field(default_factory=list)
    duplicates: int = 0
    bodies: dict[int, bytes] = field(default_factory=dict)  # of the events: for a record the broker refuses


async def _run_stages(*stages: Coroutine[Any, Any, None]) -> None:
    """Run pipeline stages concurrently; the first failure cancels the others and is raised as it is."""
    tasks = [asyncio.ensure_future(stage) for stage in stages]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and (error := task.exception()) is not None:
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _persisted(cur: Cursor) -> tuple[Any, ...]:
    """What a cursor write would store, but the time of the write."""
    doc = cur.to_doc()
    doc.pop("updated_at")
    return tuple(sorted(doc.items()))


def _check(response: aioimaplib.Response, command: str) -> aioimaplib.Response:
    if response.result != "OK":
        text = b" ".join(x for x in response.lines if isinstance(x, bytes)).decode("utf-8", "replace")
        raise ImapCommandError(command, text[:500])
    return response


class FolderSync:
    """Sync of the folders of one mailbox over one authenticated connection.

    ``guard`` is called before each fetch and each publish: it raises to abandon the sync (stop requested,
    lease lost), so no cursor moves after that point. ``on_reset`` is awaited once per UIDVALIDITY change
    (with the folder, old and new values) while fewer than ``max_resets`` came in a row. ``lease`` fences every
    cursor write (:meth:`SyncStore.save_cursor`). ``batch``: UIDs per UID FETCH; ``catchup_batch``: most
    messages stored and published as one group; ``prefetch``: fetched batches that may wait for the store.
    ``reset_hold``/``reset_hold_max``: seconds. ``on_found`` is awaited with the number of UIDs each search
    of :meth:`fetch_new` found to fetch (before they are), ``on_handled`` with the number of UIDs of each group
    committed (after its cursor write); an exception from either abandons the sync like a failed fetch.
    """

    def __init__(
        self,
        *,
        identity: MailboxIdentity,
        store: SyncStore,
        publisher: Publisher,
        metrics: SyncMetrics,
        preparer: Preparer,
        lease: Lease,
        batch: int,
        raw_max_bytes: int,
        catchup_batch: int | None = None,
        prefetch: int = 8,
        max_resets: int = 5,
        reset_hold: float = 600.0,
        reset_hold_max: float = 86_400.0,
        guard: Callable[[], None],
        on_reset: Callable[[Folder, int, int], Awaitable[None]],
        known: Iterable[Cursor] | None = None,
        on_found: Callable[[int], Awaitable[None]] | None = None,
        on_handled: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.identity = identity
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.preparer = preparer
        self.lease = lease
        self.batch = batch
        self.catchup_batch = max(catchup_batch or batch, batch)
        self.prefetch = prefetch
        self.raw_max_bytes = raw_max_bytes
        self.max_resets = max_resets
        self.reset_hold = reset_hold
        self.reset_hold_max = reset_hold_max
        self.guard = guard
        self.on_reset = on_reset
        self.on_found = on_found
        self.on_handled = on_handled
        self.cursors: dict[str, Cursor] = {}
        self._saved: dict[str, tuple[Any, ...]] = {}  # per folder: the cursor as last read or written
        # ``known``: every stored cursor of the mailbox, read in bulk under the current lease (a worker starting
        # many mailboxes): no per-folder read, and a folder without one is known to have none.
        self._looked_up = known is not None
        self._missing: set[str] = set()  # folders read from the store and found without a cursor
        for cur in known or ():
            self.cursors[cur.folder] = cur
            self._saved[cur.folder] = _persisted(cur)

    async def _save(self, cur: Cursor) -> None:
        """Write the cursor unless it is stored as it is; a folder's first cursor is inserted."""
        if self._saved.get(cur.folder) == _persisted(cur):
            return
        await self.store.save_cursor(cur, self.lease, create=cur.folder not in self._saved)
        self._saved[cur.folder] = _persisted(cur)

    def unstable(self) -> list[str]:
        """Folders whose UIDVALIDITY changed ``max_resets`` times or more in a row (re-baselining is held)."""
        return [c.folder for c in self.cursors.values() if c.resets >= self.max_resets]

    def _reset_held_until(self, cur: Cursor) -> datetime | None:
        if cur.resets < self.max_resets or cur.reset_at is None:
            return None
        hold = min(self.reset_hold_max, self.reset_hold * 2 ** min(cur.resets - self.max_resets, 30))
        until = cur.reset_at + timedelta(seconds=hold)
        return until if until > utc_now() else None

    async def cursor(self, folder: Folder) -> Cursor | None:
        """The folder's cursor (cached after the first read)."""
        cur = self.cursors.get(folder.name)
        if cur is None and not self._looked_up and folder.name not in self._missing:
            cur = await self.store.load_cursor(self.identity.mailbox_id, folder.name)
            if cur is not None:
                self.cursors[folder.name] = cur
                self._saved[folder.name] = _persisted(cur)
            else:
                self._missing.add(folder.name)
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
            # RFC 3501 2.3.1.1: the UIDs of the old UIDVALIDITY mean nothing now.
            if (held := self._reset_held_until(cur)) is not None:
                raise UidValidityUnstable(folder.name, cur.resets + 1, held)
            old = cur.uidvalidity
            cur = await self._baseline(client, folder, status, None, resets=cur.resets + 1)
            log.warning(
                "uidvalidity changed: re-baselined without replay",
                mailbox_id=self.identity.mailbox_id,
                folder=folder.name,
                old=old,
                new=status.uidvalidity,
                in_a_row=cur.resets,
            )
            if cur.resets <= self.max_resets:
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
            # was published from being published again; a reused location is re-indexed (FolderSync._store).
            cur.last_uid = min(cur.last_uid, cur.baseline_uidnext - 1)
        elif cur.resets:
            cur.resets = 0  # UIDVALIDITY unchanged since the last reset: stable again
        published = 0
        if await self.changed(folder, status) or cur.last_uid < status.uidnext - 1:
            published = await self.fetch_new(client, folder)
        cur.uidnext = max(status.uidnext, cur.last_uid + 1)
        cur.highestmodseq = status.highestmodseq
        cur.messages = status.messages
        await self._save(cur)  # no write when nothing changed
        return published

    async def _baseline(
        self,
        client: aioimaplib.IMAP4,
        folder: Folder,
        status: FolderStatus,
        window_days: int | None,
        resets: int = 0,
    ) -> Cursor:
        """A new cursor at the current UIDNEXT (or at the first UID of the initial window), written at once."""
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
            reset_at=utc_now() if resets else None,
        )
        if window_days or resets:
            await self._save(cur)  # before any history is published / the reset is reported
        self.cursors[folder.name] = cur
        return cur

    async def fetch_new(self, client: aioimaplib.IMAP4, folder: Folder) -> int:
        """Fetch and publish every UID above the cursor, batch by batch, until none is left.

        The folder must be selected. Returns the number of ``mail.received`` events published.
        """
        cur = await self.cursor(folder)
        if cur is None:
            raise RuntimeError(f"no cursor for {folder.name}")
        if cur.folder not in self._saved:
            await self._save(cur)  # the baseline is stored before anything above it is published
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
                await self._save(cur)
                continue
            if self.on_found is not None:
                await self.on_found(len(uids))
            chunks = [uids[i : i + self.batch] for i in range(0, len(uids), self.batch)]
            published += await self._batches(client, folder, cur, chunks)

    async def _batches(
        self, client: aioimaplib.IMAP4, folder: Folder, cur: Cursor, chunks: list[list[int]]
    ) -> int:
        """Fetch, store and commit ``chunks`` (UID lists, ascending) as a pipeline; returns events published.

        The fetch stage runs ahead of the store by at most ``prefetch`` batches. When a fetch fails (or
        ``guard`` stops it), what was fetched before is still stored and committed, then the error is raised; a
        store or commit failure cancels the other stages at once (nothing after it is committed).
        """
        fetched_q: asyncio.Queue[_Fetched | None] = asyncio.Queue(self.prefetch)
        stored_q: asyncio.Queue[_Stored | None] = asyncio.Queue(1)
        fetch_failure: list[Exception] = []
        parsing_tasks: list[asyncio.Future[list[Prepared]]] = []
        published = 0

        async def fetch_stage() -> None:
            try:
                for uids in chunks:
                    self.guard()
                    fetched = await self._fetch(client, uids)
                    jobs = self._jobs(cur, fetched)
                    ctx = BatchContext(
                        tenant_id=self.identity.tenant_id,
                        user_id=self.identity.user_id,
                        mailbox_id=cur.mailbox_id,
                        folder=folder.name,
                        folder_role=folder.role,
                        uidvalidity=cur.uidvalidity,
                        arrived_at=utc_now(),
                    )
                    parsing = asyncio.ensure_future(self.preparer.prepare(ctx, jobs))
                    parsing_tasks.append(parsing)
                    await fetched_q.put(_Fetched(uids, len(fetched), jobs, parsing))
            except Exception as exc:  # noqa: BLE001  # raised after the stages drain what was fetched
                fetch_failure.append(exc)
            await fetched_q.put(None)

        async def store_stage() -> None:
            end = False
            while not end and (first := await fetched_q.get()) is not None:
                group = [first]
                count = len(first.jobs)
                while count < self.catchup_batch and not fetched_q.empty():
                    more = fetched_q.get_nowait()
                    if more is None:
                        end = True
                        break
                    group.append(more)
                    count += len(more.jobs)
                await stored_q.put(await self._store(folder, cur, group))
            await stored_q.put(None)

        async def commit_stage() -> None:
            nonlocal published
            while (stored := await stored_q.get()) is not None:
                published += await self._commit(folder, cur, stored)

        try:
            await _run_stages(fetch_stage(), store_stage(), commit_stage())
        finally:  # parsing of batches abandoned by a failure: nobody will read it
            for task in parsing_tasks:
                task.cancel()
            await asyncio.gather(*parsing_tasks, return_exceptions=True)
        if fetch_failure:
            raise fetch_failure[0]
        return published

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

    def _jobs(self, cur: Cursor, fetched: list[FetchedMessage]) -> list[ParseJob]:
        """The fetched messages to index: history outside the initial window and bodiless replies are not."""
        jobs: list[ParseJob] = []
        for msg in fetched:
            initial = msg.uid < cur.baseline_uidnext
            if msg.body is None or (
                initial
                and cur.window_start is not None
                and msg.internal_date is not None
                and msg.internal_date < cur.window_start
            ):
                continue
            jobs.append(ParseJob(msg.uid, msg.body, msg.internal_date, initial))
        return jobs

    async def _store(self, folder: Folder, cur: Cursor, group: list[_Fetched]) -> _Stored:
        """Claim the index slots and store the raw bytes of a group; sort its messages into events to publish,
        quarantines and duplicates."""
        prepared: list[Prepared] = []
        bodies: dict[int, bytes] = {}
        for f in group:
            prepared.extend(await f.prepared)
            bodies.update((j.uid, j.body) for j in f.jobs)
        if missing := sum(len(f.uids) - f.got for f in group):
            log.info("uids expunged before fetch", mailbox_id=cur.mailbox_id, folder=folder.name, n=missing)
        entries = [
            IndexEntry(
                key=p.key,
                mailbox_id=cur.mailbox_id,
                folder=folder.name,
                uidvalidity=cur.uidvalidity,
                uid=p.uid,
                dedupe_key=p.dedupe_key,
                event_id=p.event_id,
                reason=p.reason,
                extra={"detail": p.detail} if p.reason else {},
            )
            for p in prepared
        ]
        # Raw bytes go in while the index slots are claimed (both must precede the publish; a duplicate's raw
        # copy under its own location is harmless). Raw documents are keyed by location, so retries rewrite none.
        existing, _ = await asyncio.gather(
            self.store.index_many(entries),
            self.store.store_raw([d for p in prepared for d in self._raw_docs(p.key, bodies[p.uid])]),
        )
        out = _Stored(last_uid=max(u for f in group for u in f.uids), uids=sum(len(f.uids) for f in group))
        for p, entry, held in zip(prepared, entries, existing, strict=True):
            if held is not None and held["_id"] == entry.key and held["dedupe_key"] != entry.dedupe_key:
                # Another message at an indexed location: the server reused a UID (UIDNEXT went backwards).
                if not await self.store.reindex(entry, self._raw_docs(entry.key, bodies[p.uid])):
                    out.duplicates += 1
                    continue
                held = None
            elif held is not None and (held["_id"] != entry.key or entry.uid <= cur.high_water):
                out.duplicates += 1  # the same message at another location, or published before a resync
                continue
            if p.value is None:  # quarantined (a retry keeps the reason first recorded)
                source = held or entry.to_doc()
                p.reason, p.detail = source["reason"], source.get("detail", "")
                out.quarantines.append((p, bodies[p.uid]))
                continue
            if held is not None and held.get("event_id"):
                # The cursor never passed it: a retried batch, published again under the same event_id.
                p = with_event_id(p, held["event_id"])
            out.events.append(p)
            out.bodies[p.uid] = bodies[p.uid]
        return out

    async def _commit(self, folder: Folder, cur: Cursor, stored: _Stored) -> int:
        """Publish a stored group (events, then dead letters), wait for every acknowledgement, advance the
        cursor under the lease. Raises LeaseLost when the lease is no longer ours (nothing is published then)."""
        self.guard()
        if (stored.events or stored.quarantines) and not await self.store.holds_lease(self.lease):
            raise LeaseLost(self.lease.mailbox_id, self.lease.epoch)
        if stored.events:
            refused = await self.publisher.received(cur.mailbox_id, stored.events)
            for r in refused:
                # Too large for the broker whatever we do: that message's quarantine, and the folder goes on.
                p = r.prepared
                p.reason = "event_too_large"
                p.detail = f"its mail.received record ({r.size_bytes} bytes) was refused: {r.error}"[:500]
                await self.store.mark_quarantined(p.key, p.reason, p.detail)
                stored.quarantines.append((p, stored.bodies[p.uid]))
            if refused:
                gone = {id(r.prepared) for r in refused}
                stored.events = [p for p in stored.events if id(p) not in gone]
        for p, body in stored.quarantines:
            log.warning(
                "message quarantined",
                mailbox_id=cur.mailbox_id,
                folder=folder.name,
                uid=p.uid,
                reason=p.reason,
                size_bytes=len(body),
            )
            ref = DeadLetterRef(
                raw_ref=f"sync:raw_messages/{p.key}",
                stored_bytes=min(len(body), RAW_STORE_MAX_BYTES),
                folder=folder.name,
                uidvalidity=cur.uidvalidity,
                uid=p.uid,
                index_key=p.key,
            )
            await self.publisher.quarantine(
                body, mailbox_id=cur.mailbox_id, reason=p.reason or "", detail=p.detail, ref=ref
            )
        acked = utc_now()
        initial_label = {True: "true", False: "false"}
        for p in stored.events:
            self.metrics.published.labels(folder.role, initial_label[p.initial_sync]).inc()
            if not p.initial_sync and p.internal_date is not None:
                self.metrics.lag.observe(max(0.0, (acked - p.internal_date).total_seconds()))
        for p, _ in stored.quarantines:
            self.metrics.quarantined.labels(p.reason).inc()
        if stored.duplicates:
            self.metrics.duplicates.inc(stored.duplicates)
        cur.last_uid = max(cur.last_uid, stored.last_uid)
        cur.high_water = max(cur.high_water, cur.last_uid)
        cur.uidnext = max(cur.uidnext, cur.last_uid + 1)
        await self._save(cur)
        if self.on_handled is not None:
            await self.on_handled(stored.uids)
        return len(stored.events)

    def _raw_docs(self, key: str, body: bytes) -> list[dict[str, Any]]:
        """The raw message as ``raw_messages`` documents: the head (``_id`` = raw_ref: size, chunk count, the first
        ``raw_max_bytes``) and, for a larger message, continuation chunks (``_id`` = ``raw_ref#n``, ``part_of``
        = raw_ref, n = 1, 2, ...): a MongoDB document holds at most 16 MiB, and a quarantined message's dead letter
        points here for the whole of it. At most :data:`RAW_STORE_MAX_BYTES` are kept (``truncated`` says so)."""
        raw_ref = f"sync:raw_messages/{key}"
        kept = body[:RAW_STORE_MAX_BYTES]
        size = self.raw_max_bytes
        chunks = [kept[i : i + size] for i in range(0, len(kept), size)] or [b""]
        now = utc_now()
        head = {
            "_id": raw_ref,
            "mailbox_id": self.identity.mailbox_id,
            "size_bytes": len(body),
            "truncated": len(kept) < len(body),
            "chunks": len(chunks),
            "data": Binary(chunks[0]),
            "stored_at": now,
        }
        rest = [
            {
                "_id": f"{raw_ref}#{n}",
                "part_of": raw_ref,
                "n": n,
                "mailbox_id": self.identity.mailbox_id,
                "data": Binary(chunk),
                "stored_at": now,
            }
            for n, chunk in enumerate(chunks[1:], start=1)
        ]
        return [head, *rest]
