"""The domain: from one ``mail.classified`` event to deliveries, and from one delivery task to an outcome.

Handlers call :meth:`Notifier.handle_classified`, :meth:`Notifier.deliver` and
:meth:`Notifier.handle_removed`; tests call them with an in-memory :class:`TaskQueue` and no broker.

Reliability (reference/notify.md section 4):

- Dedupe: each (event, user, channel, target) has a dedupe key, claimed in ``deliveries`` under a unique index
  *before* sending (:meth:`Store.acquire`); a redelivered event or a restarted worker finds it taken and sends
  nothing. A claim whose worker died (lease expired) is taken over; a live claim is re-queued until its lease
  ends. The remaining double-send window is a crash between the provider's acceptance and the status
  update; WeChat's ``client_msg_id`` and the push ``Topic``/``tag`` (both = the key) close it for those
  channels.
- Retries: a transient failure goes to ``notify.retry.<n>`` (delays from settings, e.g. 30 s, 5 min, 1 h)
  with ``x-attempt`` and ``x-due-at`` headers; after the last level, or on a permanent configuration
  failure, to ``notify.dlq``.
- Quiet hours defer to ``notify.deferred`` (due at the window's end) or drop; bursts above the digest threshold
  or the hourly rate limit are recorded ``digested`` and one digest per channel goes out at the window's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo.errors import PyMongoError

from laifaxin_shared.events import MailboxRemoved, MailClassified
from laifaxin_shared.logging import get_logger

from .channels.base import Outcome, Sender
from .models import AlertContent, DeliveryStatus, DeliveryTask, Preferences, dedupe_key
from .planning import decide, digest_content, quiet_until, render, window_start
from .store import Binding, Store

log = get_logger(__name__)

RETRY_TOPIC = "notify.retry.{level}"
DEFERRED_TOPIC = "notify.deferred"
DLQ_TOPIC = "notify.dlq"


def task_headers(task: DeliveryTask) -> dict[str, str]:
    """Kafka headers of a task record: ``x-attempt`` and ``x-due-at`` (epoch milliseconds)."""
    due = task.due_at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "x-attempt": str(task.attempt),
        "x-due-at": str(int(due.timestamp() * 1000)),
        "x-dedupe-key": task.dedupe_key,
        "x-channel": task.channel,
    }


class TaskQueue(Protocol):
    """Where tasks wait: Kafka topics in production, a list in unit tests."""

    async def put(self, topic: str, task: DeliveryTask) -> None:
        """Append ``task`` to ``topic`` (registry name, without prefix)."""
        ...


@dataclass
class MemoryQueue:
    """A :class:`TaskQueue` that keeps (topic, task) pairs, for tests."""

    items: list[tuple[str, DeliveryTask]] = field(default_factory=list)

    async def put(self, topic: str, task: DeliveryTask) -> None:
        self.items.append((topic, task))


class AlertCounter(Protocol):
    """Counts a user's alerts per digest window and per hour."""

    async def count(self, tenant_id: str, user_id: str, hour: str, window: str, inc: int) -> tuple[int, int]:
        """Add ``inc``; return (count in ``window``, count in ``hour``) after it."""
        ...

    async def count_many(
        self, hour: str, window: str, incs: dict[tuple[str, str], int]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """:meth:`count` for many (tenant, user) keys at once; returns the same pairs per key."""
        ...


class MemoryCounter:
    """Per-worker counters: no database write per user and batch (``NOTIFY_SHARED_COUNTERS=false``).

    Exact for a user whose mail all reaches one worker; a user whose mailboxes land on several workers
    (events are keyed by mailbox) gets the threshold per worker. Old hours are pruned as time moves on.
    """

    def __init__(self) -> None:
        self._hours: dict[str, dict[tuple[str, str], list[Any]]] = {}

    async def count(self, tenant_id: str, user_id: str, hour: str, window: str, inc: int) -> tuple[int, int]:
        if hour not in self._hours:
            self._hours = {h: v for h, v in self._hours.items() if h >= hour}  # keep the current hour only
            self._hours[hour] = {}
        entry = self._hours[hour].setdefault((tenant_id, user_id), [0, {}])
        entry[0] += inc
        entry[1][window] = entry[1].get(window, 0) + inc
        return int(entry[1][window]), int(entry[0])

    async def count_many(
        self, hour: str, window: str, incs: dict[tuple[str, str], int]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        return {(t, u): await self.count(t, u, hour, window, inc) for (t, u), inc in incs.items()}


class StoreCounter:
    """Counters in MongoDB, exact or conservative across workers (:meth:`Store.count_alerts`): per batch one
    ``insert_many`` (a document per user alerted) and one ``find`` of those users' counts of the hour, no
    updates. The first call of each hour deletes the hours before it (:meth:`Store.prune_counters`; at most
    once per hour per worker, a failure is logged and left to the next hour's call)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pruned_hour = ""

    async def count(self, tenant_id: str, user_id: str, hour: str, window: str, inc: int) -> tuple[int, int]:
        return (await self.count_many(hour, window, {(tenant_id, user_id): inc}))[(tenant_id, user_id)]

    async def count_many(
        self, hour: str, window: str, incs: dict[tuple[str, str], int]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        if hour > self._pruned_hour:
            self._pruned_hour = hour
            try:
                await self.store.prune_counters(hour)
            except PyMongoError as exc:
                log.warning("old counters not deleted", hour=hour, error=type(exc).__name__)
        return await self.store.count_alerts(hour, window, incs)


@dataclass(frozen=True)
class Limits:
    """Digest and rate-limit settings."""

    digest_threshold_per_minute: int = 5
    rate_limit_per_hour: int = 60
    digest_window_s: int = 60


class Notifier:
    """Fan-out, dedupe, retries and digests for one worker.

    Args:
        store: notify's database.
        senders: one :class:`Sender` per enabled channel (a missing channel is skipped).
        queue: where retries, deferrals and dead letters go.
        retry_delays_s: the retry ladder, seconds.
        lease_s: how long a claim is owned while sending.
        limits: digest / rate limit.
        app_base_url: base of message links.
        concurrency: most concurrent provider sends.
        clock: returns aware UTC now (tests move time).
        counter: digest / rate-limit counters (:class:`StoreCounter` by default: exact or conservative across
            workers, one insert and one read per batch; :class:`MemoryCounter` per worker, no database).
    """

    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        queue: TaskQueue,
        *,
        retry_delays_s: list[float],
        lease_s: float = 15.0,
        limits: Limits | None = None,
        app_base_url: str = "https://app.laifa.xin",
        concurrency: int = 64,
        clock: Callable[[], datetime] | None = None,
        counter: AlertCounter | None = None,
    ) -> None:
        self.store = store
        self.senders = dict(senders)
        self.queue = queue
        self.retry_delays_s = list(retry_delays_s)
        self.lease_s = lease_s
        self.limits = limits or Limits()
        self.app_base_url = app_base_url
        self._sem = asyncio.Semaphore(concurrency)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.counter: AlertCounter = counter or StoreCounter(store)

    # mail.classified ---------------------------------------------------------------------------------------
    async def handle_classified(self, event: MailClassified) -> list[tuple[DeliveryTask, str]]:
        """Plan and run the deliveries of one event; returns (task, result) pairs, result one of
        ``sent``/``retry``/``failed``/``skipped``/``duplicate``/``busy``/``deferred``/``digested``/``dropped``.
        """
        if await self.store.mailbox_removed(event.tenant_id, event.ref.mailbox_id):
            return []
        prefs = await self.store.get_preferences(event.tenant_id, event.user_id)
        decision = decide(event, prefs)
        if not decision.alert:
            log.debug("no alert", event_id=str(event.event_id), reason=decision.reason)
            return []
        channels = [c for c in prefs.channels if c in self.senders]
        bindings = await self.store.list_bindings(event.tenant_id, event.user_id, channels, active_only=True)
        if not bindings:
            return []
        content = render(event, self.app_base_url)
        now = self.clock()
        tasks = [self._task(event, b, content) for b in bindings]
        quiet_end = quiet_until(now, prefs.quiet_hours)
        if quiet_end is not None:
            assert prefs.quiet_hours is not None
            if prefs.quiet_hours.action == "drop":
                return [(t, await self._record(t, "skipped", "quiet hours: dropped")) for t in tasks]
            return [(t, await self._defer(t, quiet_end)) for t in tasks]
        if prefs.digest and await self._over_limit(event.tenant_id, event.user_id, now):
            return await self._digest(tasks, now)
        results = await asyncio.gather(*(self.deliver(t, b) for t, b in zip(tasks, bindings, strict=True)))
        return list(zip(tasks, results, strict=True))

    async def handle_batch(self, events: list[MailClassified]) -> list[tuple[DeliveryTask, str]]:
        """The events of one consumer batch, with one round trip per step instead of one per event.

        Same rules and results as :meth:`handle_classified` for each event: tombstones, preferences and
        bindings are read in three queries, digest counters counted with one insert and one read for all
        users, fresh claims in one ``insert_many``, first-attempt successes marked in one ``insert_many``;
        everything unusual (quiet hours, digests, duplicates, failures) takes the per-delivery path.
        """
        if not events:
            return []
        events = list({e.event_id: e for e in events}.values())  # a record twice in one batch counts once
        removed = await self.store.removed_mailboxes({(e.tenant_id, e.ref.mailbox_id) for e in events})
        events = [e for e in events if (e.tenant_id, e.ref.mailbox_id) not in removed]
        prefs, bindings = await self.store.load_users({(e.tenant_id, e.user_id) for e in events})
        now = self.clock()
        out: list[tuple[DeliveryTask, str]] = []
        alerting: list[MailClassified] = []
        for e in events:
            p = prefs[(e.tenant_id, e.user_id)]
            if decide(e, p).alert and any(
                b.channel in p.channels for b in bindings[(e.tenant_id, e.user_id)]
            ):
                alerting.append(e)
        over = await self._over_limit_many(alerting, prefs, now)
        fresh: list[tuple[DeliveryTask, Binding]] = []
        for e in alerting:
            user = (e.tenant_id, e.user_id)
            p = prefs[user]
            content = render(e, self.app_base_url)  # once per event, shared by its deliveries (frozen model)
            pairs = [
                (self._task(e, b, content), b)
                for b in bindings[user]
                if b.channel in p.channels and b.channel in self.senders
            ]
            if not pairs:
                continue
            tasks = [t for t, _ in pairs]
            quiet_end = quiet_until(now, p.quiet_hours)
            if quiet_end is not None and p.quiet_hours is not None:
                if p.quiet_hours.action == "drop":
                    out += [(t, await self._record(t, "skipped", "quiet hours: dropped")) for t in tasks]
                else:
                    out += [(t, await self._defer(t, quiet_end)) for t in tasks]
            elif e.event_id in over:
                out += await self._digest(tasks, now)
            else:
                fresh += pairs
        unique: dict[str, tuple[DeliveryTask, Binding]] = {}
        for t, b in fresh:
            if t.dedupe_key in unique:  # the same event twice in one batch: one delivery
                out.append((t, "duplicate"))
            else:
                unique[t.dedupe_key] = (t, b)
        fresh = list(unique.values())
        claimed = await self.store.claim_many([t for t, _ in fresh], self.lease_s)

        async def one(task: DeliveryTask, binding: Binding) -> tuple[DeliveryTask, str, Outcome | None]:
            if task.dedupe_key not in claimed:
                return task, await self.deliver(task, binding), None
            sender = self.senders[task.channel]
            async with self._sem:
                return task, "", await self._send(sender, task, binding)

        results = await asyncio.gather(*(one(t, b) for t, b in fresh))
        sent: list[tuple[DeliveryTask, str]] = []
        for task, result, outcome in results:
            if outcome is None:
                out.append((task, result))
            elif outcome.kind == "sent":
                sent.append((task, outcome.provider_id))
                out.append((task, "sent"))
            else:
                out.append((task, await self._route(task.model_copy(update={"attempt": 1}), outcome)))
        await self.store.finish_sent_many(sent)
        return out

    def _task(self, event: MailClassified, b: Binding, content: AlertContent) -> DeliveryTask:
        return DeliveryTask(
            dedupe_key=dedupe_key(str(event.event_id), event.user_id, b.channel, b.target_id),
            tenant_id=event.tenant_id,
            user_id=event.user_id,
            channel=b.channel,
            target_id=b.target_id,
            event_id=str(event.event_id),
            mailbox_id=event.ref.mailbox_id,
            content=content,
        )

    async def _over_limit_many(
        self, events: list[MailClassified], prefs: dict[tuple[str, str], Preferences], now: datetime
    ) -> set[object]:
        """Event ids past the digest threshold or the hourly limit; the counters of all users in one call."""
        by_user: dict[tuple[str, str], list[MailClassified]] = {}
        for e in events:
            if (
                prefs[(e.tenant_id, e.user_id)].digest
                and quiet_until(now, prefs[(e.tenant_id, e.user_id)].quiet_hours) is None
            ):
                by_user.setdefault((e.tenant_id, e.user_id), []).append(e)
        window = window_start(now, self.limits.digest_window_s).strftime("m%Y%m%dT%H%M%S")
        hour = window_start(now, 3600).strftime("h%Y%m%dT%H")
        counts = await self.counter.count_many(
            hour, window, {user: len(evs) for user, evs in by_user.items()}
        )
        over: set[object] = set()
        for user, evs in by_user.items():
            per_window, per_hour = counts[user]
            k = len(evs)
            for i, e in enumerate(evs):
                nth_window, nth_hour = per_window - k + i + 1, per_hour - k + i + 1
                if (
                    nth_window > self.limits.digest_threshold_per_minute
                    or nth_hour > self.limits.rate_limit_per_hour
                ):
                    over.add(e.event_id)
        return over

    async def _record(self, task: DeliveryTask, status: str, detail: str) -> str:
        claimed = await self.store.record(task, status, detail=detail)  # type: ignore[arg-type]
        return ("dropped" if status == "skipped" else status) if claimed else "duplicate"

    async def _defer(self, task: DeliveryTask, due: datetime) -> str:
        if not await self.store.record(task, "deferred", detail=f"quiet hours until {due.isoformat()}"):
            return "duplicate"
        await self.queue.put(DEFERRED_TOPIC, task.model_copy(update={"due_at": due}))
        return "deferred"

    async def _over_limit(self, tenant_id: str, user_id: str, now: datetime) -> bool:
        window = window_start(now, self.limits.digest_window_s).strftime("m%Y%m%dT%H%M%S")
        hour = window_start(now, 3600).strftime("h%Y%m%dT%H")
        per_minute, per_hour = await self.counter.count(tenant_id, user_id, hour, window, 1)
        return (
            per_minute > self.limits.digest_threshold_per_minute or per_hour > self.limits.rate_limit_per_hour
        )

    async def _digest(self, tasks: list[DeliveryTask], now: datetime) -> list[tuple[DeliveryTask, str]]:
        start = window_start(now, self.limits.digest_window_s)
        window = start.strftime("%Y%m%dT%H%M%S")
        due = start + timedelta(seconds=self.limits.digest_window_s)
        out: list[tuple[DeliveryTask, str]] = []
        for t in tasks:
            digested = t.model_copy(update={"digest_window": window})
            out.append((t, await self._record(digested, "digested", f"digest {window}")))
        first = tasks[0]
        if await self.store.claim_digest(first.tenant_id, first.user_id, window):
            for t in tasks:
                digest = t.model_copy(
                    update={
                        "kind": "digest",
                        "dedupe_key": dedupe_key(f"digest:{window}", t.user_id, t.channel, t.target_id),
                        "event_id": f"digest:{window}",
                        "mailbox_id": "",
                        "digest_window": window,
                        "due_at": due,
                    }
                )
                await self.queue.put(DEFERRED_TOPIC, digest)
        return out

    # one delivery ------------------------------------------------------------------------------------------
    async def deliver(self, task: DeliveryTask, binding: Binding | None = None) -> str:
        """Claim, send once, and route the outcome; returns ``sent``/``retry``/``failed``/``skipped``/
        ``duplicate`` (already handled elsewhere)/``busy`` (another worker holds it: re-queued).

        ``binding`` is passed when the caller just read it (fresh event); tasks from retry topics re-read it,
        so a binding disabled or deleted meanwhile is honoured.
        """
        fresh = binding is not None
        if (
            not fresh
            and task.mailbox_id
            and await self.store.mailbox_removed(task.tenant_id, task.mailbox_id)
        ):
            await self.store.finish(
                task.dedupe_key, "skipped", attempts=task.attempt, detail="mailbox removed"
            )
            return "skipped"
        acquired = await self.store.acquire(task, self.lease_s, resume=not fresh)
        if not acquired.owned:
            if acquired.status == "pending" and acquired.lease_until is not None:
                # Another worker is sending it (or died doing so): look again when its lease ends.
                lease_until = acquired.lease_until.astimezone(UTC)
                await self.queue.put(self._retry_topic(0), task.model_copy(update={"due_at": lease_until}))
                return "busy"
            return "duplicate"
        if binding is None:
            binding = await self.store.get_binding(task.tenant_id, task.user_id, task.channel, task.target_id)
        sender = self.senders.get(task.channel)
        if binding is None or not binding.active or sender is None:
            await self.store.finish(
                task.dedupe_key, "skipped", attempts=task.attempt, detail="no active binding"
            )
            return "skipped"
        if task.kind == "digest":
            items = await self.store.digested_items(task)
            if not items:
                await self.store.finish(
                    task.dedupe_key, "skipped", attempts=task.attempt, detail="empty digest"
                )
                return "skipped"
            task = task.model_copy(
                update={"content": digest_content(items, task.digest_window, self.app_base_url)}
            )
        attempt = task.attempt + 1
        async with self._sem:
            outcome = await self._send(sender, task, binding)
        return await self._route(task.model_copy(update={"attempt": attempt}), outcome)

    async def _send(self, sender: Sender, task: DeliveryTask, binding: Binding) -> Outcome:
        try:
            return await sender.send(task, binding)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sender bug must not lose the task: logged and retried
            log.exception("sender raised", channel=task.channel, dedupe_key=task.dedupe_key)
            return Outcome("retry", f"sender error: {type(exc).__name__}")

    def _retry_topic(self, level: int) -> str:
        return RETRY_TOPIC.format(level=level)

    async def _route(self, task: DeliveryTask, outcome: Outcome) -> str:
        key = task.dedupe_key
        fields = {
            "channel": task.channel,
            "dedupe_key": key,
            "attempt": task.attempt,
            "detail": outcome.detail,
        }
        if outcome.kind == "sent":
            await self.store.finish(key, "sent", attempts=task.attempt, provider_id=outcome.provider_id)
            return "sent"
        if outcome.binding_action == "disable":
            await self.store.set_binding_active(
                task.tenant_id, task.user_id, task.channel, task.target_id, False
            )
        elif outcome.binding_action == "delete":
            await self.store.delete_binding(task.tenant_id, task.user_id, task.channel, task.target_id)
        if outcome.alert:
            log.error("delivery needs an operator", **fields)
        if outcome.kind == "skipped":
            await self.store.finish(key, "skipped", attempts=task.attempt, detail=outcome.detail)
            return "skipped"
        if outcome.kind == "retry" and task.attempt <= len(self.retry_delays_s):
            level = task.attempt - 1
            delay = self.retry_delays_s[level]
            if outcome.retry_after_s is not None:
                delay = max(delay, outcome.retry_after_s)
                level = self._level_for(delay, level)
            due = self.clock() + timedelta(seconds=delay)
            await self.store.finish(key, "retrying", attempts=task.attempt, detail=outcome.detail)
            await self.queue.put(
                self._retry_topic(level),
                task.model_copy(update={"due_at": due, "last_error": outcome.detail}),
            )
            log.info("delivery retry scheduled", level=level, delay_s=delay, **fields)
            return "retry"
        await self.store.finish(key, "failed", attempts=task.attempt, detail=outcome.detail)
        if outcome.kind == "retry" or outcome.dead_letter:
            await self.queue.put(DLQ_TOPIC, task.model_copy(update={"last_error": outcome.detail}))
            log.warning("delivery dead-lettered", **fields)
        return "failed"

    def _level_for(self, delay: float, at_least: int) -> int:
        for level, d in enumerate(self.retry_delays_s):
            if level >= at_least and d >= delay:
                return level
        return len(self.retry_delays_s) - 1

    # alerts about a mailbox itself (health.py) ------------------------------------------------------------
    async def alert_user(
        self,
        tenant_id: str,
        user_id: str,
        event_id: str,
        mailbox_id: str,
        contents: Mapping[str, AlertContent],
    ) -> list[str]:
        """Send one alert that is not about a mail (category ``mailbox_health``) to every active binding of the
        user's chosen channels, in the user's language (``contents`` keyed ``en`` / ``zh``).

        Same dedupe (the key is derived from ``event_id``, so a repeated call sends nothing) and quiet hours
        (defer or drop) as mail alerts; never digested or rate-limited. Returns one result per delivery
        (``sent``/``retry``/``failed``/``skipped``/``duplicate``/``deferred``/``dropped``), empty when the user
        turned ``mailbox_health`` off or has no binding.
        """
        prefs = await self.store.get_preferences(tenant_id, user_id)
        if not prefs.mailbox_health or not prefs.channels:
            return []
        content = contents.get(prefs.language) or next(iter(contents.values()))
        channels = [c for c in prefs.channels if c in self.senders]
        bindings = await self.store.list_bindings(tenant_id, user_id, channels, active_only=True)
        tasks = [
            (
                DeliveryTask(
                    dedupe_key=dedupe_key(event_id, user_id, b.channel, b.target_id),
                    tenant_id=tenant_id,
                    user_id=user_id,
                    channel=b.channel,
                    target_id=b.target_id,
                    event_id=event_id,
                    mailbox_id=mailbox_id,
                    content=content,
                ),
                b,
            )
            for b in bindings
        ]
        quiet_end = quiet_until(self.clock(), prefs.quiet_hours)
        if quiet_end is not None and prefs.quiet_hours is not None:
            if prefs.quiet_hours.action == "drop":
                return [await self._record(t, "skipped", "quiet hours: dropped") for t, _ in tasks]
            return [await self._defer(t, quiet_end) for t, _ in tasks]
        return list(await asyncio.gather(*(self.deliver(t, b) for t, b in tasks)))

    # mailbox.removed ---------------------------------------------------------------------------------------
    async def handle_removed(self, event: MailboxRemoved) -> int:
        """Drop notify's state for the mailbox; returns how many waiting deliveries were cancelled."""
        return await self.store.remove_mailbox(event.tenant_id, event.mailbox_id)

    # receipts ----------------------------------------------------------------------------------------------
    async def wechat_receipt(self, msgid: str, status: str) -> int:
        """Apply a ``TEMPLATESENDJOBFINISH`` receipt: ``success`` -> delivered, ``failed:...`` -> failed."""
        new: DeliveryStatus = "delivered" if status.strip() == "success" else "failed"
        return await self.store.update_by_provider_id("wechat", msgid, new, f"wechat receipt: {status}"[:200])


async def replay(tasks: list[DeliveryTask], put: Callable[[str, DeliveryTask], Awaitable[None]]) -> int:
    """Send dead-lettered tasks back to the first retry level with attempt reset and due now."""
    now = datetime.now(UTC)
    for task in tasks:
        await put(RETRY_TOPIC.format(level=0), task.model_copy(update={"attempt": 0, "due_at": now}))
    return len(tasks)
