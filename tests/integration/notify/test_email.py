"""Alert email through the real local SMTP relay (AUTH, TLS verified), and 4xx/5xx replies from an aiosmtpd
relay that refuses recipients on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from laifaxin_notify.channels.email import EmailSender
from laifaxin_notify.store import Binding, Store
from tests.conftest import MailAccount
from tests.integration.notify.conftest import classified

pytestmark = pytest.mark.integration


def received(account: MailAccount, marker: str) -> list[dict[str, Any]]:
    index = Path(str(account.servers.mail["smtp_received_index"]))
    records = [json.loads(line) for line in index.read_text().splitlines()] if index.exists() else []
    out = []
    for r in records:
        text = Path(str(r["file"])).read_text(errors="replace")
        if marker in text:
            out.append({**r, "text": text})
    return out


def relay_sender(account: MailAccount, tls_context: ssl.SSLContext, security: str = "ssl") -> EmailSender:
    """A sender to the real local relay, authenticated as ``account``."""
    return EmailSender(
        host=account.host,
        port=account.smtps_port if security == "ssl" else account.smtp_port,
        security=security,
        sender=account.email,
        username=account.email,
        password=account.password,
        tls_context=tls_context,
    )


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_alert_mail_through_the_relay(
    store: Store, make_notifier: Any, mail_account: MailAccount, tls_context: ssl.SSLContext, security: str
) -> None:
    sender = relay_sender(mail_account, tls_context, security)
    notifier, _ = make_notifier({"email": sender})
    marker = uuid.uuid4().hex
    ev = classified(subject=f"Quotation {marker}")
    await store.put_binding(Binding(ev.tenant_id, ev.user_id, "email", "owner@example.com", {}))
    assert [r for _, r in await notifier.handle_classified(ev)] == ["sent"]
    assert [r for _, r in await notifier.handle_classified(ev)] == ["duplicate"]
    [record] = received(mail_account, marker)
    assert record["rcpt_tos"] == ["owner@example.com"] and record["tls"] is True
    text = record["text"]
    assert "Category: inquiry" in text and f"/{ev.ref.uid}" in text


async def test_alerts_share_one_smtp_session(
    store: Store, make_notifier: Any, mail_account: MailAccount, tls_context: ssl.SSLContext
) -> None:
    """Alerts one after another go over one kept SMTP session (RFC 5321 section 3.3), not one connection each."""
    sender = relay_sender(mail_account, tls_context)
    notifier, _ = make_notifier({"email": sender})
    marker = uuid.uuid4().hex
    try:
        for i in range(5):
            ev = classified(subject=f"Quotation {marker} #{i}")
            await store.put_binding(Binding(ev.tenant_id, ev.user_id, "email", "owner@example.com", {}))
            assert [r for _, r in await notifier.handle_classified(ev)] == ["sent"]
    finally:
        await sender.aclose()
    records = received(mail_account, marker)
    assert len(records) == 5 and all(r["tls"] and r["auth_user"] == mail_account.email for r in records)
    assert sender.sessions_opened == 1 and len({tuple(r["peer"]) for r in records}) == 1


async def test_untrusted_relay_certificate_is_not_sent_to(
    store: Store, make_notifier: Any, mail_account: MailAccount
) -> None:
    sender = relay_sender(mail_account, ssl.create_default_context())  # our test CA is not trusted
    notifier, queue = make_notifier({"email": sender})
    ev = classified()
    await store.put_binding(Binding(ev.tenant_id, ev.user_id, "email", "owner@example.com", {}))
    assert [r for _, r in await notifier.handle_classified(ev)] == ["retry"]
    assert "transport" in queue.items[0][1].last_error


class RefusingHandler:
    """Refuses RCPT for addresses starting with 'temp' (451) or 'perm' (550)."""

    async def handle_RCPT(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("temp"):
            return "451 4.3.0 try again later"
        if address.startswith("perm"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


@contextlib.contextmanager
def loopback_relay(**smtp_options: Any) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An aiosmtpd relay on implicit TLS with a throwaway CA: (port, client context trusting it)."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(
        RefusingHandler(), hostname="127.0.0.1", port=port, ssl_context=server_ctx, **smtp_options
    )
    controller.start()
    try:
        yield port, client_ctx
    finally:
        controller.stop()


@pytest.fixture
def refusing_relay() -> Iterator[tuple[int, ssl.SSLContext]]:
    with loopback_relay() as relay:
        yield relay


async def test_4xx_is_retried_and_5xx_is_permanent(
    store: Store, make_notifier: Any, refusing_relay: tuple[int, ssl.SSLContext]
) -> None:
    port, ctx = refusing_relay
    sender = EmailSender(
        host="127.0.0.1", port=port, security="ssl", sender="alerts@laifaxin.test", tls_context=ctx
    )
    notifier, queue = make_notifier({"email": sender})
    ev = classified()
    for address in ("temp@example.com", "perm@example.com", "fine@example.com"):
        await store.put_binding(Binding(ev.tenant_id, ev.user_id, "email", address, {}))
    results = {t.target_id: r for t, r in await notifier.handle_classified(ev)}
    assert results == {"temp@example.com": "retry", "perm@example.com": "failed", "fine@example.com": "sent"}
    [(topic, task)] = queue.items
    assert topic == "notify.retry.0" and "451" in task.last_error
    history = {h["target_id"]: h for h in await store.history(ev.tenant_id, ev.user_id)}
    assert "550" in history["perm@example.com"]["last_error"]


async def test_a_session_the_relay_closed_is_replaced_and_sessions_are_capped(
    store: Store, make_notifier: Any
) -> None:
    """The relay drops an idle client (aiosmtpd's timeout answers 421 and closes, RFC 5321 section 4.5.3.2.7):
    the next alert opens a new session without a failed attempt; a session is closed after
    ``messages_per_connection`` mails."""
    with loopback_relay(timeout=0.3) as (port, ctx):
        sender = EmailSender(
            host="127.0.0.1",
            port=port,
            security="ssl",
            sender="alerts@laifaxin.test",
            tls_context=ctx,
            messages_per_connection=2,
        )
        notifier, queue = make_notifier({"email": sender})
        try:
            ev = classified()
            await store.put_binding(Binding(ev.tenant_id, ev.user_id, "email", "fine@example.com", {}))
            assert [r for _, r in await notifier.handle_classified(ev)] == ["sent"]
            await asyncio.sleep(1.0)  # the relay times the idle session out
            for _ in range(3):
                ev = classified()
                await store.put_binding(Binding(ev.tenant_id, ev.user_id, "email", "fine@example.com", {}))
                assert [r for _, r in await notifier.handle_classified(ev)] == ["sent"]
        finally:
            await sender.aclose()
    assert queue.items == []
    # 1 (timed out) + 1 (2 mails, then closed at the cap) + 1 (the last mail)
    assert sender.sessions_opened == 3
