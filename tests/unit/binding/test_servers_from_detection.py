"""How a bind without provider or servers turns a detection into the servers it verifies against
(:func:`laifaxin_binding.service.servers_from_detection`), with detection running against real loopback DNS and
autoconfig servers (tests/support/dns_server.py, autoconfig_http.py) as in test_detect.py, where the autoconfig scenarios also
check what servers_from_detection makes of them."""

from __future__ import annotations

import socket
import time

import dns.asyncresolver
import pytest

from laifaxin_binding import errors
from laifaxin_binding.detect import Detector
from laifaxin_binding.models import ServerIn
from laifaxin_binding.service import servers_from_detection
from tests.support.dns_server import LoopbackDNS
from tests.unit.binding.autoconfig_http import AutoconfigHTTP
from tests.unit.binding.test_detect import _detector, _publish_autoconfig


async def test_mx_of_a_catalog_provider_binds_as_that_provider(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    dns_server.set_records({("company.example", "MX"): ["10 mxbiz1.qq.com.", "20 mxbiz2.qq.com."]})
    detection = await _detector(dns_server, http_server).detect("boss@company.example")
    servers = servers_from_detection(detection, None, None)
    assert servers.provider is not None and servers.provider.id == "tencent_exmail"
    assert servers.imap is None and servers.smtp is None  # the catalog's servers, with their backups
    assert servers.imap_usernames == ()


async def test_a_given_server_wins_over_the_mx_providers_for_its_protocol(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    dns_server.set_records({("gw.example", "MX"): ["1 aspmx.l.google.com."]})
    detection = await _detector(dns_server, http_server).detect("a@gw.example")
    mine = ServerIn(host="imap.gmail.com", port=993, security="ssl")
    servers = servers_from_detection(detection, mine, None)
    assert servers.provider is not None and servers.provider.id == "google_workspace"
    assert servers.imap == mine and servers.smtp is None


async def test_an_oauth2_only_provider_found_through_mx_is_oauth_required(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    dns_server.set_records({("contoso.example", "MX"): ["0 contoso-example.mail.protection.outlook.com."]})
    detection = await _detector(dns_server, http_server).detect("a@contoso.example")
    with pytest.raises(errors.BindingError) as info:
        servers_from_detection(detection, None, None)
    assert info.value.code == "oauth_required"


async def test_autoconfig_naming_catalog_hosts_uses_that_provider(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    _publish_autoconfig(http_server, "qqhosted.example", "imap.exmail.qq.com", "smtp.exmail.qq.com")
    detection = await _detector(dns_server, http_server).detect("a@qqhosted.example")
    servers = servers_from_detection(detection, None, None)
    assert servers.provider is not None and servers.provider.id == "tencent_exmail"
    assert servers.imap is not None and servers.imap.host == "imap.exmail.qq.com"


async def test_srv_records_inside_the_domain_give_custom_servers(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    dns_server.set_records(
        {
            ("_imaps._tcp.srv.example", "SRV"): ["0 1 993 imap.srv.example."],
            ("_submissions._tcp.srv.example", "SRV"): ["0 1 465 smtp.srv.example."],
        }
    )
    detection = await _detector(dns_server, http_server).detect("a@srv.example")
    servers = servers_from_detection(detection, None, None)
    assert servers.imap == ServerIn(host="imap.srv.example", port=993, security="ssl")
    assert servers.smtp == ServerIn(host="smtp.srv.example", port=465, security="ssl")
    assert servers.imap_usernames == ()  # the full address, as for any custom server


async def test_nothing_found_is_servers_required_naming_every_step(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    detection = await _detector(dns_server, http_server).detect("a@nowhere.example")
    with pytest.raises(errors.BindingError) as info:
        servers_from_detection(detection, None, None)
    body = info.value.to_dict()
    assert body["code"] == "servers_required"
    for step in ("provider catalog: no match", "MX records", "autoconfig", "SRV records (RFC 6186)"):
        assert step in body["message"], step
    assert "HTTP 404" in body["message"]
    assert {t["source"] for t in body["tried"]} >= {"catalog", "mx", "autoconfig", "srv"}
    assert "--imap HOST:993:ssl" in body["fix"] and "SRV" in body["message_zh"]


async def test_a_silent_dns_server_cannot_hold_a_bind_longer_than_the_budget() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = silent.getsockname()[1]
        resolver.lifetime = 30
        started = time.monotonic()
        detection = await Detector(resolver=resolver, budget=0.5).detect("a@slow.example")
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    with pytest.raises(errors.BindingError) as info:
        servers_from_detection(detection, None, None)
    assert info.value.code == "servers_required"
    assert "gave up after 0.5 s" in info.value.message.en
    assert "autoconfig (Thunderbird clientConfig): not reached" in info.value.message.en
