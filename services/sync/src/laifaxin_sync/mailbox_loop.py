"""The loop of one mailbox: lease, connect, log in, IDLE or poll, sync INBOX, Junk and the user's own folders,
back off on failure.

One IMAP connection per mailbox (providers cap connections per user: Gmail 15, Dovecot ~10 per user+IP): it
IDLEs on INBOX (RFC 2177) when the server advertises IDLE, leaves IDLE (DONE) to sync when an ``EXISTS``
arrives, to poll the other folders at the mailbox's interval with STATUS (RFC 3501 6.3.10), and to re-issue IDLE
before the 29-minute limit. Without IDLE every folder is polled at the interval.

The other folders come from one ``LIST "" "*"`` (RFC 3501 6.3.8) at connect: the Junk folder
(:func:`~laifaxin_sync.imap_parse.find_junk`) and, with ``SYNC_USER_FOLDERS``, the user's own folders, where
their filter rules file customer mail (:func:`~laifaxin_sync.imap_parse.find_user_folders`: not Sent, Drafts,
Trash, Archive, All Mail, Flagged, Important; at most ``SYNC_MAX_USER_FOLDERS``, those left out logged once),
published with ``folder_role="other"``. At each poll every one of them gets a STATUS (UIDNEXT UIDVALIDITY
MESSAGES, HIGHESTMODSEQ with CONDSTORE) and only a changed one is EXAMINEd and synced, with its own cursor,
baseline and initial window (:class:`~laifaxin_sync.folder_sync.FolderSync`; a message in two folders is
published once, by Message-ID). LIST is done again at the first poll ``SYNC_FOLDER_LIST_SECONDS`` after the
last one (new folders), and at the next poll when a folder's STATUS failed (deleted or renamed: it is dropped).
A user folder that STATUS shows but EXAMINE refuses is skipped until the next LIST; the mailbox goes on. Where
the server offers NOTIFY (RFC 5465) and ``SYNC_IMAP_NOTIFY`` is on, the other folders' changes are pushed as
untagged ``STATUS`` during IDLE and polled at once (the interval poll stays as the safety net). One
STATUS per folder per poll rather than LIST-STATUS (RFC 5819): aioimaplib drops the untagged ``STATUS`` replies
of a LIST command. ``ENABLE CONDSTORE``
(RFC 7162 3.1) makes SELECT/STATUS report HIGHESTMODSEQ; ``ID`` (RFC 2971) is sent when the provider requires
it (NetEase refuses SELECT without it).

Failures never stop the mailbox: each is classified with the shared error taxonomy, reported on
``mailbox.sync_status`` when the state changes, and followed by a backoff (:mod:`laifaxin_sync.backoff`). One
exception: a working connection the server closes (its ``BYE``, RFC 3501 7.1.5, or a reset: providers recycle
long IDLE sessions, Dovecot ends a session whose selected folder another client renamed) is reconnected after
the first backoff step without a report, when it is the first failure since the last stable connection;
if the reconnect fails too, that failure is reported as usual (EmailEngine's separate "close" backoff; Nylas
reports transient network errors only when they repeat). A
mailbox that stays ``ok`` sends its ``ok`` again now and then with the time of its last sync pass
(:mod:`laifaxin_sync.status_refresh`). A sync pass with a long backlog (initial window, return after an outage)
reports ``syncing`` with its progress while it runs and ``ok`` when it ends (:mod:`laifaxin_sync.progress`).
A ``mailbox.verified`` that switched the mailbox to another account makes
the loop drop the previous account's sync state before it connects (:meth:`SyncStore.reset_account`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aioimaplib
from aiokafka.errors import KafkaError
from imapclient import imap_utf7
from pymongo.errors import PyMongoError

from laifaxin_shared import sasl
from laifaxin_shared.crypto import CredentialContext, CredentialError, KeyRing
from laifaxin_shared.events import EncryptedCredential, MailboxSyncStatus
from laifaxin_shared.events.base import utc_now
from laifaxin_shared.imap import (
    ImapConnectionClosedError,
    authenticate_oauth,
    connect_imap,
    exists_notifications,
    notify_set,
    status_mailbox,
    take_notified_folders,
)
from laifaxin_shared.logging import get_logger, redact_text
from laifaxin_shared.netguard import HostAllowlist
from laifaxin_shared.providers.errors import (
    ErrorCode,
    MailError,
    MailServerError,
    explain,
    explain_exception,
    make_error,
)
from laifaxin_shared.providers.models import Text
from laifaxin_sync.backoff import Backoff, Kind
from laifaxin_sync.folder_sync import (
    Folder,
    FolderSync,
    ImapCommandError,
    MailboxIdentity,
    UidValidityUnstable,
)
from laifaxin_sync.imap_parse import (
    ListEntry,
    find_junk,
    find_user_folders,
    has_exists,
    parse_list,
    parse_select,
    parse_status,
    quote_mailbox,
)
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.prepare import ParseBudget, Preparer
from laifaxin_sync.progress import CatchUpProgress, Progress
from laifaxin_sync.publisher import Publisher
from laifaxin_sync.settings import SyncSettings
from laifaxin_sync.startup import Slot, StartGate
from laifaxin_sync.status_refresh import StatusRefresh
from laifaxin_sync.store import Cursor, Lease, LeaseLost, SyncStore

log = get_logger(__name__)

INBOX = Folder("INBOX", "INBOX", "inbox")
_THROTTLE_CODES = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.TOO_MANY_CONNECTIONS})


class Stopping(Exception):  # a control-flow signal, not an error
    """The loop must end now (stop requested or lease lost): abandon the batch, keep the cursor behind."""


class WorkerContext:
    """What every mailbox loop of a worker shares (``preparer``: parsing, in the worker's process pool;
    ``start_gate``: the connect slots, ``SYNC_START_CONCURRENCY``)."""

    def __init__(
        self,
        settings: SyncSettings,
        store: SyncStore,
        publisher: Publisher,
        metrics: SyncMetrics,
        keyring: KeyRing,
        preparer: Preparer | None = None,
        start_gate: StartGate | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.keyring = keyring
        self.preparer = preparer or Preparer(
            1,
            budget=ParseBudget(
                settings.parse_cpu_seconds, settings.parse_cpu_seconds_per_mb, settings.mime_limits()
            ),
        )
        self.start_gate = start_gate or StartGate(settings.start_concurrency, metrics)
        self.ssl_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if settings.tls_ca_file:
            self.ssl_context.load_verify_locations(cafile=settings.tls_ca_file)
        self.ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.allowlist = HostAllowlist.parse(settings.host_allowlist)


async def check_host(ctx: WorkerContext, host: str) -> None:
    """Refuse a server whose name resolves to a non-public address unless allowlisted (ARCHITECTURE.md
    "Credentials and tenancy": no private, loopback, link-local or metadata targets).

    Raises:
        MailServerError: ``host_not_allowed``; ``socket.gaierror`` when the name does not resolve,
            ``TimeoutError`` when it does not resolve in 5 s.
    """
    address = await ctx.allowlist.refused_address(host)
    if address is not None:
        raise MailServerError(ErrorCode.HOST_NOT_ALLOWED, protocol="imap", server_text=f"{host} -> {address}")


class MailboxLoop:
    """The sync loop of one mailbox, started and stopped by the supervisor.

    ``config`` is the ``mailboxes`` document (a stored ``mailbox.verified`` plus ``partition`` and ``status``).
    ``lease``: the mailbox's lease when the supervisor claimed it already (in bulk, :meth:`SyncStore.claim_leases`);
    None: the loop claims it, waiting while another live worker holds it. ``cursors``: the mailbox's stored
    cursors, read in bulk after that claim (None: read per folder); used by the first connection only.
    """

    def __init__(
        self,
        config: dict[str, Any],
        ctx: WorkerContext,
        lease: Lease | None = None,
        cursors: list[Cursor] | None = None,
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.mailbox_id: str = config["_id"]
        self.partition: int = int(config["partition"])
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.has_lease = False
        self.lease: Lease | None = None
        self.lease_lost = False
        self.lease_claimed_at = 0.0
        self._last_status: dict[str, Any] | None = config.get("status")
        s = ctx.settings
        self.backoff = Backoff(
            min_s=s.backoff_min_seconds,
            max_s=s.backoff_max_seconds,
            throttle_min_s=s.throttle_min_seconds,
            throttle_max_s=s.throttle_max_seconds,
            auth_retry_s=s.auth_retry_seconds,
            stable_s=s.stable_connection_seconds,
        )
        self.last_synced_at: datetime | None = None
        self._refresh = StatusRefresh(s.status_refresh_seconds)
        self._progress = CatchUpProgress(s.progress_min_messages, s.progress_interval_seconds)
        self._sync: FolderSync | None = None  # of the current connection
        if self._last_status is not None:
            self._refresh.restored(_aware(self._last_status.get("at")), utc_now())
        # set by the registry when a mailbox.verified changed the account (SyncStore.upsert_mailboxes)
        self._account_reset: str | None = config.get("account_reset")
        self._slot: Slot | None = None
        self._known_cursors: list[Cursor] | None = None
        self._user_folders_counted = 0  # this loop's part of the sync_user_folders gauge
        self._left_out_logged: tuple[str, ...] = ()
        self._established = False  # the current connection finished its first sync pass
        self._backup_since: float | None = None  # monotonic time the backup pair was taken; None: recommended
        if lease is not None:
            self._hold(lease)
            self._known_cursors = cursors

    # ------------------------------------------------------------------------------------------ control

    def start(self) -> None:
        """Start the loop task (the supervisor keeps this object, and so the task reference); the mailbox counts
        as starting until its first connection attempt is over (:class:`~laifaxin_sync.startup.StartGate`)."""
        self.ctx.start_gate.expect(self.mailbox_id)
        self._task = asyncio.create_task(self._run(), name=f"mailbox:{self.mailbox_id}")

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def crash(self) -> BaseException | None:
        """The exception that ended the loop task, if it ended by one (a bug: failures are handled inside)."""
        if self._task is None or not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception()

    async def stop(self, grace: float) -> None:
        """Ask the loop to end after the batch in flight; cancel it after ``grace`` seconds."""
        self._stop.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def lose_lease(self) -> None:
        """Called when the lease was found taken by another worker: stop at the next checkpoint."""
        self.lease_lost = True
        self._stop.set()

    def renew_credential(self, config: dict[str, Any]) -> None:
        """Take a refreshed OAuth access token (``mailbox.verified`` that changed only the credential): the
        running session stays as it is, and the next login (a reconnect after the server ended the session,
        e.g. when the old token expired) uses the new token."""
        self.config["credential"] = config["credential"]
        self.config["access_token_expires_at"] = config.get("access_token_expires_at")
        self.config["verified_event_id"] = config.get("verified_event_id")

    def _token_expired(self) -> bool:
        """Whether the held OAuth access token has expired or does so within a minute (binding sends the next
        one before that; a refusal now means waiting for it, not a wrong account)."""
        raw = self.config.get("access_token_expires_at")
        if not raw:
            return False
        expires = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        return expires - utc_now() < timedelta(seconds=60)

    def update_settings(self, sync: dict[str, Any]) -> None:
        """Apply a ``mailbox.updated`` interval change (takes effect at the next wait)."""
        self.config["sync"] = sync

    def guard(self) -> None:
        """Raise :class:`Stopping` when the loop must not start another batch."""
        if self._stop.is_set() or self.lease_lost:
            raise Stopping

    @property
    def interval(self) -> float:
        override = self.ctx.settings.poll_interval_seconds
        return float(override or self.config.get("sync", {}).get("interval_seconds", 300))

    # ------------------------------------------------------------------------------------------ run

    async def _run(self) -> None:
        try:
            if self.lease is None:
                await self._claim()
            spread = self.ctx.settings.start_spread_seconds
            if spread:
                await self._sleep(spread * (hash(self.mailbox_id) % 1000) / 1000)
            while not self._stop.is_set():
                delay = await self._attempt()
                self._started()
                if delay is None:
                    break
                await self._sleep(delay)
        except Stopping:
            pass
        finally:
            self._release_slot()
            self.ctx.start_gate.done(self.mailbox_id, started=False)
            if self.has_lease and not self.lease_lost and self.lease is not None:
                try:
                    await self.ctx.store.release_lease(self.lease)
                except PyMongoError as exc:  # an unreleased lease simply expires after its TTL
                    log.warning("lease not released", mailbox_id=self.mailbox_id, error=type(exc).__name__)
            self.has_lease = False

    async def _claim(self) -> None:
        s = self.ctx.settings
        while not self._stop.is_set():
            try:
                lease = await self.ctx.store.claim_lease(self.mailbox_id, s.worker_id)
            except PyMongoError as exc:  # the store is busy or down: try again later, not in a tight loop
                log.warning(
                    "lease claim failed; retrying", mailbox_id=self.mailbox_id, error=type(exc).__name__
                )
                self.ctx.metrics.errors.labels("infrastructure").inc()
                await self._sleep(self.backoff.next_delay("error"))
                continue
            if lease is not None:
                self._hold(lease)
                return
            log.info("lease held by another worker; waiting", mailbox_id=self.mailbox_id)
            await self._sleep(max(1.0, s.lease_ttl_seconds / 3))
        raise Stopping

    def _hold(self, lease: Lease) -> None:
        self.lease = lease
        self.has_lease = True
        self.lease_lost = False
        self.lease_claimed_at = time.monotonic()

    def _release_slot(self) -> None:
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def _started(self) -> None:
        """The connect phase is over (first pass done, or the attempt failed): free the start slot."""
        self._release_slot()
        self.ctx.start_gate.done(self.mailbox_id)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _attempt(self) -> float | None:
        """One connection's life; returns the delay before the next attempt, or None to end."""
        connected_at: float | None = None

        def on_connected() -> None:
            nonlocal connected_at
            connected_at = time.monotonic()

        password: str | None = None
        self._established = False
        try:
            password = self._password()
            if self._account_reset is not None:
                await self._reset_account()
            await self._session(password, on_connected)
            return None
        except Stopping:
            return None
        except _BackToRecommended:
            log.info("trying the recommended servers again", mailbox_id=self.mailbox_id)
            self._backup_since = None
            return 0.0
        except LeaseLost:
            # Another worker holds the mailbox now (rebalance, or this worker paused past its heartbeat): stop
            # here without releasing; the supervisor restarts the loop, which waits for the lease.
            log.warning("lease lost: cursor write refused; stopping mailbox", mailbox_id=self.mailbox_id)
            self.lease_lost = True
            self.ctx.metrics.errors.labels("lease_lost").inc()
            return None
        except UidValidityUnstable as exc:
            log.warning(
                "uidvalidity unstable: re-baselining held",
                mailbox_id=self.mailbox_id,
                folder=exc.folder,
                in_a_row=exc.resets,
                retry_at=exc.retry_at.isoformat(),
            )
            error = make_error(ErrorCode.UIDVALIDITY_UNSTABLE, protocol="imap")
            self.ctx.metrics.errors.labels(error.code.value).inc()
            await self.report(error.sync_state, error=error, folder=exc.folder, retry_at=exc.retry_at)
            return max(1.0, (exc.retry_at - utc_now()).total_seconds())
        except (CredentialError, KeyError) as exc:
            # Nothing was sent anywhere: the envelope does not open for these servers and login (settings binding
            # did not verify, a forged or altered event), or with this worker's keys.
            log.error(
                "credential does not open for this mailbox's servers and login; not connecting",
                mailbox_id=self.mailbox_id,
                imap_host=self.config.get("imap", {}).get("host"),
                error=type(exc).__name__,
                detail=str(exc)[:300],
            )
            error = make_error(
                ErrorCode.CREDENTIAL_MISMATCH,
                protocol="imap",
                server_text=f"{type(exc).__name__}: {exc}"[:500],
            )
            return await self._failed(error, "auth", connected_at)
        except asyncio.CancelledError:
            raise
        except sasl.OAuthAuthenticationError as exc:
            if self._token_expired():
                # The access token ran out before binding's refreshed one arrived: wait for it quietly.
                log.info("oauth token expired; waiting for the refreshed one", mailbox_id=self.mailbox_id)
                self._connection_ended(connected_at)
                return self.backoff.next_delay("error")
            error = explain("imap", exc.server_text, self.config.get("provider_id"), secrets=[password])
            return await self._failed(error, "auth", connected_at)
        except (PyMongoError, KafkaError) as exc:
            # Our own store or broker failed, not the mailbox: back off and retry, but tell the user nothing.
            log.warning(
                "store or broker unavailable",
                mailbox_id=self.mailbox_id,
                error=redact_text(f"{type(exc).__name__}: {exc}")[:300],
            )
            self.ctx.metrics.errors.labels("infrastructure").inc()
            self._connection_ended(connected_at)
            return self.backoff.next_delay("error")
        except Exception as exc:  # noqa: BLE001  # any failure of one mailbox is classified, reported and backed off
            imap = self._servers_config()["imap"]
            if isinstance(exc, ImapCommandError):
                error = explain("imap", exc.text, self.config.get("provider_id"), secrets=[password])
            else:
                error = explain_exception(
                    exc,
                    "imap",
                    host=imap["host"],
                    port=imap["port"],
                    security=imap["security"],
                    provider_id=self.config.get("provider_id"),
                    secrets=[password],
                )
            self._connection_ended(connected_at)  # before the check: a stable connection resets the failures
            if self._closed_by_server(exc, error):
                return self._reconnect_quietly(error)
            reported = self._failover(error)
            if reported is None:
                return 0.0  # straight to the backup pair
            error = reported
            kind: Kind
            if error.sync_state == "auth_failed" or (
                not error.retryable and error.code is not ErrorCode.UNKNOWN
            ):
                kind = "auth"
            elif error.code in _THROTTLE_CODES or error.sync_state == "throttled":
                kind = "throttled"
            else:
                kind = "error"
            log.warning(
                "mailbox loop failed",
                mailbox_id=self.mailbox_id,
                code=error.code.value,
                rule=error.rule,
                exc_type=type(exc).__name__,
                server_text=error.server_text,
            )
            return await self._failed(error, kind, None)  # the connection's length is recorded above

    def _connection_ended(self, connected_at: float | None) -> None:
        """Tell the backoff how long the connection that just failed stayed up (None: it never logged in)."""
        if connected_at is not None:
            self.backoff.connection_lasted(time.monotonic() - connected_at)

    def _closed_by_server(self, exc: BaseException, error: MailError) -> bool:
        """Whether ``exc`` is a working connection's close by the server, the first failure since the last
        stable connection (reconnected without a report: see the module docstring)."""
        return (
            self._established
            and self.backoff.failures == 0
            and isinstance(exc, ImapConnectionClosedError | ConnectionResetError | EOFError)
            and error.code is ErrorCode.SERVER_UNAVAILABLE
        )

    def _reconnect_quietly(self, error: MailError) -> float:
        log.info(
            "server closed the connection; reconnecting",
            mailbox_id=self.mailbox_id,
            server_text=error.server_text,
        )
        self.ctx.metrics.errors.labels("connection_closed").inc()
        return self.backoff.next_delay("error")

    async def _failed(self, error: MailError, kind: Kind, connected_at: float | None) -> float:
        self.ctx.metrics.errors.labels(error.code.value).inc()
        self._connection_ended(connected_at)
        delay = self.backoff.next_delay(kind)
        retry_at = utc_now() + timedelta(seconds=delay)
        await self.report(error.sync_state, error=error, retry_at=retry_at)
        return delay

    async def _reset_account(self) -> None:
        """Drop the previous account's cursors and index under the lease before the new account is synced: its
        folders get a fresh baseline with the initial window (no ``uidvalidity_reset``).

        Raises:
            LeaseLost: another worker holds the mailbox now.
            pymongo.errors.PyMongoError: the store failed (retried at the next attempt; the mark stays).
        """
        assert self.lease is not None, "the account is reset only under the lease"
        dropped = await self.ctx.store.reset_account(self.lease)
        if dropped is not None:
            log.info(
                "account changed: previous account's sync state dropped",
                mailbox_id=self.mailbox_id,
                **dropped,
            )
            self._known_cursors = []  # every cursor read with the lease belonged to the previous account
        self._account_reset = None

    def _password(self) -> str:
        """The password, opened for the very servers and login this loop connects with (``self.config``'s
        ``imap``/``smtp``/``username``/``smtp_username``, v2 associated data): a ``mailbox.verified`` that points
        a real envelope at other servers fails here, before any connection.

        Raises:
            CredentialError: the envelope does not open for these settings (or v1 is refused); KeyError: the
                config lacks a field.
        """
        config = self._servers_config()
        envelope = EncryptedCredential.model_validate(config["credential"])
        context = CredentialContext.of(config, mailbox_id=self.mailbox_id)
        return self.ctx.keyring.open_mailbox(envelope, context)

    async def report(
        self,
        state: str,
        *,
        error: MailError | None = None,
        folder: str | None = None,
        retry_at: Any = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> None:
        """Send ``mailbox.sync_status`` when the state (or error code) differs from the last one sent, or
        ``force``; a steady ``ok`` is sent again when its refresh is due (:class:`StatusRefresh`:
        ``SYNC_STATUS_REFRESH_SECONDS``). Every event carries ``last_synced_at``; the time it was sent is stored
        with the state. ``progress``: the counts of a ``syncing`` report (``progress_*`` fields; None for every
        other state).

        Raises:
            aiokafka.errors.KafkaError, pymongo.errors.PyMongoError: the event or the state was not written.
        """
        current: dict[str, Any] = {"state": state, "error_code": error.code.value if error else None}
        pair = "backup" if self._backup_since is not None and self.config.get("backup") else None
        if pair is not None or (self._last_status or {}).get("servers") is not None:
            current["servers"] = pair  # a change of server pair is reported, even with the same state
        now = utc_now()
        if (
            not force
            and self._last_status is not None
            and all(self._last_status.get(k) == v for k, v in current.items())
            and not (state == "ok" and error is None and self._refresh.due(now))
        ):
            return
        fields: dict[str, Any] = error.sync_status_fields() if error else {"state": state}
        fields["state"] = state
        if pair is not None and error is None:
            backup = self.config["backup"]
            hosts = f"{backup['imap']['host']} / {backup['smtp']['host']}"
            fields["message"] = f"Using the backup servers {hosts}: the recommended servers did not answer."
            fields["message_zh"] = f"正在使用备用服务器 {hosts}：推荐服务器无法使用。"
        event = MailboxSyncStatus(
            tenant_id=self.config["tenant_id"],
            mailbox_id=self.mailbox_id,
            folder=folder,
            last_synced_at=self.last_synced_at,
            retry_at=retry_at,
            **fields,
            **(progress.fields() if progress is not None else {}),
        )
        await self.ctx.publisher.status(event)
        self.ctx.metrics.status_events.labels(state).inc()
        self._last_status = current
        self._refresh.sent(now)
        await self.ctx.store.set_state(self.mailbox_id, {**current, "at": now})

    async def _synced(self, sync: FolderSync) -> None:
        """A sync pass succeeded (INBOX and the polled folders, or INBOX after an IDLE wake): note its time, end
        its catch-up progress, and report ``ok`` when that is news (after ``syncing``, too) or its refresh is due
        (no I/O otherwise)."""
        self.last_synced_at = utc_now()
        self._end_progress(completed=True)
        if not sync.unstable():  # else the uidvalidity_unstable report stands until a stable pass
            await self.report("ok")  # after both folders have their baseline

    # ------------------------------------------------------------------------------------------ progress

    async def _found(self, count: int) -> None:
        """``on_found`` of the folder sync: ``count`` UIDs to fetch in this pass (:mod:`laifaxin_sync.progress`)."""
        self._progress.add_found(count)
        self.ctx.metrics.catchup_remaining.inc(count)
        await self._report_progress()

    async def _handled(self, count: int) -> None:
        """``on_handled`` of the folder sync: a group of ``count`` UIDs of this pass was committed."""
        self.ctx.metrics.catchup_remaining.dec(self._progress.add_done(count))
        await self._report_progress()

    async def _report_progress(self) -> None:
        """Send ``syncing`` when :meth:`CatchUpProgress.due` says so (always, even when the last state sent was
        ``syncing``: a restarted worker reports its catch-up afresh). Not while a folder's UIDVALIDITY is
        unstable: that report stands.

        Raises:
            aiokafka.errors.KafkaError, pymongo.errors.PyMongoError: as :meth:`report`.
        """
        if self._sync is not None and self._sync.unstable():
            return
        first = not self._progress.reporting
        progress = self._progress.due()
        if progress is None:
            return
        if first:
            log.info(
                "catch-up started", mailbox_id=self.mailbox_id, messages=progress.total, done=progress.done
            )
        await self.report("syncing", progress=progress, force=True)

    def _end_progress(self, *, completed: bool) -> None:
        """The pass ended (``completed``, or by a failure or a stop): its counts start from zero and leave the
        worker's gauge. The caller's next report replaces a ``syncing`` already sent (``ok``, or the error)."""
        progress = self._progress
        if progress.reporting:
            elapsed = progress.elapsed()
            log.info(
                "catch-up done" if completed else "catch-up interrupted",
                mailbox_id=self.mailbox_id,
                messages=progress.done,
                of=progress.found,
                seconds=round(elapsed, 1),
                per_second=round(progress.done / elapsed, 1) if elapsed > 0 else None,
            )
        self.ctx.metrics.catchup_remaining.dec(progress.remaining)
        progress.finish()

    # ------------------------------------------------------------------------------------------ session

    # ------------------------------------------------------------------------------------------ backup pair

    def _servers_config(self) -> dict[str, Any]:
        """The config with the server pair in use: the recommended ``imap``/``smtp``/``credential``, or the
        provider's backup pair (``backup``, see :class:`~laifaxin_shared.events.mailbox.BackupServers`)."""
        backup = self.config.get("backup")
        if self._backup_since is None or not backup:
            return self.config
        return {
            **self.config,
            "imap": backup["imap"],
            "smtp": backup["smtp"],
            "credential": backup["credential"],
        }

    def _failover(self, error: MailError) -> MailError | None:
        """Decide what a failure of the pair in use means. Returns None when sync moves to the backup pair at
        once (the recommended pair answered ``backup_server_needed`` or could not be reached, and the mailbox has
        a backup pair): nothing is reported. Otherwise the error to report; when the backup pair failed the
        same way, its fix no longer says to switch to the backup servers, and the next attempt starts again at
        the recommended pair."""
        switchable = error.code is ErrorCode.BACKUP_SERVER_NEEDED or error.sync_state == "unreachable"
        if not switchable or not self.config.get("backup"):
            return error
        if self._backup_since is None:
            self._backup_since = time.monotonic()
            log.warning(
                "recommended servers failed; using the backup servers",
                mailbox_id=self.mailbox_id,
                code=error.code.value,
                backup_imap=self.config["backup"]["imap"]["host"],
            )
            return None
        self._backup_since = None
        return _both_pairs_failed(error)

    def _back_to_recommended_due(self) -> None:
        """Raise :class:`_BackToRecommended` when the backup pair has been used for ``backup_return_seconds``."""
        if (
            self._backup_since is not None
            and time.monotonic() - self._backup_since >= self.ctx.settings.backup_return_seconds
        ):
            raise _BackToRecommended

    async def _session(self, password: str, on_connected: Callable[[], None]) -> None:
        imap = self._servers_config()["imap"]
        s = self.ctx.settings
        self._slot = await self.ctx.start_gate.acquire(self._stop)
        if self._slot is None:
            raise Stopping
        await check_host(self.ctx, imap["host"])
        client = await connect_imap(
            imap["host"],
            int(imap["port"]),
            imap["security"],
            ssl_context=self.ctx.ssl_context,
            timeout=s.imap_timeout,
            keepalive=s.tcp_keepalive_seconds or None,
        )
        self.ctx.metrics.connections.inc()
        try:
            if self.config.get("auth") == "oauth2":
                # RFC 7628 / XOAUTH2 with the access token; a refusal raises sasl.OAuthAuthenticationError.
                login = await authenticate_oauth(
                    client,
                    self.config["email"],
                    password,
                    host=imap["host"],
                    port=int(imap["port"]),
                    timeout=s.imap_timeout,
                )
            else:
                login = await client.login(self.config["username"], password)
            if login.result != "OK":
                text = b" ".join(x for x in login.lines if isinstance(x, bytes)).decode("utf-8", "replace")
                raise MailServerError.from_error(
                    explain("imap", text or "NO", self.config.get("provider_id"), secrets=[password])
                )
            on_connected()
            if self.config.get("imap_id_required") and client.has_capability("ID"):
                await client.id(name="Laifaxin", version="1.0", vendor="Laifaxin")  # RFC 2971
            if client.has_capability("CONDSTORE") and client.has_capability("ENABLE"):
                await client.enable("CONDSTORE")
            await self._loop(client)
        finally:
            # a syncing already sent is replaced by the failure's report, or by the next pass's report
            self._end_progress(completed=False)
            self._sync = None
            self._count_user_folders(0)
            self._release_slot()
            self.ctx.metrics.connections.dec()
            await _close(client, s.imap_timeout)

    async def _list_folders(self, client: aioimaplib.IMAP4) -> tuple[Folder | None, list[Folder]] | None:
        """LIST every folder (RFC 3501 6.3.8): the Junk folder (None: there is none) and, with
        ``SYNC_USER_FOLDERS``, the user folders to poll (at most ``SYNC_MAX_USER_FOLDERS``, in LIST order).
        Returns None when the server refused the LIST.

        Raises:
            aioimaplib.AioImapException, OSError, TimeoutError: the connection failed.
        """
        reply = await client.list('""', "*")
        if reply.result != "OK":
            return None
        entries = parse_list(reply.lines)
        junk = find_junk(entries)
        others: list[Folder] = []
        s = self.ctx.settings
        if s.user_folders:
            found = find_user_folders(
                entries,
                junk=junk,
                special_use=client.has_capability("SPECIAL-USE"),
                limit=s.max_user_folders,
            )
            others = [Folder(e.name, quote_mailbox(e.name), "other") for e in found.chosen]
            self._log_left_out(found.left_out)
        return (None if junk is None else Folder(junk.name, quote_mailbox(junk.name), "junk")), others

    def _log_left_out(self, left_out: list[ListEntry]) -> None:
        """Log the user folders beyond ``SYNC_MAX_USER_FOLDERS`` once (again only when that set changes)."""
        names = tuple(e.name for e in left_out)
        if names and names != self._left_out_logged:
            log.warning(
                "user folders over the limit are not synced",
                mailbox_id=self.mailbox_id,
                limit=self.ctx.settings.max_user_folders,
                left_out=len(names),
                folders=list(names[:20]),
            )
        self._left_out_logged = names

    def _count_user_folders(self, count: int) -> None:
        """Set this loop's part of the ``sync_user_folders`` gauge (0 when its connection ends)."""
        self.ctx.metrics.user_folders.inc(count - self._user_folders_counted)
        self._user_folders_counted = count

    def _folder_sync(self) -> FolderSync:
        cfg = self.config
        s = self.ctx.settings
        assert self.lease is not None, "a folder is synced only under the lease"

        async def on_reset(folder: Folder, old: int, new: int) -> None:
            await self.report("uidvalidity_reset", folder=folder.name, force=True)

        return FolderSync(
            identity=MailboxIdentity(
                mailbox_id=self.mailbox_id,
                tenant_id=cfg["tenant_id"],
                user_id=cfg["user_id"],
                initial_window_days=int(cfg.get("sync", {}).get("initial_window_days", 30)),
            ),
            store=self.ctx.store,
            publisher=self.ctx.publisher,
            metrics=self.ctx.metrics,
            preparer=self.ctx.preparer,
            lease=self.lease,
            batch=s.fetch_batch,
            catchup_batch=s.catchup_batch,
            raw_max_bytes=s.raw_max_bytes,
            max_resets=s.uidvalidity_max_resets,
            reset_hold=s.uidvalidity_reset_hold_seconds,
            reset_hold_max=s.uidvalidity_reset_hold_max_seconds,
            guard=self.guard,
            on_reset=on_reset,
            known=self._take_known_cursors(),
            on_found=self._found,
            on_handled=self._handled,
        )

    def _take_known_cursors(self) -> list[Cursor] | None:
        known, self._known_cursors = self._known_cursors, None  # a later connection reads them afresh
        return known

    async def _examine(self, client: aioimaplib.IMAP4, folder: Folder, sync: FolderSync) -> None:
        reply = await examine(client, folder.command_name, self.ctx.settings.imap_timeout)
        if reply.result != "OK":
            text = b" ".join(x for x in reply.lines if isinstance(x, bytes)).decode("utf-8", "replace")
            raise ImapCommandError("EXAMINE", text[:500])
        await sync.sync_selected(client, folder, parse_select(reply.lines))

    async def _loop(self, client: aioimaplib.IMAP4) -> None:
        s = self.ctx.settings
        sync = self._sync = self._folder_sync()
        loop = asyncio.get_running_loop()
        junk, others = await self._list_folders(client) or (None, [])
        self._count_user_folders(len(others))
        list_due = loop.time() + s.folder_list_seconds
        use_idle = s.idle_enabled and client.has_capability("IDLE")
        notify_on = use_idle and s.imap_notify and await self._notify_set(client)
        junk_due = loop.time()
        inbox_due = loop.time()
        while True:
            self.guard()
            self._back_to_recommended_due()
            now = loop.time()
            mark = exists_notifications(client)
            if notify_on and _wire_names(junk, others) & take_notified_folders(client):
                junk_due = now  # NOTIFY: a polled folder changed while another command ran
            if now >= inbox_due or use_idle:
                await self._examine(client, INBOX, sync)
                inbox_due = now + self.interval
            selected = False  # another folder than INBOX was EXAMINEd (or its EXAMINE refused)
            if now >= junk_due:
                junk_due = now + self.interval
                if junk is None or (s.user_folders and now >= list_due):
                    listed = await self._list_folders(client)
                    if listed is not None:
                        junk, others = listed
                        list_due = now + s.folder_list_seconds
                if junk is not None:
                    outcome = await self._poll(client, junk, sync)
                    selected = outcome == "selected"
                    if outcome == "missing":
                        junk = None  # deleted or renamed: LIST again at the next poll
                for folder in list(others):
                    self.guard()
                    outcome = await self._poll(client, folder, sync)
                    selected = selected or outcome in ("selected", "refused")
                    if outcome == "missing":
                        list_due = now  # deleted or renamed: LIST again at the next poll
                    if outcome in ("missing", "refused"):
                        others.remove(folder)
                self._count_user_folders(len(others))
            await self._synced(sync)
            if use_idle and selected:
                continue  # re-EXAMINE INBOX before IDLE
            self.guard()
            self._started()
            self._established = True
            if not use_idle:
                await self._sleep(max(0.0, min(inbox_due, junk_due) - loop.time()))
                continue
            deadline = min(junk_due, loop.time() + s.idle_reissue_seconds)
            if await self._catch_up(client, sync, mark):
                await self._synced(sync)  # a pass of its own: its progress must not add up with the next one
            while True:
                wake = await self._idle(client, deadline, _wire_names(junk, others) if notify_on else set())
                if wake == "status":
                    junk_due = loop.time()  # NOTIFY pushed a change of a polled folder: poll them now
                    self.ctx.metrics.notify_wakeups.inc()
                if wake != "exists":
                    break
                self.guard()
                await self._catch_up(client, sync, None)
                await self._synced(sync)
            # "deadline": the poll of the other folders is due, or IDLE's re-issue; the next turn re-EXAMINEs
            # INBOX (catches UIDVALIDITY).

    async def _catch_up(self, client: aioimaplib.IMAP4, sync: FolderSync, mark: int | None) -> bool:
        """Fetch INBOX's new mail until no ``EXISTS`` arrived during the fetch (RFC 3501 7.3.1); returns
        whether it fetched at all.

        The server reports new mail as an untagged ``EXISTS`` during whatever command runs; aioimaplib drops
        those outside IDLE, and the server does not repeat them at the next IDLE. So before going back to
        IDLE, fetch again whenever an ``EXISTS`` came in since ``mark`` (None: fetch at least once).
        """
        fetched = False
        while mark is None or exists_notifications(client) != mark:
            mark = exists_notifications(client)
            self.guard()
            await sync.fetch_new(client, INBOX)
            fetched = True
        return fetched

    async def _poll(self, client: aioimaplib.IMAP4, folder: Folder, sync: FolderSync) -> str:
        """STATUS a polled folder (RFC 3501 6.3.10: UIDNEXT UIDVALIDITY MESSAGES, and HIGHESTMODSEQ with
        CONDSTORE, RFC 7162 3.1.2.2); EXAMINE and sync it when changed (:meth:`FolderSync.changed`).

        Returns ``selected`` (synced), ``unchanged``, ``missing`` (STATUS refused: deleted or renamed) or, for
        a user folder (role ``other``) only, ``refused`` (EXAMINE refused: nothing is selected now).

        Raises:
            ImapCommandError: EXAMINE of the Junk folder, or a command of its sync, was refused; as
                :meth:`FolderSync.sync_selected` otherwise.
        """
        items = "(UIDNEXT UIDVALIDITY MESSAGES" + (
            " HIGHESTMODSEQ)" if client.has_capability("CONDSTORE") else ")"
        )
        reply = await client.status(folder.command_name, items)
        if reply.result != "OK":
            log.info(
                f"{folder.role} folder status failed; will list again",
                mailbox_id=self.mailbox_id,
                folder=folder.name,
            )
            return "missing"
        if not await sync.changed(folder, parse_status(reply.lines)):
            return "unchanged"
        try:
            await self._examine(client, folder, sync)
        except ImapCommandError as exc:
            if folder.role != "other" or exc.command != "EXAMINE":
                raise
            log.warning(
                "user folder refused EXAMINE; skipped until the next LIST",
                mailbox_id=self.mailbox_id,
                folder=folder.name,
                server_text=redact_text(exc.text)[:300],
            )
            return "refused"
        return "selected"

    async def _notify_set(self, client: aioimaplib.IMAP4) -> bool:
        """Ask a server that advertises NOTIFY to push the other folders' changes (RFC 5465,
        :func:`~laifaxin_shared.imap.notify_set`); False when it does not or refuses (they are polled)."""
        if not client.has_capability("NOTIFY"):
            return False
        reply = await notify_set(client, self.ctx.settings.imap_timeout)
        if reply.result != "OK":
            text = b" ".join(x for x in reply.lines if isinstance(x, bytes)).decode("utf-8", "replace")
            log.info(
                "NOTIFY refused; other folders are polled", mailbox_id=self.mailbox_id, server_text=text[:300]
            )
            return False
        return True

    async def _idle(self, client: aioimaplib.IMAP4, deadline: float, pushed: set[str]) -> str:
        """IDLE (RFC 2177) until new mail (``exists``), a NOTIFY ``STATUS`` naming one of the ``pushed`` folders
        (wire names; ``status``), ``deadline`` (loop time) or a stop; then DONE."""
        loop = asyncio.get_running_loop()
        timeout = max(0.05, deadline - loop.time())
        idle = await client.idle_start(timeout=timeout)
        self.ctx.metrics.idle_connections.inc()
        stop = asyncio.ensure_future(self._stop.wait())
        push: asyncio.Future[Any] | None = None
        try:
            while True:
                push = asyncio.ensure_future(client.wait_server_push(timeout=timeout + 5))
                done, _ = await asyncio.wait({push, stop, idle}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    return "stop"
                if idle in done:
                    idle.result()  # ImapConnectionClosedError (with the server's BYE) when the connection closed
                    raise ConnectionError("IDLE ended by the server")
                try:
                    lines = push.result()
                except TimeoutError:
                    return "deadline"
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH or loop.time() >= deadline:
                    return "deadline"
                if has_exists(lines):
                    return "exists"
                if pushed and any(status_mailbox(x) in pushed for x in lines if isinstance(x, bytes)):
                    return "status"
        finally:
            self.ctx.metrics.idle_connections.dec()
            for fut in (push, stop):
                if fut is not None and not fut.done():
                    fut.cancel()
            if not idle.done():
                client.idle_done()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(idle, self.ctx.settings.imap_timeout)


def _wire_names(junk: Folder | None, others: list[Folder]) -> set[str]:
    """The polled folders' names as the server writes them (modified UTF-7, RFC 3501 5.1.3)."""
    folders = ([junk] if junk is not None else []) + others
    return {imap_utf7.encode(f.name).decode("ascii") for f in folders}


def _aware(at: Any) -> datetime | None:
    """A stored time as aware UTC (None stays None; a naive one is UTC, as written)."""
    if not isinstance(at, datetime):
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def examine(client: aioimaplib.IMAP4, mailbox: str, timeout: float) -> aioimaplib.Response:
    """EXAMINE (RFC 3501 6.3.2: SELECT read-only, so nothing we do can change flags).

    aioimaplib's ``examine()`` does not move its state machine to SELECTED (its ``select()`` does), so later
    UID commands would be refused locally; this runs the command the way ``select()`` does.
    """
    protocol = client.protocol
    command = aioimaplib.Command("EXAMINE", protocol.new_tag(), mailbox, loop=protocol.loop)
    reply: aioimaplib.Response = await asyncio.wait_for(protocol.execute(command), timeout)
    if reply.result == "OK":
        protocol.state = aioimaplib.SELECTED
    return reply


async def _close(client: aioimaplib.IMAP4, timeout: float) -> None:
    """LOGOUT politely; on failure or cancellation close the socket (never leave it open)."""
    try:
        await asyncio.wait_for(client.logout(), min(timeout, 5.0))
    except (TimeoutError, OSError, aioimaplib.AioImapException):
        _abort(client)
    except asyncio.CancelledError:
        _abort(client)
        raise


def _abort(client: aioimaplib.IMAP4) -> None:
    transport = client.protocol.transport if client.protocol is not None else None
    if transport is not None:
        transport.close()


class _BackToRecommended(Exception):  # a control-flow signal, not an error
    """The backup pair was used long enough: end the session and connect to the recommended pair again."""


BOTH_PAIRS_MESSAGE = Text(
    en="Neither the recommended nor the backup servers accept this mailbox's domain (ERR.LOGIN.DOMAINNOTEXIST).",
    zh="推荐服务器和备用服务器都不认识该邮箱的域名（ERR.LOGIN.DOMAINNOTEXIST）。",
)
BOTH_PAIRS_FIX = Text(
    en="Neither the recommended nor the backup servers accept this mailbox: check that the domain has a NetEase "
    "enterprise mailbox and that its servers are reachable from here (or ask the mail admin); Laifaxin keeps "
    "retrying both.",
    zh="推荐服务器和备用服务器都无法使用：请确认该域名已开通网易企业邮箱、服务器可以访问（或联系邮箱管理员）；"
    "来发信会继续重试两组服务器。",
)


def _both_pairs_failed(error: MailError) -> MailError:
    """``error`` as reported when the backup pair failed too: a ``backup_server_needed`` fix would send the user
    to the servers that just failed, so it is replaced."""
    if error.code is ErrorCode.BACKUP_SERVER_NEEDED:
        return dataclasses.replace(error, message=BOTH_PAIRS_MESSAGE, fix=BOTH_PAIRS_FIX, backup_servers=())
    return error
