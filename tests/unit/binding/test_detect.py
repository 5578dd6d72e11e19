"""Autodetection through real loopback servers: DNS over UDP (dnspython wire format) and autoconfig over HTTP."""

from __future__ import annotations

import asyncio
import socket

import dns.asyncresolver
import pytest

from laifaxin_binding import errors
from laifaxin_binding.detect import AutoconfigError, Detector, detect, parse_autoconfig
from laifaxin_binding.models import ServerIn
from laifaxin_binding.service import servers_from_detection
from laifaxin_shared.providers.catalog import load_catalog
from laifaxin_shared.providers.models import AuthMethod, Security
from tests.support.dns_server import LoopbackDNS
from tests.unit.binding.autoconfig_http import AutoconfigHTTP

CATALOG_DOMAINS = sorted(
    (domain, provider.id) for provider in load_catalog().providers for domain in provider.domains
)


def _autoconfig(
    imap_host: str, smtp_host: str, *, username: str = "%EMAILADDRESS%", auth: str = "password-cleartext"
) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example">
    <domain>example</domain>
    <incomingServer type="pop3">
      <hostname>pop.ignored.example</hostname><port>995</port><socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>{imap_host}</hostname><port>143</port><socketType>plain</socketType>
      <username>{username}</username><authentication>{auth}</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>{imap_host}</hostname><port>993</port><socketType>SSL</socketType>
      <username>{username}</username><authentication>{auth}</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>{imap_host}</hostname><port>143</port><socketType>STARTTLS</socketType>
      <username>{username}</username><authentication>{auth}</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{smtp_host}</hostname><port>587</port><socketType>STARTTLS</socketType>
      <username>{username}</username><authentication>{auth}</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
