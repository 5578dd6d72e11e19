"""A loopback DNS server for tests: answers A/AAAA/MX/SRV/TXT from a dict, over UDP and TCP on 127.0.0.1.

This machine has no internet DNS, and detection must be tested against a real resolver talking the real wire
protocol, so the server uses dnspython's message handling (``dns.message.from_wire``/``make_response``,
``dns.rrset.from_text``) on a random port. Usage::

    with LoopbackDNS({("acme.example", "MX"): ["10 mx.qiye.163.com."]}) as dns_server:
        resolver = dns_server.resolver()          # dns.asyncresolver.Resolver aimed at the server
        ...
        assert dns_server.queries == [("acme.example", "MX")]

Names are case-insensitive and given without the trailing dot. A name that has records of another type gets
NOERROR with an empty answer (dnspython raises ``NoAnswer``); an unknown name gets NXDOMAIN.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType

import dns.asyncresolver
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Records = Mapping[tuple[str, str], Sequence[str]]
"""``{(name, rdtype): [rdata text, ...]}``, e.g. ``{("_imaps._tcp.x.example", "SRV"): ["0 1 993 imap.x.example."]}``."""


class LoopbackDNS:
    """Authoritative answers for the given records; start with ``with`` or :meth:`start`/:meth:`stop`."""

    def __init__(self, records: Records, ttl: int = 60) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], list[str]] = {}
        self._names: set[str] = set()
        self.set_records(records)
        self._ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self._udp: socketserver.ThreadingUDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []
        self.host = "127.0.0.1"
        self.port = 0

    def set_records(self, records: Records) -> None:
        """Replace the zone data (the server may be running)."""
        normalised = {
            (name.lower().rstrip("."), rdtype.upper()): list(data) for (name, rdtype), data in records.items()
        }
        with self._lock:
            self._records = normalised
            self._names = {name for name, _ in normalised}

    # -- answering

    def answer(self, wire: bytes) -> bytes:
        """The response to one query message in wire format."""
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            with self._lock:
                self.queries.append((name, rdtype))
                data = self._records.get((name, rdtype))
                known = name in self._names
            if data:
                rrset = dns.rrset.from_text_list(question.name, self._ttl, dns.rdataclass.IN, rdtype, data)
                response.answer.append(rrset)
            elif not known:
                response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    # -- lifecycle

    def start(self) -> LoopbackDNS:
        """Bind UDP and TCP on the same random loopback port and serve in daemon threads."""
        outer = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(outer.answer(data), self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                header = conn.recv(2)
                if len(header) < 2:
                    return
                length = int.from_bytes(header, "big")
                wire = b""
                while len(wire) < length:
                    chunk = conn.recv(length - len(wire))
                    if not chunk:
                        return
                    wire += chunk
                reply = outer.answer(wire)
                conn.sendall(len(reply).to_bytes(2, "big") + reply)

        self._udp = socketserver.ThreadingUDPServer((self.host, 0), UDPHandler)
        self.port = self._udp.server_address[1]
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._tcp = socketserver.ThreadingTCPServer((self.host, self.port), TCPHandler)
        for server in (self._udp, self._tcp):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close the sockets."""
        for server in (self._udp, self._tcp):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()

    def resolver(self, lifetime: float = 2.0) -> dns.asyncresolver.Resolver:
        """A dnspython async resolver that asks only this server."""
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = lifetime
        resolver.timeout = lifetime
        return resolver

    def __enter__(self) -> LoopbackDNS:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
