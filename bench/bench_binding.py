"""Mailbox verification against the local Dovecot and SMTP servers, and its overhead over bare clients.

Figures (issue 3 "Numbers", all measured in this run):

- ``verify_p50`` / ``verify_p99``: one :meth:`Verifier.verify` of a good mailbox (IMAP over TLS: connect,
  LOGIN, ID, SELECT INBOX, LOGOUT; SMTP over TLS: connect, EHLO, AUTH, QUIT; both concurrently, plus the
  host check), milliseconds;
- ``bare_p50`` / ``bare_p99``: a bare aioimaplib connect + LOGIN + LOGOUT and a bare aiosmtplib connect +
  AUTH + QUIT, run concurrently the same way, milliseconds;
- ``verify_overhead_p50`` / ``verify_overhead_p99``: verify / bare (target under 1.5x); the two are
  measured alternately so drift hits both;
- ``concurrent_verifications_ok``: of ``--concurrent`` (100) verifications started at once, how many
  succeeded; ``concurrent_wall``: their wall time, seconds; ``max_connections_per_server``: the most
  simultaneous connections the verifier held to the server host (bounded by ``max_connections_per_host``).

Each figure is printed as ``figure: NAME = VALUE UNIT``. Run: ``uv run python bench/bench_binding.py``
(``--quick`` for small sizes). Needs the local servers (``uv run python deploy/local/infra.py up``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import ipaddress
import secrets
import sys
import time
import uuid
from pathlib import Path

import aiosmtplib
from common import figure, infra, percentile

from laifaxin_binding.verify import Endpoint, HostGuard, Verifier, VerifyRequest
from laifaxin_shared.imap import client_tls_context, connect_imap
from laifaxin_shared.logging import configure_logging
from laifaxin_shared.providers.models import Security


def add_user(ep: dict[str, object]) -> tuple[str, str]:
    spec = importlib.util.spec_from_file_location(
        "infra_mod", Path(__file__).parents[1] / "deploy/local/infra.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["infra_mod"] = mod
    spec.loader.exec_module(mod)
    email, password = f"benchb{uuid.uuid4().hex[:6]}@{ep['mail_domain']}", secrets.token_urlsafe(12)
    mod.add_user(email, password, Path(str(ep["passwd_file"])))
    return email, password


async def bare(ep: dict[str, object], email: str, password: str, ctx: object) -> None:
    """The baseline: aioimaplib LOGIN and aiosmtplib AUTH, concurrently, nothing else."""
    host = str(ep["imap_host"])

    async def imap() -> None:
        client = await connect_imap(host, int(str(ep["imaps_port"])), "ssl", ssl_context=ctx, timeout=30)  # type: ignore[arg-type]
        response = await client.login(email, password)
        if response.result != "OK":
            raise RuntimeError("bare IMAP login failed")
        await client.logout()

    async def smtp() -> None:
        client = aiosmtplib.SMTP(
            hostname=host,
            port=int(str(ep["smtps_port"])),
            use_tls=True,
            tls_context=ctx,
            timeout=30,  # type: ignore[arg-type]
        )
        await client.connect()
        await client.login(email, password)
        await client.quit()

    await asyncio.gather(imap(), smtp())


async def run(args: argparse.Namespace) -> None:
    ep = infra()
    email, password = add_user(ep)
    await asyncio.sleep(1.2)  # Dovecot re-reads the passwd-file at most once a second
    ctx = client_tls_context(str(ep["ca_file"]))
    host = str(ep["imap_host"])
    request = VerifyRequest.build(
        email,
        password,
        provider=None,
        imap=Endpoint(host, int(ep["imaps_port"]), Security.SSL),
        smtp=Endpoint(host, int(ep["smtps_port"]), Security.SSL),
    )
    verifier = Verifier(
        ssl_context=ctx,
        guard=HostGuard([ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]),
        timeout=60,
        max_connections_per_host=args.max_per_host,
    )
    # Warm up both paths (TLS session setup, Dovecot auth worker start).
    for _ in range(3):
        assert (await verifier.verify(request)).ok
        await bare(ep, email, password, ctx)

    ours: list[float] = []
    base: list[float] = []
    for _ in range(args.n):
        t0 = time.perf_counter()
        outcome = await verifier.verify(request)
        ours.append((time.perf_counter() - t0) * 1000)
        if not outcome.ok:
            raise RuntimeError(f"verification failed: {[e.code.value for e in outcome.errors()]}")
        t0 = time.perf_counter()
        await bare(ep, email, password, ctx)
        base.append((time.perf_counter() - t0) * 1000)
    figure("verify_p50", percentile(ours, 50), "ms")
    figure("verify_p99", percentile(ours, 99), "ms")
    figure("bare_p50", percentile(base, 50), "ms")
    figure("bare_p99", percentile(base, 99), "ms")
    figure("verify_overhead_p50", percentile(ours, 50) / percentile(base, 50), "x")
    figure("verify_overhead_p99", percentile(ours, 99) / percentile(base, 99), "x")

    fresh = Verifier(
        ssl_context=ctx,
        guard=HostGuard([ipaddress.ip_network("127.0.0.0/8")]),
        timeout=120,
        max_connections_per_host=args.max_per_host,
    )
    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(fresh.verify(request) for _ in range(args.concurrent)))
    wall = time.perf_counter() - t0
    ok = sum(1 for o in outcomes if o.ok)
    if ok != len(outcomes):
        first = next(o for o in outcomes if not o.ok)
        print(f"first failure: {[e.code.value for e in first.errors()]}", flush=True)
    figure("concurrent_verifications", args.concurrent, "verifications")
    figure("concurrent_verifications_ok", ok, "verifications")
    figure("concurrent_wall", wall, "s")
    figure("max_connections_per_server", max(fresh.peak_connections.values()), "connections")
    figure("max_connections_per_server_limit", args.max_per_host, "connections")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="40 timed verifications instead of 300")
    parser.add_argument("-n", type=int, default=None, help="timed verifications (and bare pairs)")
    parser.add_argument("--concurrent", type=int, default=100, help="verifications started at once")
    parser.add_argument(
        "--max-per-host", type=int, default=8, help="the verifier's per-host connection bound"
    )
    args = parser.parse_args()
    if args.n is None:
        args.n = 40 if args.quick else 300
    configure_logging("bench-binding", "WARNING")  # one info line per verification would swamp the figures
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
