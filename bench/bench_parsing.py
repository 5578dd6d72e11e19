"""Throughput and memory of the sync service's MIME parser (laifaxin_shared.mime.parse_message).

Feeds N messages (default 10,000) through parse_message: the real-mail corpus (../shared/data/real-mail and
CPython's test_email/data, read in place) cycled to N, and a generated mix (plain, HTML-only, GBK labelled
GB2312, multipart with attachments, DSN, large body). Prints one line per figure:

    figure: NAME = VALUE UNIT

Hostile messages (``hostile_*``): the attacks the structure limits, the linear encoded-word decoder and the
per-message CPU budget answer (100,000 parts; 200,000 encoded words in a Subject; 100,000 Content-Type
parameters; 1,000 nested multiparts; 500,000 header fields; a 20 MB line; 5,000 nested message/rfc822), each
measured twice: ``parse_message`` in this process with the default limits (what it costs to refuse or parse),
and the way sync runs it, in a parsing process under ``ParseBudget`` with the limits turned off (the CPU time
that process spent on it, read from /proc: what the budget lets through; a process the kernel ended is counted
at its budget + 1.25 s). ``hostile_worst_cpu`` is the largest of all: the CPU one message can cost sync.
``legit_*``: a message with a large attachment, to show the budget grows with the size (0.1 s per MB).

``--fuzz N`` (default 200 with ``--quick``, 2,000 otherwise; 0 to skip) runs the hypothesis fuzz suites of the
MIME parser and the IMAP reply readers with N random examples per test (the unit tests run 60, derandomized).

Run: ``uv run python bench/bench_parsing.py [--quick] [-n N] [--fuzz N]``. ``--quick`` parses 500 messages per
set and builds the hostile messages at a tenth of their size.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from laifaxin_shared.events.base import utc_now
from laifaxin_shared.mime import MimeLimits, QuarantineError, parse_message
from laifaxin_sync.prepare import BatchContext, ParseBudget, ParseJob, Preparer

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


def hostile(scale: float) -> dict[str, bytes]:
    """The attack messages, ``scale`` 1.0 at the sizes of the review (12.6 MB of parts, 3.4 MB of Subject)."""
    head = b"From: a@example.com\nTo: b@example.com\nMessage-ID: <h@example.com>\n"

    def n(count: int) -> int:
        return max(10, int(count * scale))

    parts = (
        head
        + b"Subject: parts\nContent-Type: multipart/mixed; boundary=b\n\n"
        + b"--b\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: inline\n\npart of a message\n"
        * n(100_000)
        + b"--b--\n"
    )
    nested = head + b"Subject: nested\n"
    nested += b"".join(
        b"Content-Type: multipart/mixed; boundary=n%d\n\n--n%d\n" % (i, i) for i in range(n(1000))
    )
    nested += b"Content-Type: text/plain\n\nx\n" + b"".join(
        b"--n%d--\n" % i for i in reversed(range(n(1000)))
    )
    legit = (
        head
        + b'Subject: quotation\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="m"\n\n--m\n'
        + b"Content-Type: text/plain\n\nSee the attached catalogue.\n--m\nContent-Type: application/pdf\n"
        + b'Content-Disposition: attachment; filename="catalogue.pdf"\nContent-Transfer-Encoding: base64\n\n'
        + base64.encodebytes(os.urandom(n(25_000_000)))
        + b"--m--\n"
    )
    return {
        "legit_attachment": legit,
        "parts": parts,
        "encoded_words": head + b"Subject: " + b"=?utf-8?q?a?= " * n(200_000) + b"\n\nbody\n",
        "content_type_params": head
        + b"Subject: p\nContent-Type: text/plain; "
        + b"; ".join(b"a%d=b" % i for i in range(n(100_000)))
        + b"\n\nbody\n",
        "nested_multiparts": nested,
        "header_fields": head + b"Subject: h\n" + b"X-A: b\n" * n(500_000) + b"\nbody\n",
        "long_line": head
        + b"Subject: l\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n"
        + b"x" * n(20_000_000)
        + b"\n--b--\n",
        "nested_messages": head
        + b"Subject: m\n"
        + b"Content-Type: message/rfc822\n\n" * n(5000)
        + b"From: c@d\n\nx\n",
    }


UNLIMITED = MimeLimits(
    max_header_bytes=1 << 40,
    max_header_field_bytes=1 << 40,
    max_header_line_bytes=1 << 40,
    max_encoded_words=1 << 40,
    max_parts=1 << 40,
    max_depth=1 << 40,
)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def through_the_budget(messages: dict[str, bytes]) -> dict[str, tuple[float, str]]:
    """Each message alone through a parsing process under the default CPU budget, limits off: (CPU s, outcome)."""
    preparer = Preparer(1, budget=ParseBudget(limits=UNLIMITED))
    ctx = BatchContext("tenant", "user", "mbx_bench", "INBOX", "inbox", 1, utc_now())
    out: dict[str, tuple[float, str]] = {}
    try:
        await preparer.start()
        for name, raw in messages.items():
            [slot] = preparer._slots  # a replacement, after the kernel ended the one before
            pid = await asyncio.shield(slot.ready)
            before = process_cpu(pid)
            [prepared] = await preparer.prepare(ctx, [ParseJob(1, raw, None, False)])
            try:
                used = process_cpu(pid) - before
            except FileNotFoundError:  # the kernel ended it (RLIMIT_CPU): it used up to its limit
                used = preparer.budget.seconds(len(raw)) + 1.25
            out[name] = (used, prepared.reason or "parsed")
    finally:
        preparer.close()
    return out


def run_hostile(scale: float) -> None:
    messages = hostile(scale)
    worst = 0.0
    for name, raw in messages.items():
        start = time.process_time()
        try:
            parse_message(raw)
            outcome = "parsed"
        except QuarantineError as exc:
            outcome = exc.reason
        cpu = time.process_time() - start
        worst = max(worst, cpu)
        figure(f"hostile_{name}_size", len(raw) / 1e6, "MB")
        figure(f"hostile_{name}_limits_cpu", cpu * 1e3, "ms")
        print(f"hostile {name}: {outcome} with the default limits", flush=True)
    budget = asyncio.run(through_the_budget(messages))
    for name, (cpu, outcome) in budget.items():
        figure(f"hostile_{name}_budget_cpu", cpu * 1e3, "ms")
        print(f"hostile {name}: {outcome} in a parsing process, limits off", flush=True)
        worst = max(worst, cpu)
    figure("hostile_worst_cpu", worst * 1e3, "ms")


def run_fuzz(examples: int) -> None:
    """The fuzz suites with ``examples`` random examples per test (a subprocess: pytest and hypothesis)."""
    suites = ["tests/unit/shared/mime/test_mime_fuzz.py", "tests/unit/sync/test_sync_imap_fuzz.py"]
    env = {**os.environ, "LAIFAXIN_FUZZ_EXAMPLES": str(examples), "LAIFAXIN_FUZZ_RANDOM": "1"}
    start = time.perf_counter()
    done = subprocess.run(  # our own interpreter and test files
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    print(f"fuzz: {tail[0]}", flush=True)
    if done.returncode != 0:
        print(done.stdout[-4000:], file=sys.stderr)
    figure("fuzz_examples_per_test", examples, "examples")
    figure("fuzz_failed_suites", 0 if done.returncode == 0 else 1, "runs")
    figure("fuzz_seconds", time.perf_counter() - start, "s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="500 messages per set instead of 10,000")
    parser.add_argument("-n", type=int, default=None, help="messages per set (default 10,000)")
    parser.add_argument("--fuzz", type=int, default=None, help="fuzz examples per test (0: none)")
    parser.add_argument("--only", default="", help="comma-separated: throughput,hostile,fuzz (default all)")
    args = parser.parse_args(argv)
    n = args.n or (500 if args.quick else 10_000)
    only = set(filter(None, args.only.split(","))) or {"throughput", "hostile", "fuzz"}
    if "hostile" in only:
        run_hostile(0.1 if args.quick else 1.0)
    fuzz = args.fuzz if args.fuzz is not None else (200 if args.quick else 2000)
    if "fuzz" in only and fuzz:
        run_fuzz(fuzz)
    if "throughput" not in only:
        return 0

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
