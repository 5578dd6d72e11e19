"""connect_imap never hangs on a greeting aioimaplib cannot finish: a POP3 server (``+OK``, RFC 1939 section 4)
or an SMTP server given as the IMAP server is refused at its first line, and an IMAP server that greets and
then never answers CAPABILITY times out. aioimaplib's greeting handler holds the protocol's state lock while it
waits, so all of these used to hang forever (loopback servers: the servers' behaviour is the point)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from laifaxin_shared.imap import ImapConnectionClosedError, NotImapGreetingError, connect_imap
from laifaxin_shared.providers.errors import explain_exception


def greeter(greeting: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        if greeting and not greeting.startswith(b"* BYE"):
            await reader.read()  # then silence until the client goes
        writer.close()  # a BYE greeting or none: closed at once

    return handle


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    srv = await asyncio.start_server(greeter(request.param), "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n", NotImapGreetingError),
        (b"220 smtp.example.com ESMTP ready\r\n", NotImapGreetingError),
        (b"* OK [IMAP4rev1] but no more\r\n", TimeoutError),
    ],
    ids=["pop3", "smtp", "silent-imap"],
    indirect=["server"],
)
async def test_a_greeting_that_cannot_be_finished_ends_the_connect(server: int, expected: type) -> None:
    attempt = asyncio.create_task(connect_imap("127.0.0.1", server, "starttls", timeout=0.5))
    done, _ = await asyncio.wait({attempt}, timeout=20)  # a guard: the 0.5 s timeout is what must end it
    if not done:
        attempt.cancel()
    assert attempt in done, "connect_imap hung past its own timeout"
    assert isinstance(attempt.exception(), expected)
    if isinstance(attempt.exception(), NotImapGreetingError):
        assert attempt.exception().greeting.startswith(("+OK", "220"))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("greeting", "code"),
    [
        ("+OK POP3 ready", "pop3_unsupported"),
        ("-ERR go away", "pop3_unsupported"),
        ("220 smtp.example.com ESMTP", "wrong_port"),
        ("HTTP/1.1 400 Bad Request", "unknown"),
    ],
)
def test_a_foreign_greeting_maps_to_its_taxonomy_code(greeting: str, code: str) -> None:
    """What sync reports for it (binding's verifier adds the catalog's IMAP server to the fix)."""
    assert explain_exception(NotImapGreetingError(greeting), "imap").code.value == code


@pytest.mark.parametrize(
    ("bye", "code"),
    [
        ("IMAP session state is inconsistent, please relogin.", "server_unavailable"),
        ("Server shutting down.", "server_unavailable"),
        (None, "server_unavailable"),
        ("Too many simultaneous connections from your IP", "too_many_connections"),
    ],
)
def test_a_closed_connection_is_classified_by_its_bye(bye: str | None, code: str) -> None:
    """The server's BYE text (RFC 3501 7.1.5) is read like a reply: a throttling BYE is throttling (the backoff
    follows it), any other close is server_unavailable; the text is kept for support."""
    error = explain_exception(ImapConnectionClosedError(bye), "imap", host="imap.example.com", port=993)
    assert error.code.value == code
    assert error.server_text is not None and (bye or "closed the connection") in error.server_text


@pytest.mark.parametrize(
    ("server", "bye"),
    [
        (b"* BYE Too many connections from your IP\r\n", "Too many connections from your IP"),
        (b"", None),  # accepted, then closed without a greeting
    ],
    ids=["bye-greeting", "closed-silently"],
    indirect=["server"],
)
async def test_a_refused_or_closed_connection_ends_the_connect_at_once(server: int, bye: str | None) -> None:
    """RFC 3501 7.1.5: a BYE greeting refuses the connection; with a 60 s timeout, only the refusal itself can
    end the connect within the test's guard (before, both waited for the timeout)."""
    attempt = asyncio.create_task(connect_imap("127.0.0.1", server, "starttls", timeout=60))
    done, _ = await asyncio.wait({attempt}, timeout=20)
    if not done:
        attempt.cancel()
    assert attempt in done, "connect_imap waited for its timeout"
    error = attempt.exception()
    assert isinstance(error, ImapConnectionClosedError) and error.bye == bye
    code = "too_many_connections" if bye else "server_unavailable"
    assert (
        explain_exception(error, "imap", host="127.0.0.1", port=143, security="starttls").code.value == code
    )
