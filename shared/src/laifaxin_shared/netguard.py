"""The one rule for which hosts a service may connect to on a user's behalf (SSRF protection, ARCHITECTURE.md
"Credentials and tenancy"): binding's and sync's mail servers, notify's generic webhooks.

A host is refused when any address it resolves to is private (RFC 1918, RFC 4193), loopback, link-local (incl.
the 169.254.169.254 / fd00:ec2::254 metadata endpoints), shared (RFC 6598), reserved, multicast or unspecified,
unless an operator allowlist names the host or holds a network that contains the address. IPv4-mapped IPv6
addresses are judged as the IPv4 address they carry.

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
        """Whether a resolved address may be connected to: public, or inside an allowlisted network."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.networks):
            return True
        return address.is_global and not address.is_multicast

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
