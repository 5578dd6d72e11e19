"""XOAUTH2 / OAUTHBEARER against the real local servers: tokens from Ory Hydra, checked by Dovecot's oauth2 passdb
(IMAP) and the local SMTP server (both by Hydra's token introspection), through the shared helpers
``laifaxin_shared.imap.authenticate_oauth`` and ``laifaxin_shared.sasl.smtp_authenticate``.

A refused token must end in the server's ``NO`` / ``535``, never in a wait for the client's timeout (aioimaplib
leaves the SASL error challenge unanswered): every login here gets a 60 s timeout, so a hang fails the test as a
TimeoutError, not as a slow pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from laifaxin_shared import sasl
from laifaxin_shared.imap import authenticate_oauth, client_tls_context, connect_imap
from tests.conftest import MailAccount
from tests.support.infra import Servers
from tests.support.oauth import Hydra, OAuthClient, Tokens, hydra_from

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def hydra(real_servers: Servers) -> Hydra:
    found = hydra_from(real_servers.mail)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("infra.json names no Hydra: start the stack with deploy/local/infra.py up")
        pytest.skip("no local Hydra in this stack")
    return found


@pytest.fixture(scope="module")
def oauth_client(hydra: Hydra) -> OAuthClient:
    return hydra.create_client(REDIRECT)


@pytest.fixture
def signed_in(hydra: Hydra, oauth_client: OAuthClient, mail_account: MailAccount) -> Iterator[Tokens]:
    yield hydra.tokens_for(oauth_client, mail_account.email)


async def _imap(account: MailAccount) -> Any:
    return await connect_imap(
        account.host, account.imaps_port, "ssl", ssl_context=client_tls_context(account.servers.ca_file)
    )


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_imap_accepts_a_hydra_access_token(
    mail_account: MailAccount, signed_in: Tokens, mechanism: Any
) -> None:
    client = await _imap(mail_account)
    try:
        assert client.has_capability(f"AUTH={mechanism}")
        response = await authenticate_oauth(
            client,
            mail_account.email,
            signed_in.access_token,
            host=mail_account.host,
            port=mail_account.imaps_port,
            mechanism=mechanism,
            timeout=60,
        )
        assert response.result == "OK"
        selected = await client.select("INBOX")
        assert selected.result == "OK"
    finally:
        await client.logout()


async def test_imap_default_mechanism_is_xoauth2_and_starttls_works(
    mail_account: MailAccount, signed_in: Tokens
) -> None:
    client = await connect_imap(
        mail_account.host,
        mail_account.imap_port,
        "starttls",
        ssl_context=client_tls_context(mail_account.servers.ca_file),
    )
    try:
        response = await authenticate_oauth(
            client,
            mail_account.email,
            signed_in.access_token,
            host=mail_account.host,
            port=mail_account.imap_port,
            timeout=60,
        )
        assert response.result == "OK"
    finally:
        await client.logout()


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_imap_refusal_ends_with_no_and_the_error_status(
    mail_account: MailAccount, signed_in: Tokens, mechanism: Any
) -> None:
    client = await _imap(mail_account)
    try:
        with pytest.raises(sasl.OAuthAuthenticationError) as err:
            await authenticate_oauth(
                client,
                mail_account.email,
                signed_in.access_token + "x",
                host=mail_account.host,
                port=mail_account.imaps_port,
                mechanism=mechanism,
                timeout=60,
            )
        # XOAUTH2 at Dovecot: "401"; OAUTHBEARER: the RFC 6750 error code
        assert err.value.status in ("401", "invalid_token")
        assert err.value.server_text.startswith("NO")
        assert signed_in.access_token not in str(err.value)
        # The connection is still usable: a good token logs in on it.
        ok = await authenticate_oauth(
            client,
            mail_account.email,
            signed_in.access_token,
            host=mail_account.host,
            port=mail_account.imaps_port,
            mechanism=mechanism,
            timeout=60,
        )
        assert ok.result == "OK"
    finally:
        await client.logout()


async def test_imap_token_of_another_user_is_refused(
    new_mail_account: Any, hydra: Hydra, oauth_client: OAuthClient
) -> None:
    alice, bob = new_mail_account(), new_mail_account()
    tokens = hydra.tokens_for(oauth_client, alice.email)
    client = await _imap(bob)
    try:
        with pytest.raises(sasl.OAuthAuthenticationError):
            await authenticate_oauth(
                client, bob.email, tokens.access_token, host=bob.host, port=bob.imaps_port, timeout=60
            )
    finally:
        await client.logout()


async def test_revoked_grant_is_refused_by_imap_and_smtp(
    hydra: Hydra, oauth_client: OAuthClient, mail_account: MailAccount, signed_in: Tokens
) -> None:
    hydra.revoke_consent(mail_account.email, oauth_client.client_id)
    assert hydra.introspect(signed_in.access_token) == {"active": False}
    client = await _imap(mail_account)
    try:
        with pytest.raises(sasl.OAuthAuthenticationError):
            await authenticate_oauth(
                client,
                mail_account.email,
                signed_in.access_token,
                host=mail_account.host,
                port=mail_account.imaps_port,
                timeout=60,
            )
    finally:
        await client.logout()
    smtp = await _smtp(mail_account)
    try:
        with pytest.raises(sasl.OAuthAuthenticationError):
            await sasl.smtp_authenticate(smtp, mail_account.email, signed_in.access_token)
    finally:
        smtp.close()


async def _smtp(account: MailAccount) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(
        hostname=account.host,
        port=account.smtps_port,
        use_tls=True,
        tls_context=client_tls_context(account.servers.ca_file),
        timeout=60,
    )
    await smtp.connect()
    await smtp.ehlo()
    return smtp


async def test_smtp_xoauth2_submits_mail(mail_account: MailAccount, signed_in: Tokens) -> None:
    smtp = await _smtp(mail_account)
    try:
        assert "xoauth2" in smtp.server_auth_methods
        await sasl.smtp_authenticate(smtp, mail_account.email, signed_in.access_token)
        msg = EmailMessage()
        msg["From"] = mail_account.email
        msg["To"] = mail_account.email
        msg["Subject"] = "sent over XOAUTH2"
        msg.set_content("hello")
        errors, reply = await smtp.send_message(msg)
        assert not errors
        assert "OK" in reply
    finally:
        await smtp.quit()


async def test_smtp_bad_token_is_refused_without_hanging(
    mail_account: MailAccount, signed_in: Tokens
) -> None:
    smtp = await _smtp(mail_account)
    try:
        with pytest.raises(sasl.OAuthAuthenticationError) as err:
            await sasl.smtp_authenticate(smtp, mail_account.email, "not-a-token")
        assert "535" in err.value.server_text
        # and the right token still works on the same connection
        await sasl.smtp_authenticate(smtp, mail_account.email, signed_in.access_token)
    finally:
        await smtp.quit()
