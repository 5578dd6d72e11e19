"""Loopback servers on free 127.0.0.1 ports: an aiohttp application (what every loopback provider server
shares), a raw TCP/TLS protocol server, and an ASGI app served by uvicorn in a thread (for clients that need a
real port, such as the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from aiohttp import web


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run ``app`` on 127.0.0.1 at a free port (no access log).

    Returns the runner (``await runner.cleanup()`` stops it) and the base URL ``http://127.0.0.1:<port>``.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


class TcpServer:
    """A protocol server on 127.0.0.1 at a free port, as an async context manager (``port`` once entered).
    Subclasses write ``_session`` (one connection) and set ``tls`` for implicit TLS."""

    tls: ssl.SSLContext | None = None
    port: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> Any:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


@contextlib.contextmanager
def served_in_thread(app: Any, timeout: float = 30.0) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn (lifespan on) in a thread at a free port; yields its base URL and
    stops it afterwards.

    Raises:
        AssertionError: uvicorn did not start within ``timeout`` seconds.
    """
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
