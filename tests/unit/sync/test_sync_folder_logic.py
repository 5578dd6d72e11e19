"""FolderSync against an in-memory IMAP folder, store and publisher: baseline, UIDVALIDITY, UIDNEXT going
backwards, a crash between publish and cursor, duplicates, quarantine, abandoning a batch."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aioimaplib
import pytest

from laifaxin_shared.events import MailReceived
from laifaxin_shared.events.base import utc_now
from laifaxin_sync.folder_sync import Folder, FolderSync, MailboxIdentity, UidValidityUnstable
from laifaxin_sync.imap_parse import FolderStatus
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.prepare import Prepared, Preparer
from laifaxin_sync.store import Cursor, IndexEntry, Lease, LeaseLost

INBOX = Folder("INBOX", "INBOX", "inbox")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def raw(subject: str, message_id: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<{subject.replace(' ', '.')}@example.com>"
    msg.set_content("hello")
    return msg.as_bytes()


class FakeFolder:
    """An IMAP folder answering UID SEARCH and UID FETCH the way aioimaplib returns replies."""

    def __init__(self, uidvalidity: int = 7) -> None:
        self.uidvalidity = uidvalidity
        self.messages: dict[int, tuple[bytes, datetime]] = {}
        self.uidnext = 1

    def add(self, body: bytes, when: datetime | None = None) -> int:
        uid = self.uidnext
        self.messages[uid] = (body, when or utc_now())
        self.uidnext += 1
        return uid

    def status(self) -> FolderStatus:
        return FolderStatus(self.uidvalidity, self.uidnext, len(self.messages), None)

    @staticmethod
    def _in(uid: int, spec: str, top: int) -> bool:
        for part in spec.split(","):
            lo, _, hi = part.partition(":")
            a = top if lo == "*" else int(lo)
            b = a if not hi else (top if hi == "*" else int(hi))
            if min(a, b) <= uid <= max(a, b):
                return True
        return False

    async def uid_search(self, criteria: str, charset: Any = None) -> aioimaplib.Response:
        top = max(self.messages, default=0)
        uids = sorted(self.messages)
        if m := re.search(r"UID (\S+)", criteria):
            uids = [u for u in uids if self._in(u, m.group(1), top)]
        if m := re.search(r"SINCE (\d+)-(\w+)-(\d+)", criteria):
            since = datetime(int(m.group(3)), _MONTHS[m.group(2)], int(m.group(1)), tzinfo=UTC)
            uids = [u for u in uids if self.messages[u][1] >= since]
        return aioimaplib.Response("OK", [" ".join(map(str, uids)).encode(), b"Search completed."])

    async def uid(self, command: str, spec: str, items: str) -> aioimaplib.Response:
        top = max(self.messages, default=0)
        lines: list[Any] = []
        for n, uid in enumerate(sorted(u for u in self.messages if self._in(u, spec, top)), 1):
            body, when = self.messages[uid]
            date = when.strftime("%d-%b-%Y %H:%M:%S +0000")
            lines += [
                f'{n} FETCH (UID {uid} INTERNALDATE "{date}" RFC822.SIZE {len(body)} BODY[] {{{len(body)}}}'.encode(),
                bytearray(body),
                b")",
            ]
        return aioimaplib.Response("OK", [*lines, b"Fetch completed."])


class FakeStore:
    """The store's contract in memory, including the lease fence on cursor writes."""

    def __init__(self) -> None:
        self.cursors: dict[str, Cursor] = {}
        self.epochs: dict[str, int] = {}
        self.lease_epoch = 1
        self.messages: dict[str, dict[str, Any]] = {}
        self.raw: dict[str, dict[str, Any]] = {}

    async def load_cursor(self, mailbox_id: str, folder: str) -> Cursor | None:
        cur = self.cursors.get(f"{mailbox_id}:{folder}")
        return Cursor.from_doc(cur.to_doc()) if cur else None

    async def save_cursor(self, cursor: Cursor, lease: Lease, *, create: bool = False) -> None:
        if self.epochs.get(cursor.id, 0) > lease.epoch or (cursor.id not in self.cursors and not create):
            raise LeaseLost(cursor.mailbox_id, lease.epoch)
        self.cursors[cursor.id] = Cursor.from_doc(cursor.to_doc())
        self.epochs[cursor.id] = lease.epoch

    async def holds_lease(self, lease: Lease) -> bool:
        return lease.epoch == self.lease_epoch

    def take_over(self) -> None:
        """Another worker claims the lease: a new epoch, and the cursors fenced at it."""
        self.lease_epoch += 1
        self.epochs = dict.fromkeys(self.epochs, self.lease_epoch)

    async def store_raw(self, docs: list[dict[str, Any]]) -> None:
        for d in docs:
            self.raw.setdefault(d["_id"], d)

    async def index_many(self, entries: list[IndexEntry]) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        for e in entries:
            held = self.messages.get(e.key) or next(
                (d for d in self.messages.values() if d["dedupe_key"] == e.dedupe_key), None
            )
            if held is None:
                self.messages[e.key] = e.to_doc()
            out.append(held)
        return out

    async def reindex(self, entry: IndexEntry, raw_docs: list[dict[str, Any]]) -> bool:
        if any(d["dedupe_key"] == entry.dedupe_key for d in self.messages.values()):
            return False
        self.messages[entry.key] = entry.to_doc()
        for raw_doc in raw_docs:
            self.raw[raw_doc["_id"]] = raw_doc
        return True


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[MailReceived] = []
        self.dead: list[tuple[bytes, str]] = []
        self.fail_next = False

    async def received(self, mailbox_id: str, records: list[Prepared]) -> list[Any]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("broker gone after the records were written")
        for r in records:
            assert r.value is not None and r.headers["event-id"] == r.event_id
            event = MailReceived.model_validate_json(r.value)
            assert event.ref.mailbox_id == mailbox_id and str(event.event_id) == r.event_id
            self.events.append(event)
        return []  # none refused as too large

    async def quarantine(self, raw: bytes, *, mailbox_id: str, reason: str, detail: str, ref: Any) -> None:
        self.dead.append((raw, reason))


