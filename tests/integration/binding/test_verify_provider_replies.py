"""Provider replies Dovecot cannot produce, replayed by a loopback IMAP responder (tests/support/imap_responder.py);
SMTP runs against the real server. Texts: providers.md §3 and product page 204."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from laifaxin_binding.verify import Endpoint, Verifier, VerifyRequest
from laifaxin_shared.providers.catalog import get_provider
from laifaxin_shared.providers.errors import ErrorCode
from laifaxin_shared.providers.models import Security
from tests.conftest import MailAccount
from tests.support.imap_responder import ImapResponder, accept, refuse

pytestmark = pytest.mark.integration


def responder(account: MailAccount, **kwargs: Any) -> ImapResponder:
    """A responder with the local CA's server certificate (trusted, valid for 127.0.0.1)."""
    tls = Path(account.servers.ca_file).parent
    login = kwargs.pop("login", accept(account.email, account.password))
    return ImapResponder(str(tls / "server.pem"), str(tls / "server.key"), login, **kwargs)


def smtp(account: MailAccount) -> Endpoint:
    return Endpoint(account.host, account.smtps_port, Security.SSL)


def build(account: MailAccount, imap: tuple[Endpoint, ...], provider_id: str | None) -> VerifyRequest:
    base = VerifyRequest.build(
        account.email,
        account.password,
        provider=get_provider(provider_id) if provider_id else None,
        imap=imap[0],
        smtp=smtp(account),
    )
    # The catalog's backups are real NetEase hosts; point the pair at loopback responders instead.
    return VerifyRequest(
        email=base.email,
        password=base.password,
        imap=imap,
        smtp=(smtp(account),),
        imap_usernames=base.imap_usernames,
        smtp_usernames=(account.email,),
        provider_id=base.provider_id,
        imap_id_required=base.imap_id_required,
    )


async def test_163_select_unsafe_login_without_id(verifier: Verifier, shared_account: MailAccount) -> None:
    async with responder(shared_account, select_needs_id=True) as server:
        outcome = await verifier.verify(
            build(shared_account, (Endpoint("127.0.0.1", server.port, Security.SSL),), None)
        )
    assert outcome.imap.error is not None
    assert outcome.imap.error.code is ErrorCode.UNSAFE_LOGIN
    assert "Unsafe Login" in (outcome.imap.error.server_text or "")
    assert "LOGIN" in server.commands and "SELECT" in server.commands  # LOGIN succeeded; SELECT failed
    assert outcome.smtp.ok


async def test_163_catalog_quirk_sends_id_so_select_works(
    verifier: Verifier, shared_account: MailAccount
) -> None:
    # The responder does not advertise ID; the NetEase catalog entry (imap_id_required) makes us send it.
    async with responder(shared_account, select_needs_id=True) as server:
        outcome = await verifier.verify(
            build(shared_account, (Endpoint("127.0.0.1", server.port, Security.SSL),), "netease")
        )
    assert outcome.ok, outcome.errors()
    assert outcome.imap.id_sent
    assert server.commands.index("ID") < server.commands.index("SELECT")


async def test_netease_qiye_ipdeny_is_ip_denied(verifier: Verifier, shared_account: MailAccount) -> None:
    async with responder(shared_account, login=refuse("NO ERR.LOGIN.IPDENY")) as server:
        outcome = await verifier.verify(
            build(shared_account, (Endpoint("127.0.0.1", server.port, Security.SSL),), "netease_qiye")
        )
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.IP_DENIED
    assert "not a wrong password" in outcome.imap.error.message.en
    assert "qiye.163.com/admin" in outcome.imap.error.fix.en


async def test_domainnotexist_switches_to_the_backup_server(
    verifier: Verifier, shared_account: MailAccount
) -> None:
    async with (
        responder(shared_account, login=refuse("NO ERR.LOGIN.DOMAINNOTEXIST")) as primary,
        responder(shared_account) as backup,
    ):
        pair = (
            Endpoint("127.0.0.1", primary.port, Security.SSL),
            Endpoint("127.0.0.1", backup.port, Security.SSL),
        )
        outcome = await verifier.verify(build(shared_account, pair, "netease_qiye"))
    assert outcome.ok, outcome.errors()
    assert outcome.imap.endpoint == pair[1]
    assert outcome.imap.attempts == pair
    assert primary.usernames == [shared_account.email] and backup.usernames == [shared_account.email]


async def test_domainnotexist_on_both_servers_is_reported(
    verifier: Verifier, shared_account: MailAccount
) -> None:
    async with (
        responder(shared_account, login=refuse("NO ERR.LOGIN.DOMAINNOTEXIST")) as primary,
        responder(shared_account, login=refuse("NO ERR.LOGIN.DOMAINNOTEXIST")) as backup,
    ):
        pair = (
            Endpoint("127.0.0.1", primary.port, Security.SSL),
            Endpoint("127.0.0.1", backup.port, Security.SSL),
        )
        outcome = await verifier.verify(build(shared_account, pair, "netease_qiye"))
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.BACKUP_SERVER_NEEDED
    assert outcome.imap.attempts == pair


async def test_username_fallback_to_the_local_part(verifier: Verifier, shared_account: MailAccount) -> None:
    local = shared_account.email.split("@")[0]
    async with responder(shared_account, login=accept(local, shared_account.password)) as server:
        outcome = await verifier.verify(
            build(shared_account, (Endpoint("127.0.0.1", server.port, Security.SSL),), "qq")
        )
    assert outcome.ok, outcome.errors()
    assert outcome.imap.username == local
    assert server.usernames == [shared_account.email, local]  # one connection, full address first


async def test_no_username_fallback_where_the_catalog_does_not_allow_it(
    verifier: Verifier, shared_account: MailAccount
) -> None:
    local = shared_account.email.split("@")[0]
    async with responder(shared_account, login=accept(local, shared_account.password)) as server:
        outcome = await verifier.verify(
            build(shared_account, (Endpoint("127.0.0.1", server.port, Security.SSL),), "netease_qiye")
        )
    assert outcome.imap.error is not None and outcome.imap.error.code is ErrorCode.AUTH_FAILED
    assert server.usernames == [shared_account.email]
