"""Progress of a long catch-up, reported as ``syncing`` on ``mailbox.sync_status``.

A mailbox's first sync (its initial window, 30 days by default) or its return after an outage may have thousands
of messages to fetch; without a word, its owner sees nothing until the pass ends. So a sync pass counts what it
has to do from what it learns anyway: each ``UID SEARCH`` that :meth:`~laifaxin_sync.folder_sync.FolderSync.fetch_new`
fetches by gives the UIDs to fetch (``found``), and each committed group the UIDs it handled (``done``: published,
quarantined, duplicates, outside the window, or expunged before the fetch). No IMAP command and no store write is
added per message or per batch; the only cost is the ``syncing`` events themselves (one event and one state write
each, :meth:`laifaxin_sync.mailbox_loop.MailboxLoop.report`).

The rules (:class:`CatchUpProgress`):

- A pass whose backlog (the UIDs found in all its folders, INBOX then Junk) reaches ``SYNC_PROGRESS_MIN_MESSAGES``
  (200) is reported ``syncing`` at once, with ``progress_done`` / ``progress_total``; smaller passes (new mail
  under IDLE, a few messages at a time) never are. 0 disables the reports.
- Then at most every ``SYNC_PROGRESS_INTERVAL_SECONDS`` (10 s), and only when the numbers changed.
- The pass ends with ``ok`` (progress cleared), through the same report path, or with the error it met.
- ``progress_eta_seconds`` is ``(total - done) / rate``, the rate measured since the pass found its first UID to
  fetch; none before a message was handled (the first report of a catch-up has none).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    """One ``syncing`` report: messages handled (``done``) of those found (``total``), and the estimated seconds
    left (``eta_seconds``; None until a rate is measured)."""

    done: int
    total: int
    eta_seconds: float | None

    def fields(self) -> dict[str, Any]:
        """The :class:`~laifaxin_shared.events.MailboxSyncStatus` fields of this report."""
        return {
            "progress_done": self.done,
            "progress_total": self.total,
            "progress_eta_seconds": self.eta_seconds,
        }


class CatchUpProgress:
    """The counts of one mailbox's sync pass under way, and when they are worth a ``syncing`` report.

    ``min_messages``: backlog of a pass (UIDs found to fetch, all folders) from which it is reported; 0 or less:
    never. ``interval``: seconds at least between two reports of one pass. ``clock``: monotonic seconds
    (injected by tests). Counts are in messages (UIDs). Nothing here does I/O: the caller sends what
    :meth:`due` returns and calls :meth:`finish` when the pass ends, however it ends.
    """

    def __init__(
        self, min_messages: int, interval: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.min_messages = min_messages
        self.interval = interval
        self.clock = clock
        self.found = 0
        self.done = 0
        self.started_at: float | None = None  # when the pass found its first UID to fetch
        self.reporting = False  # a syncing report of this pass went out
        self._last_at = 0.0
        self._last: tuple[int, int] = (-1, -1)

    @property
    def remaining(self) -> int:
        """UIDs found and not handled yet."""
        return self.found - self.done

    def add_found(self, count: int) -> None:
        """A ``UID SEARCH`` of the pass found ``count`` UIDs to fetch (none of them counted before)."""
        if count <= 0:
            return
        if self.started_at is None:
            self.started_at = self.clock()
        self.found += count

    def add_done(self, count: int) -> int:
        """``count`` UIDs of the pass were handled (their group committed); returns how many were counted (never
        more than found: ``done`` stays at most ``found``)."""
        added = max(0, min(count, self.remaining))
        self.done += added
        return added

    def due(self) -> Progress | None:
        """The report to send now, if one is due: the first once the backlog reaches ``min_messages``, the next
        ones ``interval`` seconds or more after the previous and only when ``done`` or ``found`` moved. A
        report returned counts as sent."""
        if self.min_messages <= 0 or self.found < self.min_messages:
            return None
        now = self.clock()
        counts = (self.done, self.found)
        if self.reporting and (now - self._last_at < self.interval or counts == self._last):
            return None
        self.reporting = True
        self._last_at = now
        self._last = counts
        return Progress(self.done, self.found, self.eta(now))

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate measured since the pass started (messages handled / seconds elapsed),
        rounded to 0.1 s; None before a message was handled."""
        if self.started_at is None or self.done <= 0:
            return None
        elapsed = now - self.started_at
        if elapsed <= 0:
            return None
        return round(self.remaining * elapsed / self.done, 1)

    def elapsed(self) -> float:
        """Seconds since the pass found its first UID to fetch (0 before)."""
        return 0.0 if self.started_at is None else self.clock() - self.started_at

    def finish(self) -> bool:
        """The pass ended (done, failed or stopped): start from zero. Returns True when ``syncing`` was reported
        for it (the caller's next report must replace it)."""
        was = self.reporting
        self.found = self.done = 0
        self.started_at = None
        self.reporting = False
        self._last_at = 0.0
        self._last = (-1, -1)
        return was
