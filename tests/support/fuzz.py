"""Hypothesis settings shared by the fuzz suites (tests/unit/shared/mime/test_mime_fuzz.py,
tests/unit/sync/test_sync_imap_fuzz.py).

CI size by default: ``LAIFAXIN_FUZZ_EXAMPLES`` (default 60) examples per test, a few hundred in all, seconds to
run, derandomized (the same examples on every run, so a failure reproduces). ``bench/bench_parsing.py --fuzz N``
runs the same tests with N examples each and a random seed. Every example has a time budget (hypothesis
``deadline``, ``LAIFAXIN_FUZZ_DEADLINE_MS``, default 2,000 ms): an input that makes the parser slow fails the
test as surely as one that makes it raise.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("LAIFAXIN_FUZZ_EXAMPLES", "60"))
DEADLINE_MS = int(os.environ.get("LAIFAXIN_FUZZ_DEADLINE_MS", "2000"))
RANDOM = os.environ.get("LAIFAXIN_FUZZ_RANDOM", "") == "1"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(milliseconds=DEADLINE_MS),
    derandomize=not RANDOM,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
