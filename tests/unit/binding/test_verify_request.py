"""Pure parts of verification: request building from the catalog, password normalisation, the host guard's
address rules, greeting recognition. No network."""

from __future__ import annotations

import ipaddress

import pytest

from laifaxin_binding.verify import Endpoint, HostGuard, VerifyRequest, normalise_password
from laifaxin_shared.imap import greeting_protocol
from laifaxin_shared.providers.catalog import get_provider
from laifaxin_shared.providers.errors import ErrorCode, MailServerError
from laifaxin_shared.providers.models import Security

SSL = Security.SSL


def test_catalog_servers_with_backups_are_used_by_default() -> None:
    request = VerifyRequest.build("boss@acme.example", "code", provider=get_provider("netease_qiye"))
    assert [str(e) for e in request.imap] == ["hwhzimap.qiye.163.com:993/ssl", "imap.qiye.163.com:993/ssl"]
    assert [e.host for e in request.smtp] == ["hwhzsmtp.qiye.163.com", "smtp.qiye.163.com"]
    assert request.imap_usernames == ("boss@acme.example",)  # full address only: no fallback for NetEase
    assert request.provider_id == "netease_qiye"


def test_user_servers_override_the_catalog_and_drop_its_backups() -> None:
    mine = Endpoint("mail.acme.example", 993, SSL)
    request = VerifyRequest.build(
        "boss@acme.example", "code", provider=get_provider("netease_qiye"), imap=mine
    )
    assert request.imap == (mine,)
    assert len(request.smtp) == 2


def test_naming_the_catalog_primary_keeps_the_backups() -> None:
    primary = Endpoint("hwhzimap.qiye.163.com", 993, SSL)
    request = VerifyRequest.build(
        "boss@acme.example", "c", provider=get_provider("netease_qiye"), imap=primary
    )
    assert len(request.imap) == 2


def test_qq_imap_tries_the_local_part_after_the_full_address() -> None:
    request = VerifyRequest.build("12345@QQ.com", "abcd efgh ijkl mnop", provider=get_provider("qq"))
    assert request.email == "12345@qq.com"
    assert request.imap_usernames == ("12345@qq.com", "12345")
    assert request.smtp_usernames == ("12345@qq.com",)
    assert request.password == "abcdefghijklmnop"


def test_netease_requires_imap_id() -> None:
    assert VerifyRequest.build("a@163.com", "x", provider=get_provider("netease")).imap_id_required
    assert not VerifyRequest.build("a@qq.com", "x", provider=get_provider("qq")).imap_id_required


def test_custom_domain_without_servers_guesses_imap_and_smtp_hosts() -> None:
    request = VerifyRequest.build("a@example.org", "x", provider=None)
    assert request.imap == (Endpoint("imap.example.org", 993, SSL),)
    assert request.smtp == (Endpoint("smtp.example.org", 465, SSL),)


@pytest.mark.parametrize("protocol", ["pop3", "POP", "pop3s"])
def test_pop3_is_refused(protocol: str) -> None:
    with pytest.raises(MailServerError) as info:
        VerifyRequest.build("a@163.com", "x", provider=None, incoming_protocol=protocol)
    assert info.value.code is ErrorCode.POP3_UNSUPPORTED


def test_other_incoming_protocols_are_invalid() -> None:
    with pytest.raises(ValueError, match="imap"):
        VerifyRequest.build("a@163.com", "x", provider=None, incoming_protocol="exchange")


def test_password_normalisation() -> None:
    gmail = get_provider("gmail")
    assert normalise_password(" abcd efgh\tijkl mnop \n", gmail) == "abcdefghijklmnop"
    assert normalise_password("  my login pass  ", get_provider("aliyun")) == "my login pass"
    assert normalise_password("  inner space  ", None) == "inner space"


def test_password_is_not_in_the_request_repr() -> None:
    request = VerifyRequest.build("a@163.com", "s3cret-code", provider=get_provider("netease"))
    assert "s3cret" not in repr(request)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.100.100.200",  # Alibaba Cloud metadata (RFC 6598 shared space)
        "0.0.0.0",  # noqa: S104  # an address under test, not a bind
        "::1",
        "fe80::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not HostGuard().allowed_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["220.181.12.12", "142.250.4.108", "2a00:1450:4001:80b::200a"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert HostGuard().allowed_address(ipaddress.ip_address(address))


def test_the_allowlist_admits_named_networks_only() -> None:
    guard = HostGuard([ipaddress.ip_network("127.0.0.0/8")])
    assert guard.allowed_address(ipaddress.ip_address("127.0.0.1"))
    assert not guard.allowed_address(ipaddress.ip_address("10.0.0.1"))


async def test_the_guard_refuses_an_ip_literal_without_dns() -> None:
    with pytest.raises(MailServerError) as info:
        await HostGuard().check("169.254.169.254", "imap")
    assert info.value.code is ErrorCode.HOST_NOT_ALLOWED
    assert info.value.error.fix.zh
    await HostGuard(names=["mail.intranet.example"]).check(
        "MAIL.intranet.example.", "imap"
    )  # allowlisted name


@pytest.mark.parametrize(
    ("line", "protocol"),
    [
        ("* OK [CAPABILITY IMAP4rev1] Dovecot ready.", "imap"),
        ("* PREAUTH welcome", "imap"),
        ("220 smtp.qq.com Esmtp QQ Mail Server", "smtp"),
        ("554 no service", "smtp"),
        ("+OK POP3 ready", "pop3"),  # RFC 1939 §4
        ("", None),
        (None, None),
    ],
)
def testgreeting_protocol(line: str | None, protocol: str | None) -> None:
    assert greeting_protocol(line) == protocol


def test_only_app_passwords_shown_in_groups_lose_their_inner_spaces() -> None:
    gmail, qq = get_provider("gmail"), get_provider("qq")
    # Gmail's 16 letters in 4 groups (spaces, tabs, no-break or ideographic spaces): the spaces go
    assert normalise_password("abcd efgh ijkl mnop", gmail) == "abcdefghijklmnop"
    assert normalise_password("abcd\u00a0efgh\u3000ijkl  mnop", gmail) == "abcdefghijklmnop"
    assert normalise_password("abcd efgh ijkl mnop", qq) == "abcdefghijklmnop"
    # anything else is sent as typed (ends trimmed): a login password, an authorization code with a space
    assert normalise_password("correct horse battery", gmail) == "correct horse battery"
    assert normalise_password("abc defg", qq) == "abc defg"
    assert normalise_password("Auth Code 2026", get_provider("netease_qiye")) == "Auth Code 2026"
    assert normalise_password("my login pass", get_provider("netease")) == "my login pass"
    assert normalise_password("abcd efgh ijkl mnop", get_provider("netease")) == "abcd efgh ijkl mnop"
    assert normalise_password("a b", None) == "a b"
