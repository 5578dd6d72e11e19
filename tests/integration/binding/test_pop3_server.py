"""A POP3 server given as the IMAP server gets ``pop3_unsupported`` through the HTTP API: by port or host name
before any connection, and by its ``+OK`` greeting (RFC 1939 §4) when neither gives it away. The POP3 server is a
tiny loopback greeter, over implicit TLS (the local CA's certificate, as a POP3S server on 995) or in plain text
(as on 110); SMTP is the real local server. The app is conftest's ``binding_app``, seen as a fresh tenant."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MailAccount
from tests.integration.binding.conftest import Api
from tests.support.loopback import TcpServer

pytestmark = pytest.mark.integration


class Pop3Greeter(TcpServer):
    """Greets with ``+OK POP3 ready`` and answers every line with ``-ERR`` (RFC 1939 §3, §4), like a POP3 server
    that does not understand IMAP; records the lines it received."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        self.lines: list[bytes] = []

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            writer.write(b"+OK POP3 ready\r\n")
            await writer.drain()
            while line := await reader.readline():
                self.lines.append(line)
                writer.write(b"-ERR unknown command\r\n")
                await writer.drain()
        writer.close()


def server_tls(account: MailAccount) -> ssl.SSLContext:
    tls = Path(account.servers.ca_file).parent
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls / "server.pem"), str(tls / "server.key"))
    return ctx


def body(email: str, password: str, imap: dict[str, Any], account: MailAccount) -> dict[str, Any]:
    return {
        "email": email,
        "password": password,
        "imap": imap,
        "smtp": {"host": account.host, "port": account.smtp_port, "security": "starttls"},
    }


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_a_server_greeting_with_plus_ok_is_pop3_unsupported(
    api: Api, shared_account: MailAccount, security: str
) -> None:
    tls = server_tls(shared_account) if security == "ssl" else None
    async with Pop3Greeter(tls) as pop3:
        imap = {"host": "127.0.0.1", "port": pop3.port, "security": security}
        started = time.monotonic()
        response = await api.client.post(
            "/v1/mailboxes",
            json=body(shared_account.email, shared_account.password, imap, shared_account),
            headers=api.auth(),
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 422, response.text
    assert elapsed < 2.5  # told by the greeting, not after the verification budget (5 s here) ran out
    error = response.json()
    assert error["code"] == "pop3_unsupported"
    assert error["protocol"] == "imap"
    assert error["message"] == "POP3 is not supported; Laifaxin receives mail over IMAP only."
    assert "greets like a POP3 server" in error["fix"] and "IMAP" in error["fix"] and error["fix_zh"]
    assert "+OK POP3 ready" in error["server_text"]
    assert [e["code"] for e in error["errors"]] == ["pop3_unsupported"]  # SMTP verified fine
    assert shared_account.password not in response.text
    assert pop3.lines == []  # it only greeted: no IMAP command, let alone LOGIN, reached it
    assert (await api.client.get("/v1/mailboxes", headers=api.auth())).json()["items"] == []


async def test_the_fix_names_the_catalogs_imap_server_when_the_domain_is_known(
    api: Api, shared_account: MailAccount
) -> None:
    async with Pop3Greeter(server_tls(shared_account)) as pop3:
        imap = {"host": "127.0.0.1", "port": pop3.port, "security": "ssl"}
        response = await api.client.post(
            "/v1/mailboxes", json=body("sales@163.com", "abcd-code", imap, shared_account), headers=api.auth()
        )
    error = response.json()
    assert response.status_code == 422 and error["code"] == "pop3_unsupported"
    assert "imap.163.com, port 993 (SSL)" in error["fix"] and "imap.163.com" in error["fix_zh"]


@pytest.mark.parametrize(
    ("email", "imap", "expected"),
    [
        ("sales@163.com", {"host": "pop.163.com", "port": 995, "security": "ssl"}, "imap.163.com"),
        ("a@qq.com", {"host": "imap.qq.com", "port": 110, "security": "starttls"}, "imap.qq.com"),
        ("a@corp.example", {"host": "pop3.corp.example", "port": 993, "security": "ssl"}, None),
    ],
)
async def test_a_pop3_host_or_port_is_refused_before_any_connection(
    api: Api, shared_account: MailAccount, email: str, imap: dict[str, Any], expected: str | None
) -> None:
    response = await api.client.post(
        "/v1/mailboxes", json=body(email, "pw-123", imap, shared_account), headers=api.auth()
    )
    error = response.json()
    assert response.status_code == 422 and error["code"] == "pop3_unsupported", error
    assert "POP3" in error["fix"] and "IMAP" in error["fix"]
    if expected is not None:
        assert expected in error["fix"]
    # Refused before connecting: no verification attempt was made or counted.
    assert await api.db.verification_attempts.count_documents({"tenant_id": api.tenant}) == 0


async def test_a_pop3_server_given_alone_for_an_unknown_domain_is_refused_before_detection(
    api: Api,
) -> None:
    response = await api.client.post(
        "/v1/mailboxes",
        json={
            "email": "a@no-such-domain.invalid",
            "password": "x",
            "imap": {"host": "pop.no-such-domain.invalid", "port": 995, "security": "ssl"},
        },
        headers=api.auth(),
    )
    assert response.status_code == 422 and response.json()["code"] == "pop3_unsupported"
