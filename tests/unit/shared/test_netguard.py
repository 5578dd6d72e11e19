"""The one SSRF rule binding, sync and notify share (laifaxin_shared.netguard)."""

from __future__ import annotations

import ipaddress

import pytest

from laifaxin_shared.netguard import HostAllowlist, embedded_ipv4, is_public


def test_parse_splits_networks_from_host_names() -> None:
    allow = HostAllowlist.parse(" 127.0.0.0/8, Mail.Intranet.Example. ,::1 ,")
    assert allow.networks == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert allow.names == frozenset({"mail.intranet.example"})
    assert allow.allows_name("MAIL.intranet.example.")


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "127.0.0.1",
        "169.254.169.254",
        "100.100.100.200",
        "224.0.0.1",
        "0.0.0.0",  # noqa: S104  (an address under test, not a bind)
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::1",
    ],
)
def test_non_public_addresses_are_refused_unless_allowlisted(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not HostAllowlist().allows_address(ip)
    assert HostAllowlist.parse("0.0.0.0/0,::/0").allows_address(ip)


async def test_refused_address_names_the_first_bad_address_and_skips_allowlisted_names() -> None:
    assert await HostAllowlist().refused_address("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert await HostAllowlist().refused_address("[::1]") == ipaddress.ip_address("::1")
    assert await HostAllowlist().refused_address("8.8.8.8") is None
    assert await HostAllowlist.parse("localhost").refused_address("localhost") is None
    assert await HostAllowlist.parse("127.0.0.0/8").refused_address("127.0.0.5") is None


@pytest.mark.parametrize(
    "address",
    [
        # NAT64 well-known prefix (RFC 6052): the gateway connects to the embedded IPv4 address
        "64:ff9b::7f00:1",  # -> 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # -> 169.254.169.254 (metadata)
        "64:ff9b::a00:1",  # -> 10.0.0.1
        "64:ff9b:1::808:808",  # NAT64 local-use prefix (RFC 8215), whatever it embeds
        # 6to4 (RFC 3056): the IPv4 address in bits 16-47
        "2002:7f00:1::1",  # -> 127.0.0.1
        "2002:a9fe:a9fe::",  # -> 169.254.169.254
        "2002:c0a8:101::1",  # -> 192.168.1.1
        # IPv4-mapped, IPv4-compatible (deprecated), IPv4-translated (SIIT)
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::10.0.0.1",
        "::ffff:0:127.0.0.1",
        "::ffff:0:a9fe:a9fe",
        # cloud metadata endpoints
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "169.254.169.254",
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
        "192.0.0.192",  # Oracle Cloud
        # ranges some Python releases call global
        "fec0::1",  # site-local (deprecated)
        "5f00::1",  # SRv6 SIDs (RFC 9602)
        "3fff::1",  # documentation (RFC 9637)
        "2001::1",  # Teredo
        "2001:db8::1",  # documentation
        "100::1",  # discard-only
        "192.88.99.1",  # 6to4 relay anycast
        "198.18.0.1",  # benchmarking
        "192.0.2.1",  # documentation
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "4000::1",  # outside global unicast 2000::/3
        "ff0e::1",  # global-scope multicast
        "224.0.0.251",
    ],
)
def test_embedded_and_special_ranges_are_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    assert not HostAllowlist().allows_address(ip)


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("64:ff9b::808:808", "8.8.8.8"),
        ("2002:808:808::1", "8.8.8.8"),
        ("::ffff:8.8.8.8", "8.8.8.8"),
        ("::8.8.8.8", "8.8.8.8"),
        ("::ffff:0:8.8.8.8", "8.8.8.8"),
    ],
)
def test_embedded_public_ipv4_is_judged_as_that_address(address: str, embedded: str) -> None:
    ip = ipaddress.ip_address(address)
    assert embedded_ipv4(ip) == ipaddress.ip_address(embedded)
    assert is_public(ip)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]
)
def test_public_unicast_is_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))
    assert embedded_ipv4(ipaddress.ip_address(address)) is None


def test_allowlist_covers_the_embedded_address() -> None:
    allow = HostAllowlist.parse("127.0.0.0/8")
    assert allow.allows_address(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert allow.allows_address(ipaddress.ip_address("64:ff9b::7f00:1"))
    assert not allow.allows_address(ipaddress.ip_address("64:ff9b::a00:1"))


async def test_refused_address_sees_through_nat64_literals() -> None:
    assert await HostAllowlist().refused_address("[64:ff9b::a9fe:a9fe]") == ipaddress.ip_address(
        "64:ff9b::a9fe:a9fe"
    )
