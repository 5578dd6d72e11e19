"""Who may send a stored password where (security review: "a stored password sent to a host of the caller's
choosing"), on the real FerretDB, Kafka, Dovecot and SMTP server.

An edit that only changes the servers (or the login) used to decrypt the stored password and log in to the new
servers: anyone able to edit the mailbox could have its password sent to a server they run. Now such an edit
needs the password again (``password_required``, before any connection), and a mailbox is reachable only by the
user who bound it (and the tenant's admin), not by every user of the tenant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MailAccount
from tests.integration.binding.conftest import Api
from tests.integration.binding.test_api import body, create
from tests.support.imap_responder import ImapResponder

pytestmark = pytest.mark.integration


def attacker_server(account: MailAccount, passwords: list[str]) -> ImapResponder:
    """An IMAP server with a certificate the verifier trusts (the local CA's), recording every password sent."""
    tls = Path(account.servers.ca_file).parent

    def record(_user: str, password: str) -> None:
        passwords.append(password)

    return ImapResponder(str(tls / "server.pem"), str(tls / "server.key"), record)


async def test_a_server_change_without_the_password_is_refused_before_any_connection(
    api: Api, shared_account: MailAccount
) -> None:
    created = await create(api, shared_account)
    passwords: list[str] = []
    async with attacker_server(shared_account, passwords) as evil:
        for change in (
            {"imap": {"host": "127.0.0.1", "port": evil.port, "security": "ssl"}},  # another port (and host)
            {"smtp": {"host": "127.0.0.1", "port": evil.port, "security": "ssl"}},
            {"provider_id": "qq"},  # the catalog's servers of another provider
        ):
            refused = await api.client.patch(
                f"/v1/mailboxes/{created['id']}", json=change, headers=api.auth()
            )
            assert refused.status_code == 422, refused.text
            error = refused.json()
            assert (
                error["code"] == "password_required"
                and error["fix"]
                and error["fix_zh"]
                and error["message_zh"]
            )
            assert error["new_destinations"], error
        assert passwords == [] and evil.commands == []  # nothing reached the attacker's server
    # Another login name on the same servers is somewhere new too.
    login = await api.client.patch(
        f"/v1/mailboxes/{created['id']}",
        json={"email": f"someone-else@{shared_account.email.rpartition('@')[2]}"},
        headers=api.auth(),
    )
    assert login.status_code == 422 and login.json()["code"] == "password_required"
    assert any("login someone-else@" in d for d in login.json()["new_destinations"])
    # The stored settings themselves (here: the same servers given again) need no password.
    same = await api.client.patch(
        f"/v1/mailboxes/{created['id']}",
        json={"imap": body(shared_account)["imap"], "nickname": "again"},
        headers=api.auth(),
    )
    assert same.status_code == 200, same.text
    # With the password the user decides where it goes (verified there first, as for a new mailbox).
    with_password = await api.client.patch(
        f"/v1/mailboxes/{created['id']}",
        json={
            "password": shared_account.password,
            "imap": {"host": shared_account.host, "port": shared_account.imap_port, "security": "starttls"},
        },
        headers=api.auth(),
    )
    assert with_password.status_code == 200, with_password.text
    stored = await api.client.get(f"/v1/mailboxes/{created['id']}", headers=api.auth())
    assert stored.json()["imap"]["port"] == shared_account.imap_port


async def test_another_user_of_the_tenant_cannot_reach_the_mailbox(
    api: Api, shared_account: MailAccount
) -> None:
    created = await create(api, shared_account)
    url = f"/v1/mailboxes/{created['id']}"
    colleague = api.auth(user="u_2")
    passwords: list[str] = []
    async with attacker_server(shared_account, passwords) as evil:
        redirect: dict[str, Any] = {"imap": {"host": "127.0.0.1", "port": evil.port, "security": "ssl"}}
        assert (await api.client.get(url, headers=colleague)).status_code == 404
        assert (await api.client.patch(url, json=redirect, headers=colleague)).status_code == 404
        assert (await api.client.patch(url, json={"nickname": "mine"}, headers=colleague)).status_code == 404
        assert (await api.client.post(f"{url}/verify", headers=colleague)).status_code == 404
        assert (await api.client.delete(url, headers=colleague)).status_code == 404
        assert (await api.client.get("/v1/mailboxes", headers=colleague)).json()["items"] == []

        # The tenant's admin sees and manages it, but cannot redirect the password either.
        admin = api.auth(user="u_admin", role="admin")
        listed = (await api.client.get("/v1/mailboxes", headers=admin)).json()["items"]
        assert [m["id"] for m in listed] == [created["id"]]
        renamed = await api.client.patch(url, json={"nickname": "Sales (shared)"}, headers=admin)
        assert renamed.status_code == 200 and renamed.json()["nickname"] == "Sales (shared)"
        refused = await api.client.patch(url, json=redirect, headers=admin)
        assert refused.status_code == 422 and refused.json()["code"] == "password_required"
        assert passwords == [] and evil.commands == []
    owner_view = await api.client.get(url, headers=api.auth())
    assert owner_view.status_code == 200 and owner_view.json()["nickname"] == "Sales (shared)"
    assert (await api.client.delete(url, headers=api.auth(user="u_admin", role="admin"))).status_code == 204
