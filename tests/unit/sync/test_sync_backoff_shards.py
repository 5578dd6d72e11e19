"""Backoff regimes and the murmur2 shard of a mailbox."""

from __future__ import annotations

import random

from aiokafka.partitioner import murmur2

from laifaxin_shared.topics import MAILBOX_PARTITIONS
from laifaxin_sync.backoff import Backoff
from laifaxin_sync.supervisor import partition_for


def test_errors_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    b = Backoff(min_s=2, max_s=60, rng=random.Random(1))
    delays = [b.next_delay("error") for _ in range(10)]
    assert 1 <= delays[0] <= 2
    assert 2 <= delays[1] <= 4 and 4 <= delays[2] <= 8
    assert all(30 <= d <= 60 for d in delays[6:])


def test_throttling_starts_slower_and_caps_higher() -> None:
    b = Backoff(throttle_min_s=60, throttle_max_s=1800, rng=random.Random(2))
    first = b.next_delay("throttled")
    assert 30 <= first <= 60
    for _ in range(20):
        last = b.next_delay("throttled")
    assert 900 <= last <= 1800


def test_auth_failures_wait_the_slow_retry() -> None:
    b = Backoff(auth_retry_s=3600, rng=random.Random(3))
    assert all(3240 <= b.next_delay("auth") <= 3960 for _ in range(5))


def test_only_a_stable_connection_resets_the_backoff() -> None:
    b = Backoff(min_s=2, max_s=300, stable_s=300, rng=random.Random(4))
    for _ in range(5):
        b.next_delay("error")
    b.connection_lasted(10)  # logged in, then dropped at once: no reset (no login loop)
    assert b.failures == 5
    b.connection_lasted(301)
    assert b.failures == 0
    assert b.next_delay("error") <= 2


def test_partition_is_kafkas_default_partitioner() -> None:
    for i in range(200):
        key = f"mbx_{i:04d}"
        expected = (murmur2(key.encode()) & 0x7FFFFFFF) % MAILBOX_PARTITIONS
        assert partition_for(key) == expected
    assert {partition_for(f"mbx_{i}") for i in range(500)} == set(range(MAILBOX_PARTITIONS))