def make_sync(
    window_days: int = 30, batch: int = 2, catchup_batch: int | None = None, **kwargs: Any
) -> tuple[FolderSync, FakeStore, FakePublisher, list[tuple[int, int]]]:
    store, pub, resets = FakeStore(), FakePublisher(), []

    async def on_reset(folder: Folder, old: int, new: int) -> None:
        resets.append((old, new))

    sync = FolderSync(
        identity=MailboxIdentity("mbx_1", "tenant", "u_1", window_days),
        store=store,  # type: ignore[arg-type]
        publisher=pub,  # type: ignore[arg-type]
        metrics=SyncMetrics(),
        preparer=Preparer(0),
        lease=Lease("mbx_1", "worker-a", 1),
        batch=batch,
        catchup_batch=catchup_batch,
        raw_max_bytes=1 << 20,
        guard=lambda: None,
        on_reset=on_reset,
        **kwargs,
    )
    return sync, store, pub, resets


async def test_baseline_window_then_new_mail() -> None:
    folder = FakeFolder()
    now = utc_now()
    folder.add(raw("ancient"), now - timedelta(days=100))
    folder.add(raw("recent"), now - timedelta(days=2))
    folder.add(raw("old again"), now - timedelta(days=50))
    sync, store, pub, _ = make_sync()
    assert await sync.sync_selected(folder, INBOX, folder.status()) == 1  # type: ignore[arg-type]
    folder.add(raw("new"))
    assert await sync.fetch_new(folder, INBOX) == 1  # type: ignore[arg-type]
    assert [(e.subject, e.initial_sync) for e in pub.events] == [("recent", True), ("new", False)]
    assert store.cursors["mbx_1:INBOX"].last_uid == 4


async def test_uidvalidity_change_rebaselines_without_replay() -> None:
    folder = FakeFolder(uidvalidity=7)
    sync, _, pub, resets = make_sync()
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    folder.add(raw("a"))
    await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    folder.uidvalidity = 8
    folder.messages, folder.uidnext = {}, 1
    folder.add(raw("b restored"))
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert resets == [(7, 8)]
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert resets == [(7, 8)]
    folder.add(raw("c"))
    await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    assert [e.subject for e in pub.events] == ["a", "c"]
    assert pub.events[-1].ref.uidvalidity == 8


