"""Contract tests: schemathesis (property-based testing from an OpenAPI document) against each HTTP API of the
platform, served by real uvicorn on loopback with the real Kafka and FerretDB behind it, exactly as an integrating
team would try it: the committed document (``docs/openapi/<service>.json``), every check, all four phases
(examples, coverage, fuzzing, stateful).

Size: ``CONTRACT_MAX_EXAMPLES`` (default 8 per operation; ``make contracts`` runs 60) and
``CONTRACT_STATEFUL_STEPS`` bound the run so each API fits CI.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from tests.integration.notify.conftest import push, wechat  # noqa: F401  # notify's loopback services

ROOT = Path(__file__).resolve().parents[3]
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "8"))
REPORTS = Path(os.environ.get("CONTRACT_REPORT_DIR", "")) if os.environ.get("CONTRACT_REPORT_DIR") else None


async def run_schemathesis(
    service: str,
    base_url: str,
    token: str,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 600.0,
) -> tuple[int, str, float]:
    """Run ``st run docs/openapi/<service>.json --url base_url`` with every check and phase in a subprocess
    (the server keeps answering in this event loop meanwhile); ``env`` adds to its environment (values the
    settings file reads). Returns (exit code, output, seconds)."""
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(Path(__file__).with_name(f"schemathesis-{service}.toml")),
        "run",
        str(ROOT / "docs" / "openapi" / f"{service}.json"),
        "--url",
        base_url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--seed",
        os.environ.get("CONTRACT_SEED", "1"),
        "--generation-database",
        "none",
        "--no-color",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-response-time",
        "60",
        *extra,
    ]
    env = {**os.environ, "CONTRACT_MAILBOX_ID": "none", "NO_COLOR": "1", **(env or {})}
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=ROOT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"schemathesis on {service} ran over {timeout} s")
    elapsed = time.monotonic() - start
    text = out.decode(errors="replace")
    print(text)  # the report belongs in the test's output
    if REPORTS is not None:
        REPORTS.mkdir(parents=True, exist_ok=True)
        (REPORTS / f"{service}.txt").write_text(text)
    print(f"figure: contracts_{service}_seconds = {elapsed:.1f} s")
    return proc.returncode or 0, text, elapsed
