"""Start an aiohttp application on a free loopback port: what every loopback provider server shares."""

from __future__ import annotations

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