async def test_uidnext_going_backwards_resyncs_and_publishes_only_what_is_new() -> None:
    folder = FakeFolder()
    sync, _, pub, resets = make_sync()
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    for s in ("a", "b", "c"):
        folder.add(raw(s))
    await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    # A broken server forgets UIDs 2-3 and reuses them for new mail, same UIDVALIDITY.
    del folder.messages[2], folder.messages[3]
    folder.uidnext = 2
    folder.add(raw("d"))
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert [e.subject for e in pub.events] == ["a", "b", "c", "d"] and not resets


async def test_a_crash_between_publish_and_cursor_republishes_with_the_same_event_id() -> None:
    folder = FakeFolder()
    sync, store, pub, _ = make_sync(batch=10)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    folder.add(raw("x"))
    folder.add(raw("y"))
    pub.fail_next = True
    with pytest.raises(ConnectionError):
        await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    assert store.cursors["mbx_1:INBOX"].last_uid == 0 and len(store.messages) == 2
    first_ids = {d["event_id"] for d in store.messages.values()}
    sync2, _, _, _ = make_sync(batch=10)  # a new worker process with the same store
    sync2.store = store  # type: ignore[assignment]
    sync2.publisher = pub  # type: ignore[assignment]
    assert await sync2.fetch_new(folder, INBOX) == 2  # type: ignore[arg-type]
    assert {str(e.event_id) for e in pub.events} == first_ids
    assert len(store.messages) == 2 and store.cursors["mbx_1:INBOX"].last_uid == 2


async def test_duplicates_and_quarantine_never_stop_the_folder() -> None:
    folder = FakeFolder()
    sync, store, pub, _ = make_sync(batch=2)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    folder.add(raw("same", "<dup@example.com>"))
    folder.add(b"\r\n\r\nno headers here\r\n")
    folder.add(raw("same again", "<dup@example.com>"))
    folder.add(raw("after"))
    await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    assert [e.subject for e in pub.events] == ["same", "after"]
    assert [r for _, r in pub.dead] == ["no_headers"] or len(pub.dead) == 1
    assert len(store.messages) == 3 and store.cursors["mbx_1:INBOX"].last_uid == 4


async def test_a_stop_request_abandons_before_the_next_batch() -> None:
    folder = FakeFolder()
    sync, store, pub, _ = make_sync(batch=1)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    for s in ("a", "b", "c"):
        folder.add(raw(s))
    calls = 0

    class Stop(Exception):
        pass

    def guard() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise Stop

    sync.guard = guard
    with pytest.raises(Stop):
        await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    last = store.cursors["mbx_1:INBOX"].last_uid
    assert len(pub.events) == last  # the cursor never passes what was published


async def test_a_uid_the_server_refuses_to_fetch_is_skipped_not_retried_forever() -> None:
    folder = FakeFolder()
    sync, store, pub, _ = make_sync(batch=10)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    for s in ("a", "broken", "c"):
        folder.add(raw(s))
    original = folder.uid

    async def refusing(command: str, spec: str, items: str) -> aioimaplib.Response:
        if folder._in(2, spec, max(folder.messages)):
            return aioimaplib.Response("NO", [b"[SERVERBUG] Internal error occurred."])
        return await original(command, spec, items)

    folder.uid = refusing  # type: ignore[method-assign]
    assert await sync.fetch_new(folder, INBOX) == 2  # type: ignore[arg-type]
    assert [e.subject for e in pub.events] == ["a", "c"]
    assert store.cursors["mbx_1:INBOX"].last_uid == 3


async def test_a_catch_up_runs_as_a_pipeline_and_commits_groups_in_uid_order() -> None:
    folder = FakeFolder()
    sync, store, pub, _ = make_sync(batch=3, catchup_batch=9)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    for i in range(40):
        folder.add(raw(f"m{i:02d}"))
    saved: list[int] = []
    save = store.save_cursor

    async def recording(cursor: Cursor, lease: Lease, *, create: bool = False) -> None:
        saved.append(cursor.last_uid)
        await save(cursor, lease, create=create)

    store.save_cursor = recording  # type: ignore[method-assign]
    assert await sync.fetch_new(folder, INBOX) == 40  # type: ignore[arg-type]
    assert [e.subject for e in pub.events] == [f"m{i:02d}" for i in range(40)]
    assert saved == sorted(saved) and saved[-1] == 40
    assert len(saved) < 40 / 3  # fetched batches waiting for the store are committed together


