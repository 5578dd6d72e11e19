"""Helpers for benchmarks: figures in the one-line format, percentiles, RSS, the servers' endpoints."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any


def figure(name: str, value: float, unit: str) -> None:
    """Print one figure as ``figure: NAME = VALUE UNIT`` (use unit ``x`` for ratios)."""
    print(f"figure: {name} = {value:.4g} {unit}", flush=True)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def max_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def infra() -> dict[str, Any]:
    """The running servers' endpoints (``LAIFAXIN_INFRA_FILE``, else deploy/local/state/infra.json)."""
    path = (
        os.environ.get("LAIFAXIN_INFRA_FILE")
        or Path(__file__).resolve().parents[1] / "deploy/local/state/infra.json"
    )
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data
