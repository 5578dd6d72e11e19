"""Binding with only an address and a password (``POST /v1/mailboxes {email, password}``, ``laifaxin-mail mailbox
add EMAIL``): the servers are detected from the catalog, MX, autoconfig or SRV records, on the real Kafka,
FerretDB, Dovecot and SMTP servers.

Detection talks to real loopback servers: DNS (tests/support/dns_server.py) and autoconfig over HTTP
(tests/unit/binding/autoconfig_http.py), handed to the app as its detector. Tencent Exmail's catalog entry is
pointed at the local Dovecot and SMTP server (the real hosts are not reachable from tests), so a domain whose MX
is ``mxbiz1.qq.com`` binds "with Exmail's servers" against servers that answer.
"""

from __future__ import annotations

import io
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from laifaxin_binding.app import create_app
from laifaxin_binding.auth import issue_token
from laifaxin_binding.detect import Detector
from laifaxin_cli.main import main
from laifaxin_shared.events import MailboxVerified
from laifaxin_shared.providers.catalog import load_catalog
from laifaxin_shared.providers.models import Catalog, ProtocolSettings, Security
from tests.conftest import MailAccount, wait_until_login_works
from tests.integration.binding.apps import account_on, own_app
from tests.integration.binding.conftest import Api
from tests.support.dns_server import LoopbackDNS
from tests.support.infra import Servers
from tests.support.loopback import served_in_thread
from tests.unit.binding.autoconfig_http import AutoconfigHTTP

pytestmark = pytest.mark.integration

EXMAIL_HOSTED = "exmail-hosted.test"  # MX -> mxbiz1.qq.com (Tencent Exmail)
M365_HOSTED = "m365-hosted.test"  # MX -> Microsoft 365 (OAuth2 only)
CONFIRM = "confirm.test"  # autoconfig -> localhost, outside the domain and the catalog
AUTOCONFIG = "localhost"  # autoconfig -> localhost, the domain itself (it resolves to the local servers);
# its document says the login name is the local part (%EMAILLOCALPART%), as some ISPs' do
NOTHING = "nothing.test"  # no record of any kind

RECORDS = {
    (EXMAIL_HOSTED, "MX"): ["10 mxbiz1.qq.com.", "20 mxbiz2.qq.com."],
    (M365_HOSTED, "MX"): ["0 m365-hosted-test.mail.protection.outlook.com."],
}


def autoconfig_document(host: str, servers: Servers, username: str = "%EMAILADDRESS%") -> bytes:
    mail = servers.mail
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{host}">
    <incomingServer type="imap">
      <hostname>{host}</hostname><port>{mail["imaps_port"]}</port><socketType>SSL</socketType>
      <username>{username}</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{host}</hostname><port>{mail["smtp_port"]}</port><socketType>STARTTLS</socketType>
      <username>{username}</username><authentication>password-cleartext</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
""".encode()


def local_exmail_catalog(servers: Servers) -> Catalog:
    """The bundled catalog with Tencent Exmail's servers replaced by the local Dovecot and SMTP server."""
    mail = servers.mail
    imap = ProtocolSettings(host="127.0.0.1", port=int(mail["imaps_port"]), security=Security.SSL)
    smtp = ProtocolSettings(host="127.0.0.1", port=int(mail["smtp_port"]), security=Security.STARTTLS)
    catalog = load_catalog()
    providers = tuple(
        p.model_copy(update={"imap": imap, "smtp": smtp}) if p.id == "tencent_exmail" else p
        for p in catalog.providers
    )
    return catalog.model_copy(update={"providers": providers})


@dataclass
class Loopback:
    dns: LoopbackDNS
    http: AutoconfigHTTP
    catalog: Catalog

    def detector(self) -> Detector:
        return Detector(
            resolver=self.dns.resolver(),
            autoconfig_base_url=self.http.base_url,
            catalog=self.catalog,
            budget=5.0,
        )


