"""Every message is parsed in a parsing process under a CPU budget; a message over it is quarantined as
``parse_budget_exceeded``, and a process that overruns or dies is replaced without losing the rest of its batch.

Real processes (spawn), real signals: the CPU timer for the budget, SIGSTOP for a process that stops answering
(the wall-clock deadline), SIGKILL for a process the kernel ends (its RLIMIT_CPU, out of memory).
"""

from __future__ import annotations

import asyncio
import os
import signal
from email.message import EmailMessage

from laifaxin_shared.events import MailReceived
from laifaxin_shared.events.base import utc_now
from laifaxin_shared.mime import MimeLimits
from laifaxin_sync.prepare import BatchContext, ParseBudget, ParseJob, Preparer, prepare_batch

CTX = BatchContext("tenant", "u_1", "mbx_1", "INBOX", "inbox", 7, utc_now())


def small(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject}@example.com>"
    msg.set_content("hello")
    return msg.as_bytes()


# About 0.1-0.3 s of parsing (the body is one opaque payload the parser still reads through): slow enough to be
# caught by a small budget or stopped in the middle.
SLOW = b"From: a@example.com\nSubject: slow\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n" + (
    b"x" * 15_000_000 + b"\n--b--\n"
)


def jobs(*bodies: bytes) -> list[ParseJob]:
    return [ParseJob(i, body, None, False) for i, body in enumerate(bodies, start=1)]


def subjects(prepared: list) -> list[str | None]:  # type: ignore[type-arg]
    return [
        MailReceived.model_validate_json(p.value).subject if p.value is not None else p.reason
        for p in prepared
    ]


async def test_a_message_over_its_cpu_budget_is_quarantined_and_the_process_goes_on() -> None:
    preparer = Preparer(1, budget=ParseBudget(cpu_seconds=0.05, cpu_seconds_per_mb=0))
    try:
        loop_turns = 0

        async def ticker() -> None:
            nonlocal loop_turns
            while True:
                loop_turns += 1
                await asyncio.sleep(0)

        await preparer.start()
        ticking = asyncio.create_task(ticker())
        out = await preparer.prepare(CTX, jobs(small("before"), SLOW, small("after")))
        ticking.cancel()
        assert subjects(out) == ["before", "parse_budget_exceeded", "after"]
        assert "0.05 s of CPU" in out[1].detail and out[1].dedupe_key.startswith("mbx_1:sha:")
        assert preparer.replaced == 0  # the CPU timer stopped the parse; the process stays
        assert loop_turns > 10  # the event loop ran while the process parsed
    finally:
        preparer.close()


async def wait_on_message(preparer: Preparer, index: int) -> int:
    """The pid of the (only) process once it is parsing message ``index`` of its batch."""
    [slot] = preparer._slots
    for _ in range(5000):
        if slot.progress.value == index:
            return slot.ready.result()
        await asyncio.sleep(0.001)
    raise AssertionError("the process never reached the message")


async def test_a_process_that_stops_answering_is_killed_and_replaced_and_only_its_message_is_quarantined() -> (
    None
):
    preparer = Preparer(1, budget=ParseBudget(cpu_seconds=2.0), wall_seconds=0.5)
    try:
        await preparer.start()
        batch = asyncio.ensure_future(preparer.prepare(CTX, jobs(small("before"), SLOW, small("after"))))
        pid = await wait_on_message(preparer, 1)
        os.kill(
            pid, signal.SIGSTOP
        )  # a process stuck without using CPU: only the wall-clock deadline ends it
        out = await batch
        assert subjects(out) == ["before", "parse_budget_exceeded", "after"]
        assert "no answer from the parsing process" in out[1].detail
        assert preparer.replaced == 1 and preparer.running
        [slot] = preparer._slots
        assert slot.ready.result() != pid
        assert_process_gone(pid)
    finally:
        preparer.close()


def assert_process_gone(pid: int) -> None:
    """The killed process is gone (reaped by its executor) or a zombie: not stopped and holding memory."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().split(") ", 1)[1][0]
    except FileNotFoundError:
        return
    assert state in "ZX", state


async def test_a_process_the_kernel_ends_is_replaced_and_its_message_quarantined() -> None:
    preparer = Preparer(1, budget=ParseBudget(cpu_seconds=2.0))
    try:
        await preparer.start()
        batch = asyncio.ensure_future(preparer.prepare(CTX, jobs(small("before"), SLOW, small("after"))))
        pid = await wait_on_message(preparer, 1)
        os.kill(pid, signal.SIGKILL)  # as SIGXCPU (RLIMIT_CPU) or the OOM killer would
        out = await batch
        assert subjects(out) == ["before", "parse_budget_exceeded", "after"]
        assert "the parsing process ended" in out[1].detail
        assert preparer.replaced == 1
        again = await preparer.prepare(CTX, jobs(small("later")))
        assert subjects(again) == ["later"]
    finally:
        preparer.close()


async def test_the_budget_carries_the_structure_limits_into_the_process() -> None:
    parts = b"From: a@b\nContent-Type: multipart/mixed; boundary=b\n\n" + b"--b\n\nx\n" * 20 + b"--b--\n"
    preparer = Preparer(1, budget=ParseBudget(limits=MimeLimits(max_parts=10)))
    try:
        out = await preparer.prepare(CTX, jobs(parts, small("fine")))
    finally:
        preparer.close()
    assert subjects(out) == ["too_many_parts", "fine"]
    assert prepare_batch(CTX, jobs(parts))[0].reason is None  # the default limits let it through
