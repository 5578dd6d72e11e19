"""A real IMAP LOGIN against Dovecot with DEBUG logging on, a password containing ``"`` and ``\\``: no form of the
password reaches any log handler (aioimaplib logs every command it sends at DEBUG, and its own scrub misses the
escaped form LOGIN sends)."""

from __future__ import annotations

import base64
import io
import logging
import secrets
import uuid
from pathlib import Path
from typing import Any

import aioimaplib
import pytest

from laifaxin_shared.logging import configure_logging, secret_forms
from tests.conftest import MailAccount, wait_until_login_works
from tests.support.infra import Servers

pytestmark = pytest.mark.integration


class _Raw(logging.Handler):
    """A handler with no formatter of ours: what any other handler (a debugger's, pytest's) would see."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_debug_imap_login_logs_no_password(
    real_servers: Servers, infra_module: Any, tls_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    email = f"u{uuid.uuid4().hex[:10]}@{real_servers.mail['mail_domain']}"
    password = 'pw"q\\' + secrets.token_urlsafe(8) + '\\"end'  # both characters IMAP quoting escapes
    infra_module.add_user(email, password, Path(real_servers.mail["passwd_file"]))
    account = MailAccount(email, password, real_servers)
    wait_until_login_works(account)

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging(
        "redaction-test", "DEBUG", json=True
    )  # what a service does with LAIFAXIN_LOG_LEVEL=DEBUG
    service_out = io.StringIO()
    service_handler = logging.StreamHandler(service_out)
    service_handler.setFormatter(root.handlers[0].formatter)
    service_handler.filters = list(root.handlers[0].filters)
    raw = _Raw()
    root.addHandler(service_handler)
    root.addHandler(raw)
    caplog.set_level(logging.DEBUG)
    try:
        client = aioimaplib.IMAP4_SSL(account.host, account.imaps_port, ssl_context=tls_context, timeout=10)
        await client.wait_hello_from_server()
        response = await client.login(account.email, password)
        assert response.result == "OK", response
        await client.logout()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])

    captured = {
        "service (JSON)": service_out.getvalue(),
        "raw handler": "\n".join(raw.lines),
        "pytest caplog": "\n".join(r.getMessage() for r in caplog.records) + caplog.text,
    }
    assert "LOGIN [REDACTED]" in captured["raw handler"], (
        "aioimaplib's DEBUG line of the LOGIN was not logged"
    )
    forms = secret_forms(password) | {
        base64.b64encode(f"\0{email}\0{password}".encode()).decode(),
        password.split('"')[1].split("\\")[1][:8],  # a fragment from the middle
    }
    for where, text in captured.items():
        for form in forms:
            assert form not in text, f"{where} holds a form of the password: {form!r}"
