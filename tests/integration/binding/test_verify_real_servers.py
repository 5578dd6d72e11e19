"""The verifier against the real Dovecot and SMTP servers: success, and each real failure mode."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import string
import uuid
from pathlib import Path
from typing import Any

import pytest

from laifaxin_binding.verify import Endpoint, HostGuard, Verifier, VerifyRequest
from laifaxin_shared.providers.catalog import get_provider
from laifaxin_shared.providers.errors import ErrorCode, MailServerError
from laifaxin_shared.providers.models import Security
from tests.conftest import MailAccount, wait_until_login_works
from tests.support.imap_responder import ImapResponder, SilentServer, accept
from tests.support.infra import Servers

pytestmark = pytest.mark.integration

SSL, STARTTLS = Security.SSL, Security.STARTTLS


def request(
    account: MailAccount,
    imap: Endpoint,
    smtp: Endpoint,
    password: str | None = None,
    provider_id: str | None = None,
) -> VerifyRequest:
    return VerifyRequest.build(
        account.email,
        account.password if password is None else password,
        provider=get_provider(provider_id) if provider_id else None,
        imap=imap,
        smtp=smtp,
    )


def good(account: MailAccount, security: Security = SSL) -> tuple[Endpoint, Endpoint]:
    if security is SSL:
        return Endpoint(account.host, account.imaps_port, SSL), Endpoint(
            account.host, account.smtps_port, SSL
        )
    return Endpoint(account.host, account.imap_port, STARTTLS), Endpoint(
        account.host, account.smtp_port, STARTTLS
    )


@pytest.mark.parametrize("security", [SSL, STARTTLS])
async def test_good_mailbox_verifies_over_tls_and_starttls(
    verifier: Verifier, shared_account: MailAccount, security: Security
) -> None:
    imap, smtp = good(shared_account, security)
    outcome = await verifier.verify(request(shared_account, imap, smtp))
    assert outcome.ok, outcome.errors()
    assert outcome.imap.username == shared_account.email
    assert outcome.smtp.username == shared_account.email
    assert outcome.imap.id_sent  # Dovecot advertises ID (RFC 2971)
    assert outcome.imap.endpoint == imap and outcome.smtp.endpoint == smtp


async def test_wrong_password_is_auth_failed_with_the_fix(
    verifier: Verifier, mail_account: MailAccount
) -> None:
    wrong = "not-the-password-" + mail_account.password[-4:]
    outcome = await verifier.verify(request(mail_account, *good(mail_account), password=wrong))
    assert not outcome.ok
    assert outcome.imap.error is not None and outcome.smtp.error is not None
    assert outcome.imap.error.code is ErrorCode.AUTH_FAILED
    assert outcome.smtp.error.code is ErrorCode.AUTH_FAILED
    assert "app password" in outcome.imap.error.fix.en
    assert "授权码" in outcome.imap.error.fix.zh
    assert "AUTHENTICATIONFAILED" in (outcome.imap.error.server_text or "")
    assert "535" in (outcome.smtp.error.server_text or "")
    for error in outcome.errors():
        assert wrong not in str(error.to_dict())


async def test_app_password_whitespace_is_stripped(
    verifier: Verifier, real_servers: Servers, infra_module: Any
) -> None:
    # An app password as Gmail shows it: 16 letters in 4 groups of 4 (only that shape loses its inner spaces).
    app_password = "".join(secrets.choice(string.ascii_lowercase) for _ in range(16))
    account = MailAccount(
        f"a{uuid.uuid4().hex[:10]}@{real_servers.mail['mail_domain']}", app_password, real_servers
    )
    infra_module.add_user(account.email, app_password, Path(real_servers.mail["passwd_file"]))
    wait_until_login_works(account)
    spaced = " ".join(app_password[i : i + 4] for i in range(0, 16, 4))
    # Gmail's catalog entry says app password: the groups of four are joined again before LOGIN.
    outcome = await verifier.verify(request(account, *good(account), password=spaced, provider_id="gmail"))
    assert outcome.ok, outcome.errors()
    assert outcome.password == account.password


async def test_implicit_tls_on_the_starttls_port_is_tls_mismatch(
    verifier: Verifier, shared_account: MailAccount
) -> None:
    imap = Endpoint(shared_account.host, shared_account.imap_port, SSL)
    smtp = Endpoint(shared_account.host, shared_account.smtp_port, SSL)
    outcome = await verifier.verify(request(shared_account, imap, smtp))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.TLS_MISMATCH
    assert outcome.smtp.error is not None and outcome.smtp.error.code is ErrorCode.TLS_MISMATCH
    assert "993" in outcome.imap.error.fix.en


async def test_starttls_on_the_implicit_tls_port_is_tls_mismatch(
    verifier: Verifier, shared_account: MailAccount
) -> None:
    imap = Endpoint(shared_account.host, shared_account.imaps_port, STARTTLS)
    smtp = Endpoint(shared_account.host, shared_account.smtps_port, STARTTLS)
    outcome = await verifier.verify(request(shared_account, imap, smtp))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.TLS_MISMATCH
    assert outcome.smtp.error is not None and outcome.smtp.error.code is ErrorCode.TLS_MISMATCH


async def test_wrong_port_names_the_other_protocol(verifier: Verifier, shared_account: MailAccount) -> None:
    # IMAP pointed at the SMTP port and SMTP at the IMAP port.
    imap = Endpoint(shared_account.host, shared_account.smtps_port, SSL)
    smtp = Endpoint(shared_account.host, shared_account.imaps_port, SSL)
    outcome = await verifier.verify(request(shared_account, imap, smtp))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.WRONG_PORT
    assert "220" in (outcome.imap.error.server_text or "")
    assert outcome.smtp.error is not None and outcome.smtp.error.code is ErrorCode.WRONG_PORT
    assert "* OK" in (outcome.smtp.error.server_text or "")


async def test_refused_port_is_connection_refused(verifier: Verifier, shared_account: MailAccount) -> None:
    imap = Endpoint("127.0.0.1", 1, SSL)
    smtp = Endpoint("127.0.0.1", 2, SSL)
    outcome = await verifier.verify(request(shared_account, imap, smtp))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.CONNECTION_REFUSED
    assert outcome.smtp.error is not None and outcome.smtp.error.code is ErrorCode.CONNECTION_REFUSED


async def test_unresolvable_host_is_dns_failed(verifier: Verifier, shared_account: MailAccount) -> None:
    imap = Endpoint("imap.no-such-host.invalid", 993, SSL)
    smtp = Endpoint("smtp.no-such-host.invalid", 465, SSL)
    outcome = await verifier.verify(request(shared_account, imap, smtp))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.DNS_FAILED
    assert outcome.smtp.error is not None and outcome.smtp.error.code is ErrorCode.DNS_FAILED


async def test_untrusted_certificate_is_certificate_invalid(
    verifier: Verifier, shared_account: MailAccount
) -> None:
    mail = shared_account.servers.mail
    async with ImapResponder(
        mail["untrusted_cert"], mail["untrusted_key"], accept(shared_account.email, shared_account.password)
    ) as responder:
        imap = Endpoint("127.0.0.1", responder.port, SSL)
        outcome = await verifier.verify(request(shared_account, imap, good(shared_account)[1]))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.CERTIFICATE_INVALID
    assert responder.usernames == []  # no credentials were sent to the untrusted server
    assert outcome.smtp.ok


async def test_port_that_never_answers_is_timeout(verifier: Verifier, shared_account: MailAccount) -> None:
    async with SilentServer() as silent:
        imap = Endpoint("127.0.0.1", silent.port, SSL)
        smtp = Endpoint("127.0.0.1", silent.port, STARTTLS)
        outcome = await verifier.verify(request(shared_account, imap, smtp))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.TIMEOUT
    assert outcome.smtp.error is not None and outcome.smtp.error.code is ErrorCode.TIMEOUT
    assert "firewall" in outcome.imap.error.fix.en.lower()


async def test_loopback_is_refused_without_the_allowlist(
    tls_context: object, shared_account: MailAccount
) -> None:
    guarded = Verifier(ssl_context=tls_context, guard=HostGuard(), timeout=2)  # type: ignore[arg-type]
    outcome = await guarded.verify(request(shared_account, *good(shared_account)))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.HOST_NOT_ALLOWED
    assert outcome.smtp.error is not None and outcome.smtp.error.code is ErrorCode.HOST_NOT_ALLOWED
    assert guarded.peak_connections == {}  # refused before connecting


def test_pop3_is_refused_before_any_connection(shared_account: MailAccount) -> None:
    with pytest.raises(MailServerError) as info:
        VerifyRequest.build(shared_account.email, "x", provider=None, incoming_protocol="pop3")
    assert info.value.code is ErrorCode.POP3_UNSUPPORTED
    assert "IMAP" in info.value.error.fix.en


async def test_hundred_concurrent_verifications_keep_connections_bounded(
    tls_context: object, shared_account: MailAccount
) -> None:
    bounded = Verifier(
        ssl_context=tls_context,  # type: ignore[arg-type]
        guard=HostGuard([ipaddress.ip_network("127.0.0.0/8")]),
        timeout=30,
        max_connections_per_host=4,
    )
    imap, smtp = good(shared_account)
    outcomes = await asyncio.gather(
        *(bounded.verify(request(shared_account, imap, smtp)) for _ in range(100))
    )
    assert all(o.ok for o in outcomes), [o.errors() for o in outcomes if not o.ok][:3]
    # IMAP and SMTP share the host name here, so the bound covers both.
    assert bounded.peak_connections[shared_account.host] == 4
