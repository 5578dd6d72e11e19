"""The one SSRF rule binding, sync and notify share (laifaxin_shared.netguard)."""

from __future__ import annotations

import ipaddress

import pytest

from laifaxin_shared.netguard import HostAllowlist


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
