"""A real loopback HTTP server for autoconfig tests (httpx.MockTransport is not used for pretend-remote servers)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class AutoconfigHTTP:
    """A real HTTP server on 127.0.0.1 that serves documents by (Host header, path), like name-based virtual
    hosting; anything else is a 404. ``requests`` records (host, path, query) of every request."""

    def __init__(self, documents: Mapping[tuple[str, str], tuple[int, bytes]]) -> None:
        self.documents = dict(documents)
        self.requests: list[tuple[str, str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                parts = urlsplit(self.path)
                outer.requests.append((host, parts.path, parts.query))
                status, body = outer.documents.get((host, parts.path), (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # stdlib signature
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
