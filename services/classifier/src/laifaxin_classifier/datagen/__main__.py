"""Write the training set ``services/classifier/data/replies.jsonl`` from the phrase banks (fixed seed).

Run: ``uv run python -m laifaxin_classifier.datagen``. The output is committed; rerunning gives the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import DEFAULT_OUT, generate, write_jsonl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=20261121)
    args = parser.parse_args(argv)
    rows = generate(seed=args.seed)
    write_jsonl(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
