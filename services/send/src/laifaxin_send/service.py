"""The send service's domain logic: commands in, paced submission, outcomes out; the mailbox copy; the guard.

Every command goes the same way, whether it came from Kafka or from the HTTP API (which publishes it to
``mail.send``):

1. :meth:`SendService.accept` (the ``mail.send`` handler) stores it once under ``<tenant>/<command_id>`` (a
   redelivery finds it stored and changes nothing) with its due time from the pacing (:mod:`laifaxin_send.pacing`)
   and state ``queued``, or ``deferred`` when today's cap is used up or campaigns of the mailbox are paused.
   The Kafka offset is committed after that, so a stored command is never lost.
2. :meth:`SendService.dispatch_once` claims due commands (``sending``, written before any connection, with a
   lease) and submits them (:class:`laifaxin_send.smtp.SmtpPool`); the phase ``data`` is written just before
   DATA.
3. The outcome: ``250`` -> phase ``accepted`` written, Sent copy (:mod:`laifaxin_send.sentcopy`), ``mail.sent``,
   state ``sent``. A refusal -> ``failed`` and ``mail.send_failed``. A 4xx -> ``queued`` again after a backoff (at
   most ``SEND_RATE_LIMIT_MAX_ATTEMPTS`` submissions). Daily quota reached -> ``deferred`` to the next day.
   Connection lost after DATA -> the Message-ID is looked up in the Sent folder: ``sent`` when found, else
   ``unknown`` and ``mail.send_failed`` (never a blind resend).
4. A claim whose lease ran out (the worker died) is resolved by its phase: before DATA it is queued again
   (nothing was handed over); in DATA it is settled by the Sent-folder lookup as above; after the 250 it is
   finished (copy, ``mail.sent``) without submitting again.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from laifaxin_send.errors import refusal
from laifaxin_send.message import MessageError, build_message, message_id_for
from laifaxin_send.pacing import Clock, bound_days, day_start, local_day, plan_for
from laifaxin_send.sentcopy import ImapTarget, SentCopyError, SentFolder
from laifaxin_send.settings import SendSettings
from laifaxin_send.smtp import Outcome, SmtpPool, Target
from laifaxin_send.store import OPEN_STATES, SendStore, command_key
from laifaxin_shared.crypto import CredentialContext, CredentialError, KeyRing
from laifaxin_shared.events import (
    EmailAddress,
    EncryptedCredential,
    Envelope,
    MailboxRemoved,
    MailboxSyncStatus,
    MailboxUpdated,
    MailboxVerified,
    MailClassified,
    MailSent,
    SendCommand,
    SendFailed,
    SendStatus,
)
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mongo import Document
from laifaxin_shared.providers.catalog import find_provider
from laifaxin_shared.providers.errors import ErrorCode, MailError, make_error
from laifaxin_shared.replytoken import ReplyTokens

log = get_logger(__name__)

EVENT_NAMESPACE = uuid.UUID("6f1d7a52-3c0e-4b7a-9a55-2f4e8c1d0b93")
"""UUID5 namespace of the event ids send derives from a command (a re-publish carries the same id)."""

Publish = Callable[[Envelope], Awaitable[Any]]


def open_credential(keyring: KeyRing, mailbox: Document) -> str:
    """The mailbox's password, opened from its sealed envelope exactly as sync opens it: for the very servers and
    logins send connects with (the v2 associated data binds tenant, mailbox, IMAP and SMTP host/port/security/
    login: a ``mailbox.verified`` that points a real envelope at other servers fails here, before any connection).

    The one place send decrypts a credential.

    Raises:
        laifaxin_shared.crypto.CredentialError: unknown key id, or the envelope does not authenticate for these
            servers; KeyError: the stored mailbox lacks a field.
    """
    envelope = EncryptedCredential.model_validate(mailbox["credential"])
    return keyring.open_mailbox(envelope, CredentialContext.of(mailbox))


def event_id(key: str, what: str) -> uuid.UUID:
    """The id of the ``what`` event of command ``key`` (``sent``, ``failed``)."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{key}:{what}")


