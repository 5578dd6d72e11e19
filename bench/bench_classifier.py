"""Classifier throughput, model load time and memory, single process.

Typical replies: the held-out rows of services/classifier/data/replies.jsonl rendered as RFC 5322 messages
(headers, subject, a text/plain body with quoted history), cycled to the requested count. Figures:

- ``model_load``: seconds to load the artifact (after imports), best of 3;
- ``parse_rate``: ClassifierInput.from_bytes per second (stdlib email, policy.default);
- ``classify_rate``: Classifier.classify per second on already-parsed inputs (the classifier's own cost);
- ``end_to_end_rate``: parse + classify per second (what the CLI does per message);
- each ``*_cpu_rate``: the same per CPU second of this single-threaded process, i.e. per core;
- ``classify_to_parse_time_ratio``: time to classify / time to parse the same messages;
- ``rss_peak``: peak resident set size of this process, MB.

Each figure is printed as ``figure: NAME = VALUE UNIT``. Run: ``uv run python bench/bench_classifier.py``
(``--quick`` for a small run).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from typing import TypeVar

from common import figure, max_rss_mb  # bench/common.py (the script's folder is on sys.path)

from laifaxin_classifier.classify import Classifier
from laifaxin_classifier.datagen import read_jsonl
from laifaxin_classifier.message import ClassifierInput
from laifaxin_classifier.model import DEFAULT_ARTIFACT, load_model

T = TypeVar("T")


def render(subject: str, from_addr: str, headers: dict[str, str], text: str) -> bytes:
    """One row as RFC 5322 bytes (CRLF), with the headers a reply carries."""
    msg = EmailMessage()
    msg["From"] = from_addr or "buyer@example.com"
    msg["To"] = "sales@laifaxin.example"
    msg["Subject"] = subject
    msg["Date"] = "Sat, 21 Nov 2026 08:29:30 +0000"
    msg["Message-ID"] = "<bench@example.com>"
    msg["In-Reply-To"] = "<outreach@laifaxin.example>"
    for name, value in headers.items():
        msg[name] = value
    msg.set_content(text)
    return msg.as_bytes(policy=SMTP)


def best_rate(fn: Callable[[T], object], items: list[T], repeats: int) -> tuple[float, float, float]:
    """(items per wall second, wall seconds, items per CPU second) of the fastest of ``repeats`` passes.

    CPU seconds are this process's (``time.process_time``): on a shared machine they give the per-core rate
    even when other work steals the wall clock."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return len(items) / best, best, len(items) / max(best_cpu, 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="300 messages, one pass")
    parser.add_argument("-n", type=int, default=3000, help="messages per pass")
    args = parser.parse_args()
    n, repeats = (300, 1) if args.quick else (args.n, 3)

    loads = []
    for _ in range(1 if args.quick else 3):
        t0 = time.perf_counter()
        load_model(DEFAULT_ARTIFACT)
        loads.append(time.perf_counter() - t0)
    classifier = Classifier()

    rows = [
        r
        for r in read_jsonl()
        if r.split == "test" and r.label in ("to_reply", "ooo", "inquiry", "rejection")
    ]
    raws = [render(r.subject, r.from_addr, r.headers, r.text) for r in rows]
    raws = (raws * (n // len(raws) + 1))[:n]
    inputs = [ClassifierInput.from_bytes(raw) for raw in raws]
    for msg in inputs[:50]:  # warm caches (regex compilation, sklearn dispatch)
        classifier.classify(msg)

    parse_rate, parse_s, parse_cpu = best_rate(ClassifierInput.from_bytes, raws, repeats)
    classify_rate, classify_s, classify_cpu = best_rate(classifier.classify, inputs, repeats)
    e2e_rate, _, e2e_cpu = best_rate(
        lambda raw: classifier.classify(ClassifierInput.from_bytes(raw)), raws, repeats
    )

    print(
        f"# {n} messages per pass, best of {repeats}; mean message {sum(map(len, raws)) // len(raws)} bytes"
    )
    figure("model_load", min(loads), "s")
    figure("parse_rate", parse_rate, "msg/s")
    figure("parse_cpu_rate", parse_cpu, "msg/cpu-s")
    figure("classify_rate", classify_rate, "msg/s")
    figure("classify_cpu_rate", classify_cpu, "msg/cpu-s")
    figure("end_to_end_rate", e2e_rate, "msg/s")
    figure("end_to_end_cpu_rate", e2e_cpu, "msg/cpu-s")
    figure("classify_to_parse_time_ratio", classify_s / parse_s, "x")
    figure("rss_peak", max_rss_mb(), "MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
