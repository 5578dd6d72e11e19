"""connect_imap keeps its timeout against servers whose greeting aioimaplib cannot finish: a POP3 server
(``+OK``, RFC 1939 section 4) given as the IMAP server, and an IMAP server that greets and then never answers
CAPABILITY. aioimaplib's greeting handler holds the protocol's state lock while it waits, so both used to hang
forever (loopback servers: the servers' behaviour is the point)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from laifaxin_shared.imap import connect_imap


def greeter(greeting: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        await reader.read()  # then silence until the client goes
        writer.close()

    return handle


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    srv = await asyncio.start_server(greeter(request.param), "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()


@pytest.mark.parametrize(
    "server",
    [b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n", b"* OK [IMAP4rev1] but no more\r\n"],
    ids=["pop3", "silent-imap"],
    indirect=True,
)
async def test_a_greeting_that_cannot_be_finished_times_out(server: int) -> None:
    attempt = asyncio.create_task(connect_imap("127.0.0.1", server, "starttls", timeout=0.5))
    done, _ = await asyncio.wait({attempt}, timeout=20)  # a guard: the 0.5 s timeout is what must end it
    if not done:
        attempt.cancel()
    assert attempt in done, "connect_imap hung past its own timeout"
    assert isinstance(attempt.exception(), TimeoutError)
