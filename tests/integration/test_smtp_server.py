"""aiosmtplib against the local SMTP submission server: AUTH and send over implicit TLS and STARTTLS."""

from __future__ import annotations

import json
import ssl
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from laifaxin_shared.imap import client_tls_context
from tests.conftest import MailAccount

pytestmark = pytest.mark.integration


def received(account: MailAccount, marker: str) -> list[dict[str, object]]:
    index = Path(str(account.servers.mail["smtp_received_index"]))
    records = [json.loads(line) for line in index.read_text().splitlines()] if index.exists() else []
    return [r for r in records if marker in Path(str(r["file"])).read_text(errors="replace")]


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_auth_and_send(mail_account: MailAccount, tls_context: ssl.SSLContext, security: str) -> None:
    marker = uuid.uuid4().hex
    msg = EmailMessage()
    msg["From"] = mail_account.email
    msg["To"] = "owner@example.com"
    msg["Subject"] = f"alert {marker}"
    msg.set_content(f"New inquiry {marker}")
    port = mail_account.smtps_port if security == "ssl" else mail_account.smtp_port
    errors, reply = await aiosmtplib.send(
        msg,
        hostname=mail_account.host,
        port=port,
        username=mail_account.email,
        password=mail_account.password,
        use_tls=security == "ssl",
        start_tls=security == "starttls",
        tls_context=tls_context,
        timeout=10,
    )
    assert errors == {} and "OK" in reply
    [record] = received(mail_account, marker)
    assert record["auth_user"] == mail_account.email
    assert record["rcpt_tos"] == ["owner@example.com"]
    assert record["tls"] is True


async def test_wrong_password_gets_535(mail_account: MailAccount, tls_context: ssl.SSLContext) -> None:
    client = aiosmtplib.SMTP(
        hostname=mail_account.host,
        port=mail_account.smtps_port,
        use_tls=True,
        tls_context=tls_context,
        timeout=10,
    )
    await client.connect()
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
        await client.login(mail_account.email, "not-the-password")
    assert info.value.code == 535
    await client.quit()


async def test_auth_is_refused_before_starttls(mail_account: MailAccount) -> None:
    client = aiosmtplib.SMTP(
        hostname=mail_account.host, port=mail_account.smtp_port, start_tls=False, timeout=10
    )
    await client.connect()
    with pytest.raises(aiosmtplib.SMTPException):
        await client.login(mail_account.email, mail_account.password)
    await client.quit()


async def test_untrusted_certificate_fails(mail_account: MailAccount) -> None:
    with pytest.raises(aiosmtplib.SMTPConnectError) as info:
        await aiosmtplib.SMTP(
            hostname=mail_account.host,
            port=mail_account.smtps_port,
            use_tls=True,
            tls_context=client_tls_context(),
            timeout=10,
        ).connect()
    assert isinstance(
        info.value.__cause__, ssl.SSLCertVerificationError
    ) or "CERTIFICATE_VERIFY_FAILED" in str(info.value)
