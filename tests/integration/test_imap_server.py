"""aioimaplib against the real Dovecot: implicit TLS and STARTTLS with the certificate verified."""

from __future__ import annotations

import asyncio
import socket
import ssl
from email.message import EmailMessage
from typing import Any

import aioimaplib
import pytest

from laifaxin_shared.imap import (
    ImapConnectionClosedError,
    StartTlsUnsupportedError,
    client_tls_context,
    connect_imap,
    is_tls,
)
from laifaxin_shared.providers.errors import explain_exception
from tests.conftest import MailAccount

pytestmark = pytest.mark.integration


def message(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Buyer <buyer@example.com>"
    msg["To"] = "sales@laifaxin.test"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@example.com>"
    msg.set_content("Please quote 500 pcs.")
    return msg.as_bytes()


async def connected(
    account: MailAccount, tls_context: ssl.SSLContext, security: str, **options: Any
) -> aioimaplib.IMAP4:
    """connect_imap to the local Dovecot over implicit TLS (``ssl``, 993's stand-in) or ``starttls``."""
    port = account.imaps_port if security == "ssl" else account.imap_port
    return await connect_imap(account.host, port, security, ssl_context=tls_context, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_login_append_select_fetch(
    mail_account: MailAccount, tls_context: ssl.SSLContext, security: str
) -> None:
    client = await connected(mail_account, tls_context, security)
    assert is_tls(client)
    login = await client.login(mail_account.email, mail_account.password)
    assert login.result == "OK"
    for cap in ("IDLE", "CONDSTORE", "SPECIAL-USE", "UIDPLUS"):
        assert client.has_capability(cap), cap
    assert (
        await client.enable("CONDSTORE")
    ).result == "OK"  # RFC 7162 section 3.1: SELECT then reports HIGHESTMODSEQ
    appended = await client.append(message("first quote"), mailbox="INBOX")
    assert appended.result == "OK"
    selected = await client.select("INBOX")
    assert selected.result == "OK"
    text = b" ".join(selected.lines).decode()
    assert "UIDVALIDITY" in text and "UIDNEXT" in text and "HIGHESTMODSEQ" in text
    fetched = await client.uid("fetch", "1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert fetched.result == "OK"
    assert b"first quote" in b"".join(x for x in fetched.lines if isinstance(x, bytes | bytearray))
    listed = await client.list('""', "*")
    assert any(b"\\Junk" in line for line in listed.lines)
    await client.logout()


async def test_idle_sees_a_new_message(mail_account: MailAccount, tls_context: ssl.SSLContext) -> None:
    watcher = await connect_imap(mail_account.host, mail_account.imaps_port, "ssl", ssl_context=tls_context)
    await watcher.login(mail_account.email, mail_account.password)
    await watcher.select("INBOX")
    idle = await watcher.idle_start(timeout=20)
    writer = await connect_imap(mail_account.host, mail_account.imaps_port, "ssl", ssl_context=tls_context)
    await writer.login(mail_account.email, mail_account.password)
    await writer.append(message("arrives during idle"), mailbox="INBOX")
    pushed: list[Any] = []
    async with asyncio.timeout(15):
        while not any(b"EXISTS" in line for line in pushed if isinstance(line, bytes)):
            pushed.extend(await watcher.wait_server_push(timeout=15))
    watcher.idle_done()
    await asyncio.wait_for(idle, 10)
    await writer.logout()
    await watcher.logout()


async def test_untrusted_certificate_fails_cleanly(mail_account: MailAccount) -> None:
    # Only the system roots: the local CA is not trusted, so the handshake must fail verification.
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect_imap(
            mail_account.host, mail_account.imaps_port, "ssl", ssl_context=client_tls_context()
        )
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect_imap(
            mail_account.host, mail_account.imap_port, "starttls", ssl_context=client_tls_context()
        )


async def test_wrong_password_is_refused(mail_account: MailAccount, tls_context: ssl.SSLContext) -> None:
    client = await connect_imap(mail_account.host, mail_account.imaps_port, "ssl", ssl_context=tls_context)
    response = await client.login(mail_account.email, "wrong-password")
    assert response.result == "NO"
    assert b"AUTHENTICATIONFAILED" in b" ".join(response.lines)
    await client.logout()


async def test_implicit_tls_against_the_starttls_port_fails(
    mail_account: MailAccount, tls_context: ssl.SSLContext
) -> None:
    with pytest.raises((ssl.SSLError, TimeoutError, aioimaplib.AioImapException, ConnectionError)):
        await connect_imap(
            mail_account.host, mail_account.imap_port, "ssl", ssl_context=tls_context, timeout=5
        )


async def test_starttls_against_the_tls_port_never_falls_back(
    mail_account: MailAccount, tls_context: ssl.SSLContext
) -> None:
    with pytest.raises(
        (TimeoutError, StartTlsUnsupportedError, ConnectionError, aioimaplib.AioImapException)
    ):
        await connect_imap(
            mail_account.host, mail_account.imaps_port, "starttls", ssl_context=tls_context, timeout=3
        )


async def test_exists_sent_during_another_command_is_counted(
    mail_account: MailAccount, tls_context: ssl.SSLContext
) -> None:
    # aioimaplib drops an untagged EXISTS that arrives during a FETCH; a sync loop that then re-enters IDLE
    # would wait for a notification the server already gave. connect_imap counts them.
    from laifaxin_shared.imap import exists_notifications

    reader = await connect_imap(mail_account.host, mail_account.imaps_port, "ssl", ssl_context=tls_context)
    await reader.login(mail_account.email, mail_account.password)
    await reader.select("INBOX")
    before = exists_notifications(reader)
    writer = await connect_imap(mail_account.host, mail_account.imaps_port, "ssl", ssl_context=tls_context)
    await writer.login(mail_account.email, mail_account.password)
    await writer.append(message("arrives between commands"), mailbox="INBOX")
    await reader.uid("fetch", "1:*", "(UID)")  # the server reports the new message during this command
    assert exists_notifications(reader) > before
    await writer.logout()
    await reader.logout()


async def logged_in(
    account: MailAccount, tls_context: ssl.SSLContext, timeout: float = 10.0
) -> aioimaplib.IMAP4:
    client = await connect_imap(
        account.host, account.imaps_port, "ssl", ssl_context=tls_context, timeout=timeout
    )
    assert (await client.login(account.email, account.password)).result == "OK"
    return client


async def customers_selected(
    account: MailAccount, tls_context: ssl.SSLContext
) -> tuple[aioimaplib.IMAP4, aioimaplib.IMAP4]:
    """Two sessions: a watcher (60 s command timeout) with a new folder ``Customers`` selected, and a writer."""
    watcher = await logged_in(account, tls_context, timeout=60)
    writer = await logged_in(account, tls_context)
    assert (await writer.create("Customers")).result == "OK"
    assert (await watcher.select("Customers")).result == "OK"
    return watcher, writer


async def rename_and_file(writer: aioimaplib.IMAP4) -> None:
    """Rename ``Customers`` and file a message under the new name: Dovecot then ends any session that has the
    folder selected with "* BYE IMAP session state is inconsistent, please relogin." and a close."""
    assert (await writer.rename("Customers", "Buyers")).result == "OK"
    assert (await writer.append(message("filed after the rename"), mailbox="Buyers")).result == "OK"


async def test_a_connection_the_server_closes_fails_the_running_command_with_its_bye(
    mail_account: MailAccount, tls_context: ssl.SSLContext
) -> None:
    # aioimaplib only logs the loss, so the running command waited for its whole timeout (60 s here) and was
    # reported as a timeout; connect_imap fails it at once, with the BYE.
    reader, writer = await customers_selected(mail_account, tls_context)
    await rename_and_file(writer)

    with pytest.raises(ImapConnectionClosedError) as closed:
        await reader.uid_search("UID 1:*", charset=None)
    assert closed.value.bye is not None and "relogin" in closed.value.bye
    with pytest.raises(ImapConnectionClosedError):  # nothing more is sent on a closed connection
        await reader.noop()
    error = explain_exception(closed.value, "imap", host=mail_account.host, port=mail_account.imaps_port)
    assert error.code.value == "server_unavailable" and "relogin" in (error.server_text or "")
    await writer.logout()


async def test_idle_on_a_connection_the_server_closes_ends_with_its_bye(
    mail_account: MailAccount, tls_context: ssl.SSLContext
) -> None:
    # aioimaplib's IDLE never ended when the server closed the connection (iroco-co/aioimaplib#110).
    watcher, writer = await customers_selected(mail_account, tls_context)
    idle = await watcher.idle_start(timeout=60)
    await rename_and_file(writer)
    with pytest.raises(ImapConnectionClosedError):
        await asyncio.wait_for(idle, 60)  # the guard: the server's close is what must end it
    await writer.logout()


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_keepalive_probes_are_set_on_the_socket(
    mail_account: MailAccount, tls_context: ssl.SSLContext, security: str
) -> None:
    # A quiet IDLE connection keeps its NAT mapping and a dead peer is found in about 2 x 40 s (Linux options).
    client = await connected(mail_account, tls_context, security, keepalive=40)
    sock = client.protocol.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 40
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    assert (await client.login(mail_account.email, mail_account.password)).result == "OK"
    await client.logout()
    plain = await connect_imap(mail_account.host, mail_account.imaps_port, "ssl", ssl_context=tls_context)
    assert (
        plain.protocol.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        == 0
    )
    await plain.logout()
