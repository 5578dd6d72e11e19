"""The one rule for which hosts a service may connect to on a user's behalf (SSRF protection): binding's and
sync's mail servers, notify's generic webhooks. Nothing but public unicast addresses, so that a user cannot make
the platform reach its own network, the cloud's metadata service or anything else behind the firewall.

A host is refused when any address it resolves to is not public (:func:`is_public`), unless an operator allowlist
names the host or holds a network that contains the address (or the IPv4 address it embeds).

Not public: every range of the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its updates)
that is not globally reachable — private (RFC 1918, RFC 4193), loopback, link-local, shared (RFC 6598),
documentation, benchmarking, reserved, multicast, unspecified, IETF protocol assignments incl. Teredo, the
discard prefix, NAT64 local-use ``64:ff9b:1::/48`` (RFC 8215), SRv6 SIDs ``5f00::/16`` (RFC 9602), the
documentation prefix ``3fff::/20`` (RFC 9637) —, the deprecated site-local ``fec0::/10`` and 6to4 relay anycast
``192.88.99.0/24``, IPv6 outside global unicast ``2000::/3``, and the cloud metadata endpoints (169.254.169.254,
fd00:ec2::254, Alibaba 100.100.100.200, Azure's 168.63.129.16). The table is written out here rather than taken
from :attr:`ipaddress.IPv4Address.is_global`, whose answer depends on the Python patch release (3.11.7 calls
``2002::/16``, ``64:ff9b::/96`` and ``fec0::/10`` global).

IPv6 forms that carry an IPv4 address are judged as that IPv4 address: IPv4-mapped ``::ffff:0:0/96``,
IPv4-compatible ``::/96`` (RFC 4291 2.5.5.1, deprecated), IPv4-translated ``::ffff:0:0:0/96`` (RFC 2765), NAT64
``64:ff9b::/96`` (RFC 6052; the gateway would connect to the embedded address) and 6to4 ``2002::/16`` (RFC 3056;
the address in bits 16-47).

Limitation: the connection resolves the name again, so a DNS answer that changes between the check and the
connect (rebinding) is not caught here; network policy is the second line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

NON_PUBLIC_V4: tuple[ipaddress.IPv4Network, ...] = tuple(
    _V4(n)
    for n in (
        "0.0.0.0/8",  # "this network" (RFC 791), unspecified
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared address space / CGN (RFC 6598); Alibaba metadata 100.100.100.200
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (RFC 3927); metadata 169.254.169.254 (AWS, GCP, Azure IMDS, ...)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890); Oracle metadata 192.0.0.192
        "192.0.2.0/24",  # documentation TEST-NET-1 (RFC 5737)
        "192.88.99.0/24",  # 6to4 relay anycast (RFC 7526, deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation TEST-NET-2
        "203.0.113.0/24",  # documentation TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. limited broadcast 255.255.255.255
        "168.63.129.16/32",  # Azure WireServer / platform DNS (public address, reachable only from Azure VMs)
    )
)
"""IPv4 networks never connected to on a user's behalf."""

NON_PUBLIC_V6: tuple[ipaddress.IPv6Network, ...] = tuple(
    _V6(n)
    for n in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # NAT64 local-use (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "2001::/23",  # IETF protocol assignments (RFC 2928), incl. Teredo 2001::/32 (RFC 4380)
        "2001:db8::/32",  # documentation (RFC 3849)
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
        "fc00::/7",  # unique local (RFC 4193); AWS metadata fd00:ec2::254
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (RFC 3879, deprecated)
        "ff00::/8",  # multicast
    )
)
"""IPv6 networks never connected to on a user's behalf (besides everything outside ``2000::/3``)."""

GLOBAL_UNICAST_V6 = _V6("2000::/3")
NAT64_WELL_KNOWN = _V6("64:ff9b::/96")
SIX_TO_FOUR = _V6("2002::/16")
IPV4_COMPATIBLE = _V6("::/96")
IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, translated, NAT64 well-known prefix, 6to4),
    or None. ``::`` and ``::1`` carry none."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    value = int(address)
    if address in NAT64_WELL_KNOWN or address in IPV4_TRANSLATED:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in IPV4_COMPATIBLE and value > 1:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """Whether the platform may connect to ``address`` on a user's behalf: a public unicast address (see the
    module docstring for the ranges refused and the IPv6 forms judged by the IPv4 address they carry)."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return is_public(embedded)
    if isinstance(address, ipaddress.IPv4Address):
        networks: tuple[Network, ...] = NON_PUBLIC_V4
    else:
        if address not in GLOBAL_UNICAST_V6:
            return False
        networks = NON_PUBLIC_V6
    if any(address in net for net in networks):
        return False
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class HostAllowlist:
    """Networks and host names an operator allows although they are not public."""

    networks: tuple[Network, ...] = ()
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, spec: str) -> HostAllowlist:
        """``spec``: comma-separated CIDRs or host names (e.g. ``127.0.0.0/8,mail.intranet.example``); an
        entry that is not a network is a host name (compared lower-case, without a trailing dot)."""
        networks: list[Network] = []
        names: set[str] = set()
        for entry in filter(None, (e.strip() for e in spec.split(","))):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(names))

    def allows_name(self, host: str) -> bool:
        """Whether the host name itself is allowlisted."""
        return host.lower().strip("[]").rstrip(".") in self.names

    def allows_address(self, address: Address) -> bool:
        """Whether a resolved address may be connected to: public (:func:`is_public`), or inside an allowlisted
        network (the address itself, or the IPv4 address it embeds)."""
        embedded = embedded_ipv4(address)
        candidates = (address,) if embedded is None else (address, embedded)
        if any(a in net for a in candidates for net in self.networks):
            return True
        return is_public(address)

    async def refused_address(self, host: str, *, timeout: float = 5.0) -> Address | None:
        """Resolve ``host`` (or parse it as an address) and return the first address it may not connect to,
        or None when every address is allowed (or the name is allowlisted).

        Raises:
            OSError: the name does not resolve (``socket.gaierror``); TimeoutError: no answer in ``timeout`` s.
        """
        name = host.lower().strip("[]").rstrip(".")
        if name in self.names:
            return None
        try:
            addresses: list[Address] = [ipaddress.ip_address(name)]
        except ValueError:
            async with asyncio.timeout(timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        return next((a for a in addresses if not self.allows_address(a)), None)