def start_dns(attempts: int = 5) -> LoopbackDNS:
    """LoopbackDNS binds TCP on the port the OS gave its UDP socket; on a busy machine that TCP port may be
    taken, so try again on a fresh one (as tests/unit/binding/conftest.py does)."""
    for attempt in range(attempts):
        server = LoopbackDNS(RECORDS)
        try:
            return server.start()
        except OSError:
            if server._udp is not None:
                server._udp.server_close()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def loopback(real_servers: Servers) -> Iterator[Loopback]:
    dns_server = start_dns()
    http_server = AutoconfigHTTP(
        {
            (f"autoconfig.{AUTOCONFIG}", "/mail/config-v1.1.xml"): (
                200,
                autoconfig_document("localhost", real_servers, username="%EMAILLOCALPART%"),
            ),
            (f"autoconfig.{CONFIRM}", "/mail/config-v1.1.xml"): (
                200,
                autoconfig_document("localhost", real_servers),
            ),
        }
    )
    try:
        yield Loopback(dns_server, http_server, local_exmail_catalog(real_servers))
    finally:
        http_server.close()
        dns_server.stop()


@pytest.fixture(scope="module")
async def detecting_app(real_servers: Servers, loopback: Loopback) -> AsyncIterator[Api]:
    async with own_app(real_servers, detector=loopback.detector()) as app:
        yield app


@pytest.fixture
def api(detecting_app: Api) -> Api:
    return detecting_app.for_tenant(f"tenant-{time.monotonic_ns()}")


async def bind(api: Api, account: MailAccount, **extra: Any) -> Any:
    return await api.client.post(
        "/v1/mailboxes",
        json={"email": account.email, "password": account.password, **extra},
        headers=api.auth(),
    )


async def test_a_domain_whose_mx_is_a_catalog_provider_binds_with_that_providers_servers(
    api: Api, real_servers: Servers, infra_module: Any, loopback: Loopback
) -> None:
    account = account_on(real_servers, infra_module, EXMAIL_HOSTED)
    response = await bind(api, account)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["provider_id"] == "tencent_exmail"
    assert created["imap"] == {"host": "127.0.0.1", "port": account.imaps_port, "security": "ssl"}
    assert created["smtp"] == {"host": "127.0.0.1", "port": account.smtp_port, "security": "starttls"}
    assert created["username"] == account.email
    [record] = await api.events("mailbox.verified", created["id"], expect=1)
    assert MailboxVerified.model_validate_json(record.value).provider_id == "tencent_exmail"
    assert (EXMAIL_HOSTED, "MX") in loopback.dns.queries
    assert all(host != EXMAIL_HOSTED for host, _, _ in loopback.http.requests)  # MX decided: no autoconfig


async def test_an_oauth2_only_provider_found_through_mx_is_refused_before_connecting(
    api: Api, loopback: Loopback
) -> None:
    response = await api.client.post(
        "/v1/mailboxes", json={"email": f"a@{M365_HOSTED}", "password": "x"}, headers=api.auth()
    )
    assert response.status_code == 422 and response.json()["code"] == "oauth_required"
    assert await api.db.verification_attempts.count_documents({"tenant_id": api.tenant}) == 0


async def test_a_domain_whose_autoconfig_names_its_own_servers_binds_with_its_login_name(
    api: Api, real_servers: Servers, infra_module: Any
) -> None:
    # The local servers know this user by the local part alone, as the autoconfig document says.
    local = f"u{uuid.uuid4().hex[:10]}"
    password = "pw-" + secrets.token_urlsafe(12)
    infra_module.add_user(local, password, Path(real_servers.mail["passwd_file"]))
    wait_until_login_works(MailAccount(local, password, real_servers), timeout=10.0)
    response = await api.client.post(
        "/v1/mailboxes", json={"email": f"{local}@{AUTOCONFIG}", "password": password}, headers=api.auth()
    )
    assert response.status_code == 201, response.text
    created = response.json()
    imaps, smtp = int(real_servers.mail["imaps_port"]), int(real_servers.mail["smtp_port"])
    assert created["provider_id"] == "custom"
    assert created["imap"] == {"host": "localhost", "port": imaps, "security": "ssl"}
    assert created["smtp"] == {"host": "localhost", "port": smtp, "security": "starttls"}
    assert created["username"] == local
    # Re-verification logs in with the name that worked, not the full address a custom server starts with.
    again = await api.client.post(f"/v1/mailboxes/{created['id']}/verify", headers=api.auth())
    assert again.status_code == 200 and again.json()["status"] == "normal"
    attempts = api.db.verification_attempts.find({"tenant_id": api.tenant})
    assert [a["ok"] async for a in attempts] == [True, True]