""".encode()


def _publish_autoconfig(
    http_server: AutoconfigHTTP,
    domain: str,
    imap_host: str,
    smtp_host: str,
    *,
    well_known: bool = False,
    **kw: str,
) -> None:
    """Serve :func:`_autoconfig` where detection looks for ``domain``: ``autoconfig.<domain>/mail/...`` (the
    ISP's), or the domain's own ``/.well-known/autoconfig/mail/...`` with ``well_known``."""
    where = (
        (domain, "/.well-known/autoconfig/mail/config-v1.1.xml")
        if well_known
        else (f"autoconfig.{domain}", "/mail/config-v1.1.xml")
    )
    http_server.documents[where] = (200, _autoconfig(imap_host, smtp_host, **kw))


def _detector(dns_server: LoopbackDNS, http_server: AutoconfigHTTP) -> Detector:
    return Detector(resolver=dns_server.resolver(), autoconfig_base_url=http_server.base_url)


# ---------------------------------------------------------------------------------------------- catalog / offline


@pytest.mark.parametrize(("domain", "provider_id"), CATALOG_DOMAINS)
async def test_every_catalog_domain_offline(domain: str, provider_id: str) -> None:
    detection = await detect(f"someone@{domain}", offline=True)
    provider = load_catalog().providers[[p.id for p in load_catalog().providers].index(provider_id)]
    assert detection.provider == provider_id
    assert detection.source == "catalog"
    assert (detection.imap.host, detection.imap.port) == (provider.imap.host, provider.imap.port)
    assert (detection.smtp.host, detection.smtp.port) == (provider.smtp.host, provider.smtp.port)
    assert detection.needs_confirmation is False
    assert detection.password_type == provider.password.type.value


async def test_catalog_domain_never_touches_dns(dns_server: LoopbackDNS, http_server: AutoconfigHTTP) -> None:
    detection = await _detector(dns_server, http_server).detect("user@qq.com")
    assert detection.source == "catalog"
    assert detection.username == "user@qq.com"
    assert detection.username_fallback == {"imap": "user"}
    assert dns_server.queries == []
    assert http_server.requests == []


async def test_outlook_reports_oauth2() -> None:
    detection = await detect("me@hotmail.com", offline=True)
    assert detection.auth is AuthMethod.OAUTH2
    assert detection.password_type == "oauth2"


async def test_offline_unknown_domain_is_a_guess_without_network(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    detection = await _detector(dns_server, http_server).detect("a@unknown.example", offline=True)
    assert detection.source == "guess"
    assert detection.provider is None
    assert detection.imap.host == "imap.unknown.example"
    assert detection.smtp.host == "smtp.unknown.example"
    assert detection.password_type == "unknown"
    assert dns_server.queries == []
    assert http_server.requests == []


async def test_invalid_email_raises() -> None:
    with pytest.raises(ValueError, match="not an email"):
        await detect("nobody", offline=True)


# ---------------------------------------------------------------------------------------------- MX


async def test_mx_netease_enterprise(dns_server: LoopbackDNS, http_server: AutoconfigHTTP) -> None:
    dns_server.set_records({("acme.example", "MX"): ["10 mx.qiye.163.com."]})
    detection = await _detector(dns_server, http_server).detect("li.lei@acme.example")
    assert detection.source == "mx"
    assert detection.provider == "netease_qiye"
    assert (detection.imap.host, detection.imap.port, detection.imap.security) == (
        "hwhzimap.qiye.163.com",
        993,
        Security.SSL,
    )
    assert [b.host for b in detection.imap_backups] == ["imap.qiye.163.com"]
    assert [b.host for b in detection.smtp_backups] == ["smtp.qiye.163.com"]
    assert detection.username == "li.lei@acme.example"
    assert "auth_code_expires" in {q.code for q in detection.quirks}
    assert detection.needs_confirmation is False
    assert ("acme.example", "MX") in dns_server.queries
    assert http_server.requests == []  # MX decided: no autoconfig fetch


async def test_mx_lowest_preference_decides(dns_server: LoopbackDNS, http_server: AutoconfigHTTP) -> None:
    dns_server.set_records(
        {("shop.example", "MX"): ["20 mx1.qq.com.", "5 mxbiz1.qq.com.", "10 mail.shop.example."]}
    )
    detection = await _detector(dns_server, http_server).detect("boss@shop.example")
    assert detection.provider == "tencent_exmail"
    assert detection.imap.host == "imap.exmail.qq.com"
    assert [b.host for b in detection.imap_backups] == ["hwimap.exmail.qq.com"]


@pytest.mark.parametrize(
    ("mx", "provider_id"),
    [
        ("1 aspmx.l.google.com.", "google_workspace"),
        ("0 contoso-com.mail.protection.outlook.com.", "microsoft365"),
        ("10 mxw.mxhichina.com.", "alibaba_qiye"),
    ],
)
async def test_mx_business_providers(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP, mx: str, provider_id: str
) -> None:
    dns_server.set_records({("corp.example", "MX"): [mx]})
    detection = await _detector(dns_server, http_server).detect("x@corp.example")
    assert (detection.source, detection.provider) == ("mx", provider_id)


async def test_mx_lookalike_does_not_match(dns_server: LoopbackDNS, http_server: AutoconfigHTTP) -> None:
    dns_server.set_records(
        {
            ("evil.example", "MX"): ["10 evilqq.com.example.", "20 mx1.evilqq.com."],
            ("imap.evil.example", "A"): ["192.0.2.10"],
        }
    )
    detection = await _detector(dns_server, http_server).detect("a@evil.example")
    assert detection.provider is None
    assert detection.source == "guess"
    assert detection.imap.host == "imap.evil.example"


# ---------------------------------------------------------------------------------------------- autoconfig


async def test_autoconfig_inside_the_users_domain(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    _publish_autoconfig(
        http_server, "cfg.example", "imap.cfg.example", "smtp.cfg.example", username="%EMAILLOCALPART%"
    )
    detection = await _detector(dns_server, http_server).detect("zhang@cfg.example")
    assert detection.source == "autoconfig"
    assert (detection.imap.host, detection.imap.port, detection.imap.security) == (
        "imap.cfg.example",
        993,
        Security.SSL,
    )
    assert [(b.port, b.security) for b in detection.imap_backups] == [(143, Security.STARTTLS)]
    assert (detection.smtp.port, detection.smtp.security) == (587, Security.STARTTLS)
    assert detection.username == "zhang"
    assert detection.needs_confirmation is False
    assert http_server.requests[0] == (
        "autoconfig.cfg.example",
        "/mail/config-v1.1.xml",
        "emailaddress=zhang%40cfg.example",
    )
    # what a bind without servers then verifies against (servers_from_detection): the domain's own servers
    servers = servers_from_detection(detection, None, None)
    assert servers.provider is None
    assert servers.imap == ServerIn(host="imap.cfg.example", port=993, security="ssl")
    assert servers.smtp == ServerIn(host="smtp.cfg.example", port=587, security="starttls")
    assert servers.imap_usernames == ("zhang",) and servers.smtp_usernames == ("zhang",)


async def test_autoconfig_well_known_fallback_outside_domain_needs_confirmation(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    _publish_autoconfig(
        http_server,
        "hosted.example",
        "imap.bighoster.example.net",
        "smtp.bighoster.example.net",
        well_known=True,
    )
    detection = await _detector(dns_server, http_server).detect("a@hosted.example")
    assert detection.source == "autoconfig"
    assert detection.needs_confirmation is True
    assert detection.unconfirmed_hosts == ["imap.bighoster.example.net", "smtp.bighoster.example.net"]
    assert [r[0] for r in http_server.requests] == ["autoconfig.hosted.example", "hosted.example"]
    # a bind without servers is answered with the servers to confirm (servers_from_detection)
    with pytest.raises(errors.BindingError) as info:
        servers_from_detection(detection, None, None)
    body = info.value.to_dict()
    assert info.value.status == 422 and body["code"] == "servers_need_confirmation"
    assert body["detected"]["imap"] == {"host": "imap.bighoster.example.net", "port": 993, "security": "ssl"}
    assert body["detected"]["unconfirmed_hosts"] == [
        "imap.bighoster.example.net",
        "smtp.bighoster.example.net",
    ]
    assert "--imap imap.bighoster.example.net:993:ssl" in body["fix"]
    assert body["message_zh"] and body["fix_zh"]


async def test_autoconfig_pointing_at_catalog_hosts_is_trusted(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    _publish_autoconfig(http_server, "gm.example", "imap.gmail.com", "smtp.gmail.com", auth="OAuth2")
    detection = await _detector(dns_server, http_server).detect("a@gm.example")
    assert detection.source == "autoconfig"
    assert detection.provider == "gmail"
    assert detection.needs_confirmation is False
    assert detection.auth is AuthMethod.OAUTH2


async def test_autoconfig_beats_srv_and_broken_documents_are_skipped(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    dns_server.set_records({("_imaps._tcp.both.example", "SRV"): ["0 1 993 imap.srv.both.example."]})
    http_server.documents[("autoconfig.both.example", "/mail/config-v1.1.xml")] = (200, b"<not-xml")
    _publish_autoconfig(
        http_server, "both.example", "imap.both.example", "smtp.both.example", well_known=True
    )
    detection = await _detector(dns_server, http_server).detect("a@both.example")
    assert detection.source == "autoconfig"
    assert detection.imap.host == "imap.both.example"
    assert any("not XML" in a.outcome for a in detection.attempts)


def test_parse_autoconfig_refuses_dtd_and_plain_only() -> None:
    with pytest.raises(AutoconfigError, match="DTD"):
        parse_autoconfig(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><clientConfig/>', "a@b.example")
    plain_only = b"""<clientConfig><emailProvider>
      <incomingServer type="imap"><hostname>imap.b.example</hostname><port>143</port><socketType>plain</socketType></incomingServer>
      <outgoingServer type="smtp"><hostname>smtp.b.example</hostname><port>25</port><socketType>plain</socketType></outgoingServer>
    </emailProvider></clientConfig>"""
    with pytest.raises(AutoconfigError, match="SSL/STARTTLS"):
        parse_autoconfig(plain_only, "a@b.example")
    with pytest.raises(AutoconfigError, match="clientConfig"):
        parse_autoconfig(b"<html/>", "a@b.example")


def _utf16_with_entities(imap_host: str, smtp_host: str) -> bytes:
    """An autoconfig document in UTF-16 whose servers come from entities of an internal DTD: a byte search for
    ``<!DOCTYPE`` (the old check) does not see it, and the standard library's parser expands the entities."""
    doc = _autoconfig("&imap;", "&smtp;").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    dtd = f'<!DOCTYPE clientConfig [<!ENTITY imap "{imap_host}"><!ENTITY smtp "{smtp_host}">]>'
    head, _, rest = doc.partition("\n")
    return f"{head}\n{dtd}\n{rest}".encode("utf-16")


async def test_a_utf16_autoconfig_document_with_a_dtd_is_refused(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    """Security review: the DTD check was bypassed by UTF-16. Served by the loopback autoconfig server, the
    document is refused (defusedxml, whatever the encoding) and detection goes on to the next step."""
    document = _utf16_with_entities("imap.utf16.example", "smtp.utf16.example")
    assert b"<!DOCTYPE" not in document.upper()  # what the old byte check looked for
    http_server.documents[("autoconfig.utf16.example", "/mail/config-v1.1.xml")] = (200, document)
    detection = await _detector(dns_server, http_server).detect("a@utf16.example")
    assert detection.source != "autoconfig"
    assert any("DTDs and entities are not accepted" in a.outcome for a in detection.attempts), (
        detection.attempts
    )
    with pytest.raises(AutoconfigError, match="DTDs and entities are not accepted"):
        parse_autoconfig(document, "a@utf16.example")
    laughs = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><clientConfig>&b;</clientConfig>'
    ).encode("utf-16")
    with pytest.raises(AutoconfigError, match="DTDs and entities"):
        parse_autoconfig(laughs, "a@b.example")


# ---------------------------------------------------------------------------------------------- SRV


async def test_srv_records(dns_server: LoopbackDNS, http_server: AutoconfigHTTP) -> None:
    dns_server.set_records(
        {
            ("_imaps._tcp.srv.example", "SRV"): ["10 1 993 imap2.srv.example.", "0 5 993 imap.srv.example."],
            ("_submissions._tcp.srv.example", "SRV"): ["0 0 0 ."],
            ("_submission._tcp.srv.example", "SRV"): ["0 1 587 smtp.srv.example."],
        }
    )
    detection = await _detector(dns_server, http_server).detect("a@srv.example")
    assert detection.source == "srv"
    assert (detection.imap.host, detection.imap.port, detection.imap.security) == (
        "imap.srv.example",
        993,
        Security.SSL,
    )
    assert (detection.smtp.host, detection.smtp.port, detection.smtp.security) == (
        "smtp.srv.example",
        587,
        Security.STARTTLS,
    )
    assert detection.needs_confirmation is False


async def test_srv_target_outside_domain_needs_confirmation(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    dns_server.set_records(
        {
            ("_imap._tcp.away.example", "SRV"): ["0 1 143 imap.provider.example.org."],
            ("_submission._tcp.away.example", "SRV"): ["0 1 587 smtp.away.example."],
        }
    )
    detection = await _detector(dns_server, http_server).detect("a@away.example")
    assert detection.source == "srv"
    assert detection.imap.security is Security.STARTTLS
    assert detection.needs_confirmation is True
    assert detection.unconfirmed_hosts == ["imap.provider.example.org"]


async def test_srv_dot_target_means_not_offered(dns_server: LoopbackDNS, http_server: AutoconfigHTTP) -> None:
    dns_server.set_records({("_imaps._tcp.dot.example", "SRV"): ["0 0 0 ."]})
    detection = await _detector(dns_server, http_server).detect("a@dot.example")
    assert detection.source == "guess"


# ---------------------------------------------------------------------------------------------- guess


async def test_guess_prefers_names_that_resolve(dns_server: LoopbackDNS, http_server: AutoconfigHTTP) -> None:
    dns_server.set_records({("mail.small.example", "A"): ["192.0.2.25"]})
    detection = await _detector(dns_server, http_server).detect("a@small.example")
    assert detection.source == "guess"
    assert (detection.imap.host, detection.imap.port) == ("mail.small.example", 993)
    assert (detection.smtp.host, detection.smtp.port) == ("mail.small.example", 465)
    assert ("imap.small.example", 143) in [(b.host, b.port) for b in detection.imap_backups]
    assert detection.needs_confirmation is False
    assert [a.source for a in detection.attempts][:2] == ["catalog", "mx"]


async def test_concurrent_detections_keep_their_own_attempts(
    dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    dns_server.set_records({("one.example", "MX"): ["10 mx1.qq.com."]})
    detector = _detector(dns_server, http_server)
    first, second = await asyncio.gather(detector.detect("a@one.example"), detector.detect("b@two.example"))
    assert first.provider == "qq" and first.source == "mx"
    assert second.source == "guess"
    assert all("one.example" not in a.outcome for a in second.attempts)


# ---------------------------------------------------------------------------------------------- safety, budget


async def test_autoconfig_is_not_fetched_from_private_addresses(dns_server: LoopbackDNS) -> None:
    dns_server.set_records(
        {
            ("autoconfig.intranet.example", "A"): ["10.0.0.5"],
            ("intranet.example", "A"): ["127.0.0.1"],
            ("intranet.example", "AAAA"): ["fd00::1"],
        }
    )
    detector = Detector(resolver=dns_server.resolver())  # real https://, guarded by the public-address check
    detection = await detector.detect("a@intranet.example")
    outcomes = [a.outcome for a in detection.attempts if a.source == "autoconfig"]
    assert outcomes == [  # the addresses themselves are not shown (security review: internal network map)
        "autoconfig.intranet.example: refused, resolves to a non-public address",
        "intranet.example: refused, resolves to a non-public address",
    ]
    assert not any(ip in o for o in outcomes for ip in ("10.0.0.5", "127.0.0.1", "fd00::1"))
    assert detection.source == "guess"


async def test_unresolvable_autoconfig_host_is_skipped(dns_server: LoopbackDNS) -> None:
    detection = await Detector(resolver=dns_server.resolver()).detect("a@nowhere.example")
    outcomes = [a.outcome for a in detection.attempts if a.source == "autoconfig"]
    assert outcomes == ["autoconfig.nowhere.example: does not resolve", "nowhere.example: does not resolve"]


async def test_budget_turns_a_silent_dns_server_into_a_guess() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = silent.getsockname()[1]
        resolver.lifetime = 30
        detection = await Detector(resolver=resolver, budget=0.3).detect("a@slow.example")
    assert detection.source == "guess"
    assert detection.attempts[-1].outcome == "network lookups gave up after 0.3 s"
