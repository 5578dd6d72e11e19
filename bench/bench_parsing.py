"""Throughput and memory of the sync service's MIME parser (laifaxin_shared.mime.parse_message).

Feeds N messages (default 10,000) through parse_message: the real-mail corpus (../shared/data/real-mail and
CPython's test_email/data, read in place) cycled to N, and a generated mix (plain, HTML-only, GBK labelled
GB2312, multipart with attachments, DSN, large body). Prints one line per figure:

    figure: NAME = VALUE UNIT

Run: ``uv run python bench/bench_parsing.py [--quick] [-n N]``. ``--quick`` parses 500 messages per set.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import resource
import statistics
import sys
import sysconfig
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from laifaxin_shared.mime import QuarantineError, parse_message

ROOT = Path(__file__).resolve().parents[1]
REAL_MAIL = ROOT.parent / "shared" / "data" / "real-mail"
CPYTHON_EMAIL_DATA = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"


def figure(name: str, value: float, unit: str) -> None:
    print(f"figure: {name} = {value:.6g} {unit}", flush=True)


def load_corpus() -> list[bytes]:
    files: list[Path] = []
    if REAL_MAIL.is_dir():
        files += sorted(p for p in REAL_MAIL.rglob("*.eml") if p.is_file())
    if CPYTHON_EMAIL_DATA.is_dir():
        files += sorted(CPYTHON_EMAIL_DATA.glob("msg_*.txt"))
    return [p.read_bytes() for p in files]


def generated(count: int) -> list[bytes]:
    """A deterministic mix of message shapes, built here (no corpus needed)."""
    pdf = base64.encodebytes(b"%PDF-1.4\n" + bytes(range(256)) * 200).decode()
    gbk = "朱镕基先生，吉喆的报价请见附件。单价 USD 1.25，交期 30 天。\n".encode("gbk") * 20
    shapes: list[bytes] = []
    for i in range(count):
        head = (
            f"From: =?utf-8?B?{base64.b64encode('张伟'.encode()).decode()}?= <buyer{i}@example.cn>\n"
            f"To: sales@laifaxin.com\nSubject: Re: quotation {i}\nMessage-ID: <{i}@bench.example>\n"
            f"Date: Sat, 21 Nov 2026 08:29:30 +0800\nIn-Reply-To: <q{i}@laifaxin.com>\nMIME-Version: 1.0\n"
        )
        kind = i % 6
        if kind == 0:
            body = (
                "Content-Type: text/plain; charset=utf-8\n\n"
                + "Please send your best price for 500 pcs.\n" * 30
            )
            shapes.append((head + body).encode())
        elif kind == 1:
            html = "<html><body>" + "<p>Dear Sir,<br>please quote <b>500 pcs</b>.</p>" * 60 + "</body></html>"
            shapes.append((head + "Content-Type: text/html; charset=utf-8\n\n" + html).encode())
        elif kind == 2:
            shapes.append((head + "Content-Type: text/plain; charset=gb2312\n\n").encode() + gbk)
        elif kind == 3:
            body = (
                'Content-Type: multipart/mixed; boundary="m"\n\n--m\nContent-Type: multipart/alternative; '
                'boundary="a"\n\n--a\nContent-Type: text/plain\n\nSee attached PI.\n--a\nContent-Type: '
                "text/html\n\n<p>See attached PI.</p>\n--a--\n--m\nContent-Type: application/pdf\n"
                'Content-Disposition: attachment; filename="PI.pdf"\nContent-Transfer-Encoding: base64\n\n'
                f"{pdf}--m--\n"
            )
            shapes.append((head + body).encode())
        elif kind == 4:
            body = (
                'Content-Type: multipart/report; report-type=delivery-status; boundary="d"\n\n--d\n'
                "Content-Type: text/plain\n\nDelivery failed.\n--d\nContent-Type: message/delivery-status\n\n"
                "Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; x@example.com\nAction: failed\n"
                "Status: 5.1.1\n\n--d\nContent-Type: message/rfc822\n\nFrom: a@b\nSubject: s\n\nbody\n--d--\n"
            )
            shapes.append((head + "Auto-Submitted: auto-replied\nReturn-Path: <>\n" + body).encode())
        else:
            shapes.append((head + "Content-Type: text/plain\n\n" + "long line of text " * 20_000).encode())
    return shapes


def run(name: str, messages: list[bytes], n: int) -> None:
    batch = [messages[i % len(messages)] for i in range(n)]
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    gc.collect()
    cpu_start = time.process_time()
    start = time.perf_counter()
    for raw in batch:
        t0 = time.perf_counter()
        try:
            parse_message(raw)
            outcomes["parsed"] += 1
        except QuarantineError as exc:
            outcomes[exc.reason] += 1
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    total_bytes = sum(len(r) for r in batch)
    figure(f"{name}_messages", n, "messages")
    figure(f"{name}_throughput", n / elapsed, "messages/s")
    # CPU time is steadier than wall time on a shared machine: messages per CPU-second.
    figure(f"{name}_cpu_throughput", n / cpu, "messages/cpu-s")
    figure(f"{name}_bytes_throughput", total_bytes / elapsed / 1e6, "MB/s")
    figure(f"{name}_latency_p50", statistics.median(latencies) * 1e3, "ms")
    figure(f"{name}_latency_p99", statistics.quantiles(latencies, n=100)[98] * 1e3, "ms")
    figure(f"{name}_latency_max", max(latencies) * 1e3, "ms")
    figure(f"{name}_quarantined", n - outcomes["parsed"], "messages")

    # Peak Python heap while parsing one message (tracemalloc slows parsing, so a separate pass over the
    # largest distinct messages); the ratio is for the largest message, where fixed overhead is negligible.
    sample = sorted(set(messages), key=len)[-min(len(set(messages)), 200) :]
    tracemalloc.start()
    peak = 0
    largest_ratio = 0.0
    for raw in sample:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with contextlib.suppress(QuarantineError):
            parse_message(raw)
        used = tracemalloc.get_traced_memory()[1] - base
        peak = max(peak, used)
        largest_ratio = used / len(raw)
    tracemalloc.stop()
    figure(f"{name}_peak_heap_per_message", peak / 1e6, "MB")
    figure(f"{name}_largest_message", len(sample[-1]) / 1e6, "MB")
    figure(f"{name}_largest_message_heap_ratio", largest_ratio, "x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="500 messages per set instead of 10,000")
    parser.add_argument("-n", type=int, default=None, help="messages per set (default 10,000)")
    args = parser.parse_args(argv)
    n = args.n or (500 if args.quick else 10_000)

    parse_message(b"From: warm@up\n\nwarm-up\n")  # imports and caches outside the timed loops
    corpus = load_corpus()
    if corpus:
        figure("corpus_files", len(corpus), "files")
        run("corpus", corpus, n)
    else:
        print("real-mail corpus not found; generated messages only", file=sys.stderr)
    run("generated", generated(60), n)
    figure("max_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
