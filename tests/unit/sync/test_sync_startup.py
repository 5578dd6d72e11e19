"""Start slots (bounded connects, stoppable waits, progress counts) and the lazily started parse pool."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from laifaxin_shared.events.base import utc_now
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.prepare import BatchContext, ParseJob, Preparer, prepare_batch
from laifaxin_sync.startup import StartGate


def raw(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject}@example.com>"
    msg.set_content("hello")
    return msg.as_bytes()


async def test_no_more_than_the_slots_connect_at_once_and_every_mailbox_gets_one() -> None:
    metrics = SyncMetrics()
    gate = StartGate(3, metrics, log_every=5)
    inside = peak = 0
    stop = asyncio.Event()

    async def mailbox(i: int) -> None:
        nonlocal inside, peak
        gate.expect(f"m{i}")
        slot = await gate.acquire(stop)
        assert slot is not None
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        inside -= 1
        slot.release()
        slot.release()  # idempotent
        gate.done(f"m{i}")

    await asyncio.gather(*(mailbox(i) for i in range(20)))
    assert peak == 3
    assert metrics.mailbox_starts._value.get() == 20
    assert metrics.mailboxes_starting._value.get() == 0 and gate.starting == 0
    assert gate._sem._value == 3


async def test_a_stopped_mailbox_stops_waiting_for_a_slot_and_does_not_count_as_started() -> None:
    metrics = SyncMetrics()
    gate = StartGate(1, metrics)
    held = await gate.acquire(asyncio.Event())
    assert held is not None
    stop = asyncio.Event()
    gate.expect("waiting")
    waiter = asyncio.create_task(gate.acquire(stop))
    await asyncio.sleep(0)
    stop.set()
    assert await waiter is None
    gate.done("waiting", started=False)
    assert metrics.mailbox_starts._value.get() == 0 and gate.starting == 0
    held.release()
    again = await gate.acquire(asyncio.Event())  # the stopped waiter took no slot
    assert again is not None
    assert await gate.acquire(stop) is None  # already stopping: no wait at all


async def test_a_cancelled_waiter_leaves_the_slots_as_they_were() -> None:
    gate = StartGate(1, SyncMetrics())
    held = await gate.acquire(asyncio.Event())
    assert held is not None
    waiter = asyncio.create_task(gate.acquire(asyncio.Event()))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    held.release()
    assert gate._sem._value == 1


async def test_the_parse_pool_starts_when_a_batch_needs_it_and_stops_when_idle() -> None:
    ctx = BatchContext("tenant", "u_1", "mbx_1", "INBOX", "inbox", 7, utc_now())
    small = [ParseJob(1, raw("one"), utc_now(), False)]
    large = [ParseJob(i, raw(f"m{i}"), utc_now(), False) for i in range(1, 11)]
    preparer = Preparer(1, idle_seconds=0.5, keep_processes=0)
    try:
        assert not preparer.running  # no process before a batch needs one
        loop_turns = 0

        async def ticker() -> None:
            nonlocal loop_turns
            while True:
                loop_turns += 1
                await asyncio.sleep(0)

        ticking = asyncio.create_task(ticker())
        # New mail under IDLE is parsed in a process too, never in the event loop: the first batch starts the
        # pool and waits for it (about a second) without holding the event loop.
        one = await preparer.prepare(ctx, small)
        ticking.cancel()
        assert preparer.running and preparer.pool_starts == 1 and preparer._ready()
        assert loop_turns > 10  # the loop went on (fetching, in a worker) while the processes started
        assert [p.key for p in one] == [p.key for p in prepare_batch(ctx, small)]
        first = await preparer.prepare(ctx, large)
        assert preparer.running and preparer.pool_starts == 1 and preparer._ready()
        assert [p.key for p in first] == [p.key for p in prepare_batch(ctx, large)]
        await preparer.start()  # already warm: returns at once
        pooled = await preparer.prepare(ctx, large)
        assert [p.dedupe_key for p in pooled] == [p.dedupe_key for p in first]
        for _ in range(200):  # idle for longer than idle_seconds: the pool goes away
            if not preparer.running:
                break
            await asyncio.sleep(0.05)
        assert not preparer.running
        await preparer.prepare(ctx, large)  # and comes back when needed
        assert preparer.running and preparer.pool_starts == 2
    finally:
        preparer.close()
    assert not preparer.running


async def test_one_parse_process_is_kept_while_idle_by_default() -> None:
    ctx = BatchContext("tenant", "u_1", "mbx_1", "INBOX", "inbox", 7, utc_now())
    preparer = Preparer(2, idle_seconds=0.3)
    try:
        await preparer.start()
        assert len(preparer._slots) == 2
        for _ in range(100):
            if len(preparer._slots) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(preparer._slots) == 1 and preparer.running  # new mail does not wait for a process start
        assert (await preparer.prepare(ctx, [ParseJob(1, raw("one"), None, False)]))[0].value is not None
    finally:
        preparer.close()


async def test_tls_transports_of_the_worker_allocate_a_small_read_buffer() -> None:
    import asyncio.sslproto
    import ssl

    from laifaxin_sync.app import TLS_READ_BUFFER, limit_tls_read_buffer

    before = asyncio.sslproto.SSLProtocol.max_size
    try:
        limit_tls_read_buffer()
        proto = asyncio.sslproto.SSLProtocol(
            asyncio.get_running_loop(), asyncio.Protocol(), ssl.create_default_context(), None
        )
        assert len(proto._ssl_buffer) == TLS_READ_BUFFER < before  # 256 KiB by default
    finally:
        asyncio.sslproto.SSLProtocol.max_size = before
