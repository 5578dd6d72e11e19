"""Per-mailbox reconnect backoff with jitter (reference/sync.md lesson 8).

Three regimes, chosen by the failure's classification (:class:`~laifaxin_shared.providers.errors.MailError`):

- ordinary failures (connection refused, timeout, server gone): capped exponential delay from ``min_s``,
  factor 2, with "full jitter" in the upper half so a fleet of mailboxes does not reconnect in lock-step;
- throttling (``too_many_connections``, ``rate_limited``, ``[THROTTLED]``): the same curve from ``throttle_min_s``
  up to ``throttle_max_s``;
- authentication failures: one slow retry after ``auth_retry_s`` (providers ban an IP after about ten failed
  logins in ten minutes: mailcow, NetEase), or sooner when new credentials arrive on ``mailbox.verified``.

The failure count resets only after a connection stayed up ``stable_s`` (EmailEngine's STABLE_CONNECTION_TIME),
so a server that accepts the login and drops the connection at once cannot cause a login loop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["error", "throttled", "auth"]


@dataclass
class Backoff:
    """Delay computation for one mailbox; all durations in seconds."""

    min_s: float = 2.0
    max_s: float = 300.0
    throttle_min_s: float = 60.0
    throttle_max_s: float = 1800.0
    auth_retry_s: float = 6 * 3600.0
    stable_s: float = 300.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self, kind: Kind) -> float:
        """Record one failure of ``kind`` and return how long to wait before the next attempt."""
        self.failures += 1
        if kind == "auth":
            return self.auth_retry_s * self.rng.uniform(0.9, 1.1)
        low, high = (
            (self.throttle_min_s, self.throttle_max_s) if kind == "throttled" else (self.min_s, self.max_s)
        )
        ceiling = min(high, low * 2 ** min(self.failures - 1, 30))
        return self.rng.uniform(ceiling / 2, ceiling)

    def connection_lasted(self, seconds: float) -> None:
        """Report how long the last connection stayed up; a stable one resets the failure count."""
        if seconds >= self.stable_s:
            self.failures = 0
