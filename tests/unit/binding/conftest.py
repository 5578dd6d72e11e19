"""Loopback servers for detection tests: DNS (tests/support/dns_server.py) and an autoconfig HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dns_server import LoopbackDNS
from tests.unit.binding.autoconfig_http import AutoconfigHTTP


@pytest.fixture
def http_server() -> Iterator[AutoconfigHTTP]:
    """An empty autoconfig server; tests fill ``documents``."""
    server = AutoconfigHTTP({})
    try:
        yield server
    finally:
        server.close()


def _start_dns(attempts: int = 5) -> LoopbackDNS:
    """LoopbackDNS binds TCP to the port the OS gave its UDP socket; on a busy machine a TCP socket may
    already hold that port number, so try again on a fresh one."""
    for attempt in range(attempts):
        server = LoopbackDNS({})
        try:
            return server.start()
        except OSError:
            udp = getattr(server, "_udp", None)
            if udp is not None:
                udp.server_close()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def dns_server() -> Iterator[LoopbackDNS]:
    """An empty loopback DNS server; tests add records with ``set_records``."""
    server = _start_dns()
    try:
        yield server
    finally:
        server.stop()