class SendService:
    """Send's domain logic over its store, the SMTP pool, the Sent folder and a publisher.

    Args:
        settings: the service's settings.
        store: send's database.
        pool: SMTP sessions.
        sent_folder: IMAP access for Sent copies and lookups.
        publish: sends an event to its registry topic (keyed by mailbox id, acknowledged).
        keyring: the credential key ring (as sync's).
        reply_tokens: signer of system-mailbox reply tokens.
        clock: where "now" comes from.
        rng: randomness of the spacing (seeded in tests).
    """

    def __init__(
        self,
        settings: SendSettings,
        store: SendStore,
        pool: SmtpPool,
        sent_folder: SentFolder,
        publish: Publish,
        keyring: KeyRing,
        reply_tokens: ReplyTokens | None,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.sent_folder = sent_folder
        self.publish = publish
        self.keyring = keyring
        self.reply_tokens = reply_tokens
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311  # spacing jitter, not security
        self.wake = asyncio.Event()
        self._inflight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(settings.concurrency)
        self._last_guard_check: datetime | None = None
        self._last_orphan_scan: datetime | None = None
        self.autostart = True
        """Start a command due at once as soon as it is accepted (False: only :meth:`dispatch_once` starts
        commands, as when a test drives the dispatcher with a manual clock)."""

    # ------------------------------------------------------------------ mailbox copy

    async def on_verified(self, event: MailboxVerified) -> None:
        """Store (or refresh) the mailbox: servers, login, sealed credential, provider."""
        fields = {
            "tenant_id": event.tenant_id,
            "user_id": event.user_id,
            "email": event.email,
            "nickname": event.nickname,
            "provider_id": event.provider_id,
            "username": event.username,
            "smtp_username": event.smtp_username,
            "imap": event.imap.model_dump(mode="json"),
            "smtp": event.smtp.model_dump(mode="json"),
            "credential": event.credential.model_dump(mode="json"),
            "imap_id_required": event.imap_id_required,
            "is_system": event.is_system,
        }
        if await self.store.upsert_mailbox(event.mailbox_id, event.occurred_at, fields):
            await self.pool.drop(event.mailbox_id)
            self.wake.set()

    async def on_updated(self, event: MailboxUpdated) -> None:
        await self.store.update_mailbox(event.mailbox_id, event.occurred_at, {"nickname": event.nickname})

    async def on_removed(self, event: MailboxRemoved) -> None:
        """Forget the mailbox's login (its queued commands then fail with mailbox_unknown)."""
        await self.store.update_mailbox(
            event.mailbox_id, event.occurred_at, {"removed": True, "credential": None}
        )
        await self.pool.drop(event.mailbox_id)

    # ------------------------------------------------------------------ commands in

    async def accept_many(self, commands: list[SendCommand]) -> None:
        """:meth:`accept` a batch: mailboxes in parallel, the commands of one mailbox in their order (its
        pacing has one writer: the worker that owns its ``mail.send`` partition)."""
        by_mailbox: dict[str, list[SendCommand]] = {}
        for command in commands:
            by_mailbox.setdefault(command.mailbox_id, []).append(command)

        async def one_mailbox(items: list[SendCommand]) -> None:
            for command in items:
                await self.accept(command)

        await asyncio.gather(*(one_mailbox(items) for items in by_mailbox.values()))

    async def accept(self, command: SendCommand) -> Document:
        """Store a command once and schedule it; returns its document (the stored one for a redelivery)."""
        key = command_key(command.tenant_id, command.command_id)
        existing = await self.store.command(key)
        if existing is not None:
            return existing
        now = self.clock.now()
        start = max(now, command.not_before or now)
        doc: Document = {
            "_id": key,
            "tenant_id": command.tenant_id,
            "user_id": command.user_id,
            "command_id": command.command_id,
            "mailbox_id": command.mailbox_id,
            "kind": command.kind,
            "campaign_id": command.campaign_id,
            "command": command.model_dump(mode="json", by_alias=True),
            "state": "queued",
            "due_at": start,
            "reason": None,
            "attempts": 0,
            "retries": 0,
            "created_at": now,
            "updated_at": now,
        }
        mailbox = await self.store.mailbox(command.mailbox_id)
        if mailbox is not None:
            doc.update(await self._schedule(mailbox, command, start))
        else:
            doc["reason"] = "mailbox_unknown"  # scheduled once its mailbox.verified arrives
        if await self.store.insert_command(doc):
            log.info(
                "command accepted",
                command_id=command.command_id,
                mailbox_id=command.mailbox_id,
                kind=command.kind,
                state=doc["state"],
                due_at=doc["due_at"].isoformat() if doc["due_at"] else None,
            )
            if (
                self.autostart
                and doc["state"] == "queued"
                and doc["due_at"] is not None
                and doc["due_at"] <= now
            ):
                self.submit_now(doc)  # due at once: no store query between accepting and sending
            return doc
        stored = await self.store.command(key)
        assert stored is not None
        return stored

    async def _schedule(self, mailbox: Document, command: SendCommand, start: datetime) -> dict[str, Any]:
        """State, due time and reason of a command of ``mailbox`` not sent before ``start``; reserves its
        place in that day's cap (and moves the day's next campaign slot by the spacing)."""
        if command.kind == "campaign" and mailbox.get("sending_paused"):
            return {"state": "deferred", "due_at": None, "reason": "sending_paused"}
        if not self.settings.pacing:
            return {"state": "queued", "due_at": start, "reason": None}
        zone = self.settings.zone
        provider = find_provider(mailbox.get("provider_id"))
        amount = (
            len(command.recipients())
            if provider is not None and provider.sending is not None and provider.sending.unit == "recipients"
            else 1
        )
        first = day = local_day(start, zone)
        for _ in range(3660):
            plan = plan_for(provider, bound_days(mailbox.get("bound_at"), day, zone))
            booked = await self.store.day(mailbox["_id"], day)
            if booked.get("full") or (
                plan.daily_cap is not None and booked["reserved"] + amount > plan.daily_cap
            ):
                day += timedelta(days=1)
                continue
            earliest = max(start, day_start(day, zone))
            if command.kind == "campaign" and booked.get("next_slot_at") is not None:
                earliest = max(earliest, booked["next_slot_at"])
            if local_day(earliest, zone) != day:
                day += timedelta(days=1)
                continue
            next_slot = None
            if command.kind == "campaign":
                gap = self.rng.uniform(plan.min_spacing_seconds, plan.max_spacing_seconds)
                next_slot = earliest + timedelta(seconds=gap)
            for _ in range(amount):
                await self.store.reserve(mailbox["_id"], day, next_slot)
            if day != first:
                return {"state": "deferred", "due_at": earliest, "reason": "daily_cap"}
            return {"state": "queued", "due_at": earliest, "reason": None}
        raise RuntimeError("no sending day found within ten years")  # a cap of 0 cannot be configured

    async def status(self, tenant_id: str, command_id: str) -> SendStatus | None:
        """The state of a command of ``tenant_id``; None when there is none."""
        doc = await self.store.command(command_key(tenant_id, command_id))
        return status_of(doc) if doc is not None else None

    # ------------------------------------------------------------------ dispatch

    async def run(self) -> None:
        """Dispatch until cancelled: woken by new commands, else every ``SEND_POLL_SECONDS``."""
        while True:
            try:
                await self.dispatch_once()
                await self.pool.reap()
            except Exception as exc:  # noqa: BLE001  # the loop must outlive a store hiccup; logged, retried
                log.warning("dispatch failed; retrying", error=repr(exc)[:300])
            try:
                async with asyncio.timeout(self.settings.poll_seconds):
                    await self.wake.wait()
            except TimeoutError:
                pass
            self.wake.clear()

    def submit_now(self, doc: Document) -> bool:
        """Start processing a due command unless it is under way in this worker; True when started."""
        if doc["_id"] in self._inflight:
            return False
        self._inflight.add(doc["_id"])
        self._start(self._process(doc), key=doc["_id"])
        return True

    async def dispatch_once(self, *, wait: bool = False) -> int:
        """Start every due command (and, at most every quarter of the claim lease, resolve orphaned claims);
        with ``wait``, until they end. Returns how many were started. Commands due when they arrive are
        started by :meth:`accept` itself; this pass finds the ones whose time came (spacing, next day, backoff)
        and those a dead worker left."""
        now = self.clock.now()
        started = 0
        orphan_every = timedelta(seconds=min(30.0, self.settings.claim_lease_seconds / 4))
        if wait or self._last_orphan_scan is None or now - self._last_orphan_scan >= orphan_every:
            self._last_orphan_scan = now
            for doc in await self.store.orphans(now):
                if doc["_id"] not in self._inflight:
                    self._start(self._recover(doc))
                    started += 1
        for doc in await self.store.due(now, limit=self.settings.concurrency * 4):
            started += self.submit_now(doc)
        if self._last_guard_check is None or now - self._last_guard_check > timedelta(minutes=1):
            self._last_guard_check = now
            for mailbox in await self.store.paused_mailboxes():
                await self.evaluate_guard(mailbox["_id"])
        if wait:
            await self.drain()
        return started

    def _start(self, work: Awaitable[None], key: str | None = None) -> None:
        async def run() -> None:
            try:
                async with self._limit:
                    await work
            except Exception as exc:  # noqa: BLE001  # one command's trouble must not stop the others
                log.error("command processing failed", key=key, error=repr(exc)[:300])
            finally:
                if key is not None:
                    self._inflight.discard(key)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every command under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _claim(self, doc: Document) -> Document | None:
        now = self.clock.now()
        fields = {
            "state": "sending",
            "claimed_by": self.settings.worker_id,
            "lease_until": now + timedelta(seconds=self.settings.claim_lease_seconds),
            "phase": "claimed",
            "updated_at": now,
            "built_at": doc.get("built_at") or now,
        }
        return await self.store.claim(doc["_id"], doc["state"], fields)

    async def _process(self, doc: Document) -> None:
        claimed = await self._claim(doc)
        if claimed is None:
            return
        key = claimed["_id"]
        command = SendCommand.model_validate(claimed["command"])
        now = self.clock.now()
        mailbox = await self.store.mailbox(command.mailbox_id)
        if mailbox is None:
            if now - claimed["created_at"] > timedelta(seconds=self.settings.mailbox_wait_seconds):
                await self._refuse(claimed, command, "mailbox_unknown")
            else:
                wait = min(30.0, self.settings.mailbox_wait_seconds / 4 or 1.0)
                await self._requeue(key, now + timedelta(seconds=wait), "mailbox_unknown", "queued")
            return
        if mailbox["tenant_id"] != command.tenant_id and not mailbox.get("is_system"):
            await self._refuse(claimed, command, "mailbox_not_owned")
            return
        if claimed.get("reason") == "mailbox_unknown":
            # the mailbox arrived after the command: schedule it now that its pacing is known
            scheduled = await self._schedule(mailbox, command, max(now, command.not_before or now))
            if scheduled["due_at"] is None or scheduled["due_at"] > now:
                await self._requeue(key, scheduled["due_at"], scheduled["reason"], scheduled["state"])
                return
        if command.kind == "campaign" and mailbox.get("sending_paused"):
            await self._requeue(key, None, "sending_paused", "deferred")
            return
        if any(a.content_ref is not None for a in command.attachments):
            await self._refuse(claimed, command, "attachment_unsupported")
            return
        try:
            password = open_credential(self.keyring, mailbox)
        except CredentialError as exc:
            log.error("credential not opened", mailbox_id=mailbox["_id"], error=type(exc).__name__)
            await self._refuse(claimed, command, "credential_unreadable")
            return
        target = Target(
            mailbox_id=mailbox["_id"],
            host=mailbox["smtp"]["host"],
            port=int(mailbox["smtp"]["port"]),
            security=mailbox["smtp"]["security"],
            username=mailbox.get("smtp_username") or mailbox["username"],
            password=password,
            provider_id=mailbox.get("provider_id"),
        )
        built_at: datetime = claimed["built_at"]
        message_id = message_id_for(command.tenant_id, command.command_id, mailbox["email"])
        token: list[str | None] = [None]

        def build(smtputf8: bool) -> bytes:
            built = build_message(
                command,
                mailbox_email=mailbox["email"],
                now=built_at,
                system_mailbox=bool(mailbox.get("is_system")),
                reply_tokens=self.reply_tokens,
                smtputf8=smtputf8,
            )
            token[0] = built.reply_token
            return built.data

        async def before_data() -> None:
            await self.store.update_command(
                key,
                {
                    "phase": "data",
                    "message_id": message_id,
                    "reply_token": token[0],
                    "updated_at": self.clock.now(),
                },
                owner=self.settings.worker_id,
            )

        try:
            outcome = await self.pool.submit(
                target, mailbox["email"], command.recipients(), build, before_data
            )
        except MessageError as exc:
            log.info("message not built", command_id=command.command_id, error=str(exc))
            await self._refuse(claimed, command, "address_needs_smtputf8")
            return
        await self._settle(claimed, command, mailbox, password, outcome, message_id, token[0])

    async def _settle(
        self,
        doc: Document,
        command: SendCommand,
        mailbox: Document,
        password: str,
        outcome: Outcome,
        message_id: str,
        reply_token: str | None,
    ) -> None:
        key = doc["_id"]
        now = self.clock.now()
        refused = {r: e.code.value for r, e in outcome.refused.items()}
        if outcome.status == "accepted":
            accepted = {
                "phase": "accepted",
                "message_id": message_id,
                "reply_token": reply_token,
                "provider_message_id": outcome.provider_message_id,
                "smtp_reply": outcome.reply,
                "refused": refused,
                "sent_at": now,
                "updated_at": now,
            }
            await self.store.update_command(key, accepted, owner=self.settings.worker_id)
            await self._finish_sent({**doc, **accepted}, command, mailbox, password)
            return
        error = outcome.error or make_error(ErrorCode.UNKNOWN, protocol="smtp")
        if outcome.status == "unknown":
            await self._resolve_in_doubt(doc, command, mailbox, password, message_id, error)
            return
        if outcome.status == "retry" and error.code is ErrorCode.DAILY_QUOTA_REACHED:
            today = local_day(now, self.settings.zone)
            await self.store.mark_full(mailbox["_id"], today)
            tomorrow = day_start(today + timedelta(days=1), self.settings.zone)
            scheduled = await self._schedule(mailbox, command, max(tomorrow, now))
            await self._requeue(key, scheduled["due_at"], "daily_quota_reached", "deferred", error=error)
            log.info(
                "daily quota reached; deferred", command_id=command.command_id, mailbox_id=mailbox["_id"]
            )
            return
        retries = int(doc.get("retries", 0)) + 1
        if outcome.status == "retry" and retries < self.settings.rate_limit_max_attempts:
            delay = self.settings.rate_limit_retry_seconds * 2 ** (retries - 1)
            await self._requeue(
                key, now + timedelta(seconds=delay), error.code.value, "queued", error=error, retries=retries
            )
            return
        await self._fail(
            doc, command, error, outcome.stage, outcome.smtp_code, list(outcome.refused), message_id
        )
        if error.sync_state == "auth_failed":
            await self._report(mailbox, "auth_failed", error)

    async def _finish_sent(
        self, doc: Document, command: SendCommand, mailbox: Document, password: str
    ) -> None:
        """After a 250: the Sent copy (where the provider files none itself), ``mail.sent``, state ``sent``."""
        key = doc["_id"]
        provider = find_provider(mailbox.get("provider_id"))
        files_copy = bool(
            provider is not None and provider.sending is not None and provider.sending.files_sent_copy
        )
        if self.settings.sent_copy and not files_copy and not doc.get("copied"):
            await self._append_copy(doc, command, mailbox, password)
        sent = MailSent(
            event_id=event_id(key, "sent"),
            tenant_id=command.tenant_id,
            user_id=command.user_id,
            mailbox_id=command.mailbox_id,
            system_mailbox=bool(mailbox.get("is_system")),
            message_id=doc["message_id"],
            provider_message_id=doc.get("provider_message_id"),
            from_=EmailAddress(name=command.from_name, email=mailbox["email"]),
            to=command.to,
            cc=command.cc,
            bcc=command.bcc,
            subject=command.subject,
            kind=command.kind,
            campaign_id=command.campaign_id,
            command_id=command.command_id,
            in_reply_to=command.in_reply_to.strip("<> ") if command.in_reply_to else None,
            references=[r.strip("<> ") for r in command.references],
            reply_token=doc.get("reply_token"),
            sent_at=doc.get("sent_at") or self.clock.now(),
        )
        await self.publish(sent)
        await self.store.update_command(
            key, {"state": "sent", "phase": "done", "updated_at": self.clock.now()}
        )
        log.info(
            "sent",
            command_id=command.command_id,
            mailbox_id=command.mailbox_id,
            message_id=doc["message_id"],
            provider_message_id=doc.get("provider_message_id"),
        )

    def _imap_target(self, mailbox: Document, password: str) -> ImapTarget:
        return ImapTarget(
            host=mailbox["imap"]["host"],
            port=int(mailbox["imap"]["port"]),
            security=mailbox["imap"]["security"],
            username=mailbox["username"],
            password=password,
            imap_id_required=bool(mailbox.get("imap_id_required")),
            provider_id=mailbox.get("provider_id"),
        )

    async def _append_copy(
        self, doc: Document, command: SendCommand, mailbox: Document, password: str
    ) -> None:
        """APPEND the sent bytes to Sent; a failure is logged and recorded, never a reason to resend."""
        built = build_message(
            command,
            mailbox_email=mailbox["email"],
            now=doc["built_at"],
            system_mailbox=bool(mailbox.get("is_system")),
            reply_tokens=self.reply_tokens,
            smtputf8=False,
        )
        try:
            folder = await self.sent_folder.append(
                self._imap_target(mailbox, password), built.data, doc["built_at"]
            )
        except (SentCopyError, MessageError, OSError, TimeoutError) as exc:
            log.warning("sent copy not saved", command_id=command.command_id, error=str(exc)[:200])
            await self.store.update_command(doc["_id"], {"copied": False, "copy_error": str(exc)[:200]})
            return
        await self.store.update_command(doc["_id"], {"copied": True, "copy_folder": folder})

    async def _resolve_in_doubt(
        self,
        doc: Document,
        command: SendCommand,
        mailbox: Document,
        password: str,
        message_id: str,
        error: MailError,
    ) -> None:
        """An outcome in doubt: ``sent`` when the Sent folder holds the Message-ID, else ``unknown``."""
        found: bool | None
        try:
            found = await self.sent_folder.contains(self._imap_target(mailbox, password), message_id)
        except (SentCopyError, OSError, TimeoutError) as exc:
            log.warning("sent folder lookup failed", command_id=command.command_id, error=str(exc)[:200])
            found = None
        if found:
            found_fields = {
                "phase": "accepted",
                "message_id": message_id,
                "sent_at": self.clock.now(),
                "copied": True,
                "found_in_sent": True,
            }
            await self.store.update_command(doc["_id"], found_fields)
            await self._finish_sent({**doc, **found_fields}, command, mailbox, password)
            return
        await self._fail(doc, command, error, "sent_check", None, [], message_id, state="unknown")

    async def _recover(self, doc: Document) -> None:
        """An orphaned claim: requeue (before DATA), settle by Sent lookup (in DATA), or finish (after 250)."""
        now = self.clock.now()
        taken = await self.store.reclaim(
            doc["_id"],
            doc["lease_until"],
            {
                "claimed_by": self.settings.worker_id,
                "lease_until": now + timedelta(seconds=self.settings.claim_lease_seconds),
                "updated_at": now,
            },
        )
        if taken is None:
            return
        phase = taken.get("phase")
        log.info("recovering orphaned command", command_id=taken["command_id"], phase=phase)
        if phase in (None, "claimed"):
            await self._requeue(taken["_id"], now, None, "queued")
            return
        command = SendCommand.model_validate(taken["command"])
        mailbox = await self.store.mailbox(command.mailbox_id)
        message_id = taken.get("message_id") or message_id_for(
            command.tenant_id, command.command_id, mailbox["email"] if mailbox else ""
        )
        if mailbox is None:
            error = make_error(ErrorCode.UNKNOWN_OUTCOME, protocol="smtp", rule="orphan_mailbox_removed")
            await self._fail(taken, command, error, "sent_check", None, [], message_id, state="unknown")
            return
        password = open_credential(self.keyring, mailbox)
        if phase == "accepted":
            await self._finish_sent(taken, command, mailbox, password)
            return
        error = make_error(
            ErrorCode.UNKNOWN_OUTCOME,
            protocol="smtp",
            provider_id=mailbox.get("provider_id"),
            server_text="the worker stopped while the message data was being sent",
            rule="orphan_in_data",
        )
        await self._resolve_in_doubt(taken, command, mailbox, password, message_id, error)

    async def _requeue(
        self,
        key: str,
        due_at: datetime | None,
        reason: str | None,
        state: str,
        *,
        error: MailError | None = None,
        retries: int | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "state": state,
            "due_at": due_at,
            "reason": reason,
            "phase": None,
            "claimed_by": None,
            "lease_until": None,
            "updated_at": self.clock.now(),
        }
        if error is not None:
            fields["last_error"] = error.to_dict()
        if retries is not None:
            fields["retries"] = retries
        await self.store.update_command(key, fields)

    async def _refuse(self, doc: Document, command: SendCommand, code: str) -> None:
        refused = refusal(code)
        error = MailError(code=ErrorCode.UNKNOWN, message=refused.message, fix=refused.fix)
        await self._fail(doc, command, error, "validate", None, [], None, code=code)

    async def _fail(
        self,
        doc: Document,
        command: SendCommand,
        error: MailError,
        stage: Any,
        smtp_code: int | None,
        refused: list[str],
        message_id: str | None,
        *,
        state: str = "failed",
        code: str | None = None,
    ) -> None:
        key = doc["_id"]
        now = self.clock.now()
        info = {**error.to_dict(), "code": code or error.code.value, "stage": stage, "smtp_code": smtp_code}
        await self.store.update_command(
            key,
            {
                "state": state,
                "phase": "done",
                "error": info,
                "refused": refused,
                "message_id": message_id,
                "updated_at": now,
                "lease_until": None,
            },
        )
        failed = SendFailed(
            event_id=event_id(key, "failed"),
            tenant_id=command.tenant_id,
            user_id=command.user_id,
            command_id=command.command_id,
            mailbox_id=command.mailbox_id,
            state="unknown" if state == "unknown" else "failed",
            code=code or error.code.value,
            message=error.message.en[:2000],
            fix=error.fix.en[:2000],
            message_zh=error.message.zh[:2000],
            fix_zh=error.fix.zh[:2000],
            server_text=error.server_text,
            smtp_code=smtp_code,
            stage=stage,
            retryable=error.retryable,
            refused_recipients=refused,
            kind=command.kind,
            campaign_id=command.campaign_id,
            message_id=message_id,
        )
        await self.publish(failed)
        log.info(
            "send failed" if state == "failed" else "send outcome unknown",
            command_id=command.command_id,
            mailbox_id=command.mailbox_id,
            code=failed.code,
            stage=stage,
            server_text=error.server_text,
        )

    # ------------------------------------------------------------------ bounce-rate guard

    async def on_classified(self, event: MailClassified) -> None:
        """Count a bounce matched to mail a mailbox sent (soft bounces, RFC 3464 ``Action: delayed``-like 4.x.x,
        are not counted), then evaluate the mailbox's guard."""
        if event.category != "bounce" or event.match is None:
            return
        mailbox_id = event.match.sent_mailbox_id
        if await self.store.mailbox(mailbox_id) is None:
            return
        if event.bounce is not None and event.bounce.kind == "soft":
            return
        added = await self.store.add_bounce(
            str(event.event_id),
            mailbox_id,
            self.clock.now(),
            {"message_id": event.match.sent_message_id, "recipient": event.match.recipient},
        )
        if added:
            await self.evaluate_guard(mailbox_id)

    async def bounce_rate(self, mailbox_id: str) -> tuple[int, int, float]:
        """(sends, bounces, rate) of the guard's window (since the last manual resume at the earliest)."""
        mailbox = await self.store.mailbox(mailbox_id)
        since = self.clock.now() - timedelta(days=self.settings.bounce_window_days)
        if mailbox is not None and mailbox.get("guard_reset_at") and mailbox["guard_reset_at"] > since:
            since = mailbox["guard_reset_at"]
        sends = await self.store.sent_count(mailbox_id, since)
        bounces = await self.store.bounce_count(mailbox_id, since)
        return sends, bounces, (bounces / sends if sends else 0.0)

    async def evaluate_guard(self, mailbox_id: str) -> bool:
        """Pause campaign sending when the bounce rate is over ``SEND_BOUNCE_RATE_MAX`` with at least
        ``SEND_BOUNCE_MIN_SENDS`` sends in the window, resume when it no longer is; True when paused."""
        mailbox = await self.store.mailbox(mailbox_id)
        if mailbox is None:
            return False
        sends, bounces, rate = await self.bounce_rate(mailbox_id)
        over = sends >= self.settings.bounce_min_sends and rate > self.settings.bounce_rate_max
        now = self.clock.now()
        if over and await self.store.set_paused(mailbox_id, True, now, pause_rate=rate):
            log.warning(
                "campaign sending paused", mailbox_id=mailbox_id, sends=sends, bounces=bounces, rate=rate
            )
            error = make_error(
                ErrorCode.SENDING_PAUSED, protocol="smtp", provider_id=mailbox.get("provider_id")
            )
            await self._report(mailbox, "error", error)
        elif not over and mailbox.get("sending_paused"):
            await self._resume(mailbox, now)
        return over

    async def resume(self, tenant_id: str, mailbox_id: str) -> bool:
        """A user or operator resumes campaign sending: the guard's window restarts now. False when the
        mailbox is not the tenant's."""
        mailbox = await self.store.mailbox(mailbox_id)
        if mailbox is None or mailbox["tenant_id"] != tenant_id:
            return False
        now = self.clock.now()
        await self.store.update_mailbox(mailbox_id, mailbox["config_at"], {"guard_reset_at": now})
        if mailbox.get("sending_paused"):
            await self._resume(mailbox, now)
        return True

    async def _resume(self, mailbox: Document, now: datetime) -> None:
        if not await self.store.set_paused(mailbox["_id"], False, now):
            return
        log.info("campaign sending resumed", mailbox_id=mailbox["_id"])
        fresh = await self.store.mailbox(mailbox["_id"]) or mailbox
        for doc in await self.store.paused_campaigns(mailbox["_id"]):
            command = SendCommand.model_validate(doc["command"])
            scheduled = await self._schedule(fresh, command, max(now, command.not_before or now))
            await self.store.update_command(doc["_id"], {**scheduled, "updated_at": now})
        await self._report(fresh, "ok", None)
        self.wake.set()

    async def _report(self, mailbox: Document, state: str, error: MailError | None) -> None:
        """``mailbox.sync_status`` with source ``send``."""
        fields: dict[str, Any] = error.sync_status_fields() if error is not None else {}
        fields["state"] = state
        await self.publish(
            MailboxSyncStatus(
                tenant_id=mailbox["tenant_id"], mailbox_id=mailbox["_id"], source="send", **fields
            )
        )


def status_of(doc: Document) -> SendStatus:
    """The API view of a command document."""
    return SendStatus(
        command_id=doc["command_id"],
        mailbox_id=doc["mailbox_id"],
        kind=doc["kind"],
        state=doc["state"]
        if doc["state"] in (*OPEN_STATES, "sending", "sent", "failed", "unknown")
        else "queued",
        due_at=doc.get("due_at") if doc["state"] in OPEN_STATES else None,
        reason=doc.get("reason") if doc["state"] in OPEN_STATES else None,
        message_id=doc.get("message_id"),
        provider_message_id=doc.get("provider_message_id"),
        attempts=int(doc.get("attempts", 0)),
        error=doc.get("error"),
        sent_at=doc.get("sent_at") if doc["state"] == "sent" else None,
        created_at=doc.get("created_at"),
        updated_at=doc.get("updated_at"),
    )