async def test_autoconfig_servers_outside_the_domain_are_bound_only_once_confirmed(
    api: Api, real_servers: Servers, infra_module: Any
) -> None:
    account = account_on(real_servers, infra_module, CONFIRM)
    response = await bind(api, account)
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "servers_need_confirmation"
    assert error["detected"]["source"] == "autoconfig"
    assert error["detected"]["unconfirmed_hosts"] == ["localhost"]
    assert account.password not in response.text
    # The password was not sent anywhere: no verification was attempted.
    assert await api.db.verification_attempts.count_documents({"tenant_id": api.tenant}) == 0
    confirmed = await bind(api, account, imap=error["detected"]["imap"], smtp=error["detected"]["smtp"])
    assert confirmed.status_code == 201, confirmed.text
    assert confirmed.json()["imap"] == {"host": "localhost", "port": account.imaps_port, "security": "ssl"}


async def test_a_domain_with_nothing_to_find_gets_servers_required_naming_what_was_tried(
    api: Api, loopback: Loopback
) -> None:
    started = time.monotonic()
    response = await api.client.post(
        "/v1/mailboxes", json={"email": f"a@{NOTHING}", "password": "x"}, headers=api.auth()
    )
    assert time.monotonic() - started < 5.0  # nothing answers slowly here; the detector's budget is 5 s
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "servers_required"
    for step in ("provider catalog", "MX records", "autoconfig", "SRV records"):
        assert step in error["message"], error["message"]
    assert f"autoconfig.{NOTHING}: HTTP 404" in error["message"]
    assert {t["source"] for t in error["tried"]} >= {"catalog", "mx", "autoconfig", "srv"}
    assert "--imap" in error["fix"] and error["message_zh"] and error["fix_zh"]
    assert (f"_imaps._tcp.{NOTHING}", "SRV") in loopback.dns.queries


async def test_editing_the_address_to_another_domain_detects_its_servers(
    api: Api, shared_account: MailAccount, real_servers: Servers, infra_module: Any
) -> None:
    first = await bind(
        api,
        shared_account,
        imap={"host": shared_account.host, "port": shared_account.imaps_port, "security": "ssl"},
        smtp={"host": shared_account.host, "port": shared_account.smtps_port, "security": "ssl"},
    )
    assert first.status_code == 201, first.text
    moved = account_on(real_servers, infra_module, EXMAIL_HOSTED)
    response = await api.client.patch(
        f"/v1/mailboxes/{first.json()['id']}",
        json={"email": moved.email, "password": moved.password},
        headers=api.auth(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["provider_id"] == "tencent_exmail"
    assert response.json()["smtp"] == {"host": "127.0.0.1", "port": moved.smtp_port, "security": "starttls"}


@pytest.fixture
def served(real_servers: Servers, loopback: Loopback, detecting_app: Api) -> Iterator[str]:
    """Another app on the same database and topics, served by uvicorn on a real port (for the CLI)."""
    with served_in_thread(create_app(detecting_app.settings, detector=loopback.detector())) as url:
        yield url


def test_cli_mailbox_add_with_only_the_address_uses_the_detected_provider(
    served: str,
    detecting_app: Api,
    real_servers: Servers,
    infra_module: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = account_on(real_servers, infra_module, EXMAIL_HOSTED)
    monkeypatch.setenv("LAIFAXIN_API_URL", served)
    monkeypatch.setenv("LAIFAXIN_TOKEN", issue_token(detecting_app.settings, "tenant-cli-detect", "u_cli"))
    monkeypatch.setattr("sys.stdin", io.StringIO(account.password + "\n"))
    code = main(["mailbox", "add", account.email])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["provider_id"] == "tencent_exmail" and data["status"] == "normal"

    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    code = main(["mailbox", "add", f"b@{NOTHING}"])
    out, err = capsys.readouterr()
    assert code == 1 and json.loads(out)["code"] == "servers_required"
    assert "servers_required" in err and "--imap" in err
