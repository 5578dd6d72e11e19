"""Run every benchmark under bench/ and collect its figures.

Each ``bench/bench_*.py`` is run as its own process (``--quick`` passed through) with the real servers started
once for all of them (``LAIFAXIN_INFRA_FILE`` points at them). A benchmark prints each figure as one line
``figure: NAME = VALUE UNIT`` (ratios measured in the same run as ``figure: NAME = VALUE x``); this runner
echoes everything and writes the figures to ``bench/results/<UTC timestamp>.txt`` so runs can be compared.

Usage: ``python bench/run.py [--quick] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.support.infra import servers, state_file  # noqa: E402  (needs the repository root on sys.path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (whole run under ten minutes)")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names (bench_NAME.py) to run")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only or s.stem in args.only]
    figures: list[str] = []
    failed: list[str] = []
    with servers():
        env = dict(os.environ, LAIFAXIN_INFRA_FILE=str(state_file()), PYTHONPATH=str(ROOT))
        for script in scripts:
            cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
            print(f"== {script.name} {'(quick)' if args.quick else ''}", flush=True)
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.startswith("figure:"):
                    figures.append(f"{script.stem}: {line.strip()}")
            if proc.wait() != 0:
                failed.append(script.name)
            print(
                f"== {script.name} done in {time.monotonic() - t0:.1f} s (exit {proc.returncode})", flush=True
            )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"{stamp}{'-quick' if args.quick else ''}.txt").write_text("\n".join(figures) + "\n")
    print(f"\n{len(figures)} figures from {len(scripts)} benchmarks; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
