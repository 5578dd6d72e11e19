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


@pytest.fixture
def dns_server() -> Iterator[LoopbackDNS]:
    """An empty loopback DNS server; tests add records with ``set_records``."""
    server = LoopbackDNS({}).start()
    try:
        yield server
    finally:
        server.stop()