async def test_a_fetch_failure_commits_what_was_fetched_before_it() -> None:
    folder = FakeFolder()
    sync, store, pub, _ = make_sync(batch=2)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    for s in ("a", "b", "c", "d", "e"):
        folder.add(raw(s))
    original = folder.uid

    async def dropping(command: str, spec: str, items: str) -> aioimaplib.Response:
        if folder._in(5, spec, max(folder.messages)):
            raise ConnectionResetError("server went away")
        return await original(command, spec, items)

    folder.uid = dropping  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    assert [e.subject for e in pub.events] == ["a", "b", "c", "d"]
    assert store.cursors["mbx_1:INBOX"].last_uid == 4


async def test_a_stolen_lease_stops_the_publish_and_the_cursor() -> None:
    folder = FakeFolder()
    sync, store, pub, _ = make_sync(batch=2)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    folder.add(raw("before"))
    await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    store.take_over()  # another worker claimed the mailbox (this one paused past its heartbeat)
    folder.add(raw("after"))
    with pytest.raises(LeaseLost):
        await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    assert [e.subject for e in pub.events] == ["before"]
    assert store.cursors["mbx_1:INBOX"].last_uid == 1
    # Even past the publish check (a pause between the check and the write), the cursor write is refused.
    store.holds_lease = lambda lease: _true()  # type: ignore[method-assign,assignment]
    with pytest.raises(LeaseLost):
        await sync.fetch_new(folder, INBOX)  # type: ignore[arg-type]
    assert store.cursors["mbx_1:INBOX"].last_uid == 1


async def _true() -> bool:
    return True


async def test_uidvalidity_changing_at_every_select_is_held_after_the_limit() -> None:
    folder = FakeFolder(uidvalidity=100)
    sync, store, _, resets = make_sync(max_resets=3, reset_hold=60.0)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    for _ in range(3):
        folder.uidvalidity += 1
        await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert len(resets) == 3 and sync.unstable() == ["INBOX"]
    folder.uidvalidity += 1
    with pytest.raises(UidValidityUnstable) as held:
        await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert held.value.folder == "INBOX" and held.value.resets == 4
    assert 50 < (held.value.retry_at - utc_now()).total_seconds() <= 60
    assert store.cursors["mbx_1:INBOX"].uidvalidity == 103  # nothing re-baselined meanwhile
    # Once the hold has passed, one more re-baseline (not reported again); the next hold is twice as long.
    sync.cursors["INBOX"].reset_at = utc_now() - timedelta(seconds=61)
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert len(resets) == 3 and store.cursors["mbx_1:INBOX"].uidvalidity == 104
    folder.uidvalidity += 1
    with pytest.raises(UidValidityUnstable) as held:
        await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert 110 < (held.value.retry_at - utc_now()).total_seconds() <= 120
    # A pass that finds UIDVALIDITY unchanged ends it.
    folder.uidvalidity -= 1
    await sync.sync_selected(folder, INBOX, folder.status())  # type: ignore[arg-type]
    assert sync.unstable() == [] and store.cursors["mbx_1:INBOX"].resets == 0


async def test_the_parse_pool_gives_what_inline_parsing_gives() -> None:
    from laifaxin_sync.prepare import BatchContext, ParseJob, prepare_batch

    ctx = BatchContext("tenant", "u_1", "mbx_1", "INBOX", "inbox", 7, utc_now())
    jobs = [ParseJob(1, raw("one"), utc_now(), False), ParseJob(2, b"\r\n\r\nno headers\r\n", None, True)]
    preparer = Preparer(1)
    await preparer.start()
    try:
        pooled = await preparer.prepare(ctx, jobs)
    finally:
        preparer.close()
    inline = prepare_batch(ctx, jobs)
    assert [(p.key, p.dedupe_key, p.reason) for p in pooled] == [
        (p.key, p.dedupe_key, p.reason) for p in inline
    ]
    assert pooled[0].value is not None and MailReceived.model_validate_json(pooled[0].value).subject == "one"
    assert pooled[1].value is None and pooled[1].reason == "no_headers" and pooled[1].initial_sync
