"""Untagged STATUS lines that no STATUS command asked for (NOTIFY, RFC 5465 5.2) are kept out of the running
command's reply and noted: aioimaplib appends every untagged line to the command under way, so another folder's
``UIDVALIDITY`` / ``UIDNEXT`` in an EXAMINE reply would be read as the examined folder's. A STATUS command and
IDLE still get theirs. Fed straight into aioimaplib's protocol (the line handling is the point)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aioimaplib

from laifaxin_shared.imap import _instrument, status_mailbox, take_notified_folders


def instrumented() -> tuple[Any, Any]:
    protocol = aioimaplib.IMAP4ClientProtocol(asyncio.get_running_loop(), None)
    client = SimpleNamespace(protocol=protocol)
    _instrument(client)  # type: ignore[arg-type]
    return client, protocol


async def test_a_foreign_status_is_kept_out_of_an_examine_reply() -> None:
    client, protocol = instrumented()
    examine = aioimaplib.Command("EXAMINE", protocol.new_tag(), "Customers", loop=protocol.loop)
    protocol.pending_sync_command = examine
    for line in (
        b"* 2 EXISTS",
        b"* STATUS Junk (MESSAGES 1 UIDNEXT 9 UIDVALIDITY 999)",
        b'* STATUS "Old quotes" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 998)',
        b"* OK [UIDVALIDITY 17] UIDs valid",
    ):
        protocol._handle_line(line, None)
    text = b" ".join(bytes(x) for x in examine.response.lines)
    assert b"2 EXISTS" in text and b"UIDVALIDITY 17" in text and b"999" not in text and b"998" not in text
    assert take_notified_folders(client) == {"Junk", "Old quotes"}  # type: ignore[arg-type]
    assert take_notified_folders(client) == set()  # type: ignore[arg-type]


async def test_a_status_command_and_idle_still_get_their_lines() -> None:
    client, protocol = instrumented()
    status = aioimaplib.Command("STATUS", protocol.new_tag(), "Junk", "(UIDNEXT)", loop=protocol.loop)
    protocol.pending_async_commands["STATUS"] = status
    protocol._handle_line(b"* STATUS Junk (UIDNEXT 9)", None)
    assert any(b"UIDNEXT 9" in bytes(x) for x in status.response.lines)
    del protocol.pending_async_commands["STATUS"]

    idle = aioimaplib.IdleCommand(protocol.new_tag(), protocol.idle_queue, loop=protocol.loop)
    protocol.pending_sync_command = idle
    protocol._handle_line(b"* STATUS Customers (MESSAGES 2 UIDNEXT 3)", None)
    idle.flush()  # aioimaplib flushes at the end of each data_received
    queued = protocol.idle_queue.get_nowait()
    assert any(status_mailbox(x) == "Customers" for x in queued)
    assert take_notified_folders(client) == set()  # type: ignore[arg-type]


def test_status_mailbox_reads_the_wire_name() -> None:
    assert status_mailbox(b"* STATUS Junk (MESSAGES 1)") == "Junk"
    assert status_mailbox(b'STATUS "Old \\"q\\"" (MESSAGES 1)') == 'Old "q"'
    assert status_mailbox(b"STATUS &i+J22A- (UIDNEXT 2)") == "&i+J22A-"
    assert status_mailbox(b"* 1 EXISTS") is None
    assert status_mailbox(b"STATUS {5}") is None  # a literal name: left to the command
