"""The keep-alive of a steady ``ok`` on ``mailbox.sync_status``.

Sync reports state transitions, not every poll (issue 4; ARCHITECTURE.md "Services and the events between
them"). Binding moves a mailbox's "last sync time" only when a status arrives (it stores the event's
``last_synced_at``), and the product docs promise users each mailbox's "sync status / last sync time"; so while
a mailbox stays ``ok`` its ``ok`` is sent again, at most once per ``SYNC_STATUS_REFRESH_SECONDS``, carrying the
time of its last sync pass.

It costs nothing per poll: the check is a comparison of two times at the end of a pass, and a refresh is one
event and the one write that stores the state (:meth:`laifaxin_sync.store.SyncStore.set_state`) per mailbox per
period.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

JITTER = 0.2
"""A refresh is due between ``period`` and ``(1 + JITTER) * period`` after the last status sent."""


class StatusRefresh:
    """When one mailbox's steady ``ok`` is due again; ``period`` in seconds (0 or less: never).

    The due time is drawn afresh after every status sent: ``period * (1 + JITTER * u)`` later, ``u`` uniform
    in [0, 1). Never sooner than ``period``, and mailboxes that reported together (a worker starting 1,000 of
    them) drift apart instead of refreshing in one burst. A worker taking a mailbox over restores the schedule
    from the stored time of its last status (:meth:`restored`): not everything at once after a restart, and
    not never either.
    """

    def __init__(self, period: float, *, jitter: float = JITTER, rng: random.Random | None = None) -> None:
        self.period = period
        self.jitter = jitter
        self.rng = rng or random.Random()  # noqa: S311  # spreading load, not secrets
        self.due_at: datetime | None = None

    @property
    def enabled(self) -> bool:
        return self.period > 0

    def sent(self, at: datetime) -> None:
        """A status of the mailbox went out at ``at`` (aware UTC): the next refresh is one period or so later."""
        if self.enabled:
            self.due_at = at + timedelta(seconds=self.period * (1 + self.jitter * self.rng.random()))

    def restored(self, at: datetime | None, now: datetime) -> None:
        """Continue the schedule of a status stored as sent at ``at`` (None: unknown). One already overdue (the
        mailbox was not synced for a while, or the stored time is unknown) is due within ``jitter * period``
        from ``now``, spread the same way."""
        if not self.enabled:
            return
        spread = now + timedelta(seconds=self.period * self.jitter * self.rng.random())
        if at is None:
            self.due_at = spread
            return
        self.sent(at)
        assert self.due_at is not None
        self.due_at = max(self.due_at, spread)

    def due(self, now: datetime) -> bool:
        """True when a steady ``ok`` should be sent again at ``now``."""
        return self.due_at is not None and now >= self.due_at
