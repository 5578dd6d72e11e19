"""Domain functions of the binding service: verify-and-save, edit, remove, re-verify, and sync status.

Callable without HTTP or a broker: events go out through a ``publish`` callable
(``async (event) -> None``), which the app wires to :func:`laifaxin_shared.kafka.publish_event` and tests
may replace with a list.

Rules (issue 3 "HTTP API", "Security"; product page email-account §2):

- Nothing is saved unless IMAP and SMTP both verified; an edit whose verification fails changes nothing.
- The password is sealed with AES-256-GCM bound to tenant + mailbox id (:mod:`laifaxin_shared.crypto`)
  before it is stored or published; it is never logged, returned or put in an error.
- Sync interval under :data:`MIN_SYNC_INTERVAL_SECONDS` (180 s) is refused with the reason.
- Verification attempts are rate-limited per address (failures, by the tenant and by all tenants together:
  one address attacked from many tenants) and per tenant (all attempts), because providers ban an IP after
  about ten bad logins (providers.md §3, §5.5). The limits hold under concurrency: an attempt is reserved
  (inserted) before the counts, which include every reservation (:class:`~laifaxin_binding.store.AttemptLog`).
- Every store call is scoped by the caller's tenant, and by the caller as owner (``user_id``): a user sees,
  edits, re-verifies and removes only the mailboxes they bound. A token with ``role=admin`` (the tenant's
  administrator) reaches every mailbox of the tenant (to list them, fix nicknames and sync settings, re-verify
  or remove a departed colleague's mailbox), but it, too, must give the password to send it anywhere new.
- The stored password is only ever sent where it was verified: an edit without a password that would log in to
  another host or port, or with another login name, than the stored settings (and their catalog backups) is
  refused with ``password_required`` before any connection (otherwise whoever can edit a mailbox could have
  its password sent to a server of their choosing).
- Without a provider id and without both servers, the servers come from the catalog (the address's domain),
  else from detection (:class:`~laifaxin_binding.detect.Detector`, within its time budget): a catalog provider
  found through the domain's MX hosts is used as that provider; servers from autoconfig or SRV records are
  used as the mailbox's own servers, but only when they lie inside the address's domain or the catalog
  (otherwise ``servers_need_confirmation``: DNS and autoconfig can be forged, so no password goes there
  unconfirmed); nothing found is ``servers_required``, naming what was tried.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from laifaxin_binding import errors
from laifaxin_binding.detect import Detection, Detector
from laifaxin_binding.models import (
    LastError,
    MailboxCreate,
    MailboxList,
    MailboxOut,
    MailboxPatch,
    SendingOut,
    ServerIn,
    ServerOut,
    SyncIn,
    SyncOut,
    SyncProgress,
)
from laifaxin_binding.store import AttemptLog, MailboxStore
from laifaxin_binding.verify import Endpoint, Verification, Verifier, VerifyRequest, pop3_server_error
from laifaxin_shared.auth import Principal
from laifaxin_shared.crypto import CredentialContext, CredentialError, KeyRing
from laifaxin_shared.events import (
    BackupServers,
    EncryptedCredential,
    Envelope,
    MailboxRemoved,
    MailboxSyncStatus,
    MailboxUpdated,
    MailboxVerified,
    ServerEndpoint,
    SyncSettings,
)
from laifaxin_shared.events.mailbox import MIN_SYNC_INTERVAL_SECONDS
from laifaxin_shared.logging import get_logger
from laifaxin_shared.providers.catalog import find_provider, get_provider, provider_for_domain, split_email
from laifaxin_shared.providers.errors import ErrorCode, MailError, MailServerError, make_error, refuse_pop3
from laifaxin_shared.providers.models import AuthMethod, Catalog, Provider, QuirkCode, Security

log = get_logger(__name__)

Publish = Callable[[Envelope], Awaitable[Any]]
"""Sends one event (keyed by mailbox id) and returns once the broker acknowledged it."""

CUSTOM_PROVIDER = "custom"
NORMAL = "normal"


@dataclass(frozen=True)
class Limits:
    """Plan and abuse limits (from :class:`~laifaxin_binding.settings.BindingSettings`)."""

    mailboxes_per_tenant: int = 20
    failures_per_address: int = 5
    failures_per_address_all_tenants: int = 10
    attempts_per_tenant: int = 60
    window: timedelta = timedelta(minutes=15)
    expiry_warning: timedelta = timedelta(days=14)


@dataclass(frozen=True)
class Servers:
    """What a verification starts from: the catalog entry (None for custom servers), the servers given or
    detected (None: the catalog's), and login names to try before the catalog's candidates (an autoconfig
    document's ``%EMAILLOCALPART%``, or the names a mailbox last logged in with)."""

    provider: Provider | None
    imap: ServerIn | None
    smtp: ServerIn | None
    imap_usernames: tuple[str, ...] = ()
    smtp_usernames: tuple[str, ...] = ()


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_mailbox_id() -> str:
    """``mbx_`` + 24 hex characters (fits the events' MailboxId pattern)."""
    return f"mbx_{uuid.uuid4().hex[:24]}"


class MailboxService:
    """The binding domain: one instance per process."""

    def __init__(
        self,
        *,
        store: MailboxStore,
        attempts: AttemptLog,
        verifier: Verifier,
        keyring: KeyRing,
        publish: Publish,
        limits: Limits | None = None,
        detector: Detector | None = None,
    ) -> None:
        self.store = store
        self.attempts = attempts
        self.verifier = verifier
        self.keyring = keyring
        self.publish = publish
        self.limits = limits or Limits()
        self.detector = detector if detector is not None else Detector()

    def mailbox_limit(self, who: Principal) -> int:
        """Mailboxes ``who``'s tenant may bind: its plan's (the token's ``mailbox_limit`` claim), else the
        deployment's ``BINDING_MAILBOX_LIMIT_PER_TENANT`` (product page email-account Q2: "depends on your
        plan")."""
        return who.mailbox_limit or self.limits.mailboxes_per_tenant

    # ------------------------------------------------------------------ create

    async def create(self, who: Principal, body: MailboxCreate, *, is_system: bool = False) -> MailboxOut:
        """Verify and save a new mailbox; emits ``mailbox.verified`` (``is_system`` for the platform's own).

        Without ``provider_id`` and without both servers, the servers are detected (:meth:`servers`).

        Raises:
            BindingError: 422 with the taxonomy code when verification fails (nothing saved); 409
                ``mailbox_exists``; 403 ``mailbox_limit_reached``; 429 ``verification_rate_limited``;
                422 ``sync_interval_too_short``, ``servers_required`` (with ``tried``),
                ``servers_need_confirmation`` (with ``detected``), ``unknown_provider``, ``pop3_unsupported``,
                ``oauth_required``.
        """
        email = _email(body.email)
        sync = _sync(body.sync)
        if await self.store.find_by_email(who.tenant_id, email) is not None:
            raise errors.mailbox_exists(email)
        limit = self.mailbox_limit(who)
        if await self.store.count(who.tenant_id) >= limit:
            raise errors.mailbox_limit(limit)
        _refuse_pop3(body.incoming_protocol)
        servers = await self.servers(body.provider_id, email, body.imap, body.smtp)
        provider = servers.provider
        request = _request(email, body.password.get_secret_value(), servers, body.incoming_protocol)
        verification = await self._verify(who, request)
        mailbox_id = new_mailbox_id()
        at = now_utc()
        credential = self._seal(who.tenant_id, mailbox_id, verification)
        document = {
            "_id": mailbox_id,
            "tenant_id": who.tenant_id,
            "user_id": who.user_id,
            "email": email,
            "nickname": body.nickname,
            "sync": sync.model_dump(),
            "credential_expires_at": body.credential_expires_at,
            "last_synced_at": None,
            "last_error": None,
            "created_at": at,
            "is_system": is_system,
            **_verified_fields(verification, request, provider, credential, at),
        }
        if not await self.store.insert(document):
            raise errors.mailbox_exists(email)
        if await self.store.count(who.tenant_id) > limit:  # simultaneous binds: insert first, then count
            await self.store.delete(who.tenant_id, mailbox_id)
            raise errors.mailbox_limit(limit)
        try:
            await self.publish(self._verified_event(document))
        except (
            Exception
        ) as exc:  # any publish failure: undo the insert so the caller can retry; re-raised as 503
            await self.store.delete(who.tenant_id, mailbox_id)
            log.error(
                "mailbox.verified not published; insert undone",
                mailbox_id=mailbox_id,
                error_type=type(exc).__name__,
            )
            raise errors.unavailable("The event bus") from exc
        log.info(
            "mailbox bound", mailbox_id=mailbox_id, tenant_id=who.tenant_id, provider=document["provider_id"]
        )
        return self.view(document)

    # ------------------------------------------------------------------ system mailbox

    async def ensure_system_mailbox(self, who: Principal, body: MailboxCreate) -> MailboxOut:
        """Bind the platform's own mailbox (mass-email replies land there) from configuration, idempotently.

        Absent: verified and saved like any mailbox, flagged ``is_system`` (its events carry
        ``is_system=true``). Present with the same password: left alone (a restart emits nothing). Present with
        another password: re-verified and saved through :meth:`update`, which emits ``mailbox.verified``.

        Raises:
            BindingError: as :meth:`create` and :meth:`update` (the caller logs the code and fix).
        """
        existing = await self.store.find_by_email(who.tenant_id, _email(body.email))
        if existing is None:
            return await self.create(who, body, is_system=True)
        current = self._open(existing)
        if current == body.password.get_secret_value().strip():
            return self.view(existing)
        return await self.update(
            who, existing["_id"], MailboxPatch(password=body.password, imap=body.imap, smtp=body.smtp)
        )

    # ------------------------------------------------------------------ key rotation

    async def reseal_credentials(self) -> dict[str, int]:
        """Re-encrypt every stored credential that is not under the ring's active key or not yet bound to its
        servers (v1 associated data; sealed again with v2 for the stored servers and logins), and emit
        ``mailbox.verified`` for each so sync's copies follow (key rotation, step 2 of the operator's guide).

        Returns counts: ``checked``, ``resealed``, ``failed`` (an envelope under a key no longer in the ring,
        or tampered: logged with the mailbox id, left as it is). Each write is a compare-and-set on the envelope
        read: a credential changed meanwhile (a password edit, sealed under the active key) is kept, not
        reverted to the resealed old one, and counted in neither.
        """
        counts = {"checked": 0, "resealed": 0, "failed": 0}
        async for doc in self.store.collection.find({}):
            counts["checked"] += 1
            envelope = EncryptedCredential.model_validate(doc["credential"])
            if not self.keyring.mailbox_needs_reseal(envelope):
                continue
            try:
                fresh = self.keyring.reseal_mailbox(envelope, CredentialContext.of(doc))
            except CredentialError as exc:
                counts["failed"] += 1
                log.error("credential not resealed", mailbox_id=doc["_id"], error=str(exc))
                continue
            # Compare-and-set on the envelope read above: a password changed meanwhile (an edit sealed a new
            # envelope, under the active key already) must not be overwritten by the reseal of the old one.
            read = doc["credential"]
            updated = await self.store.update(
                doc["tenant_id"],
                doc["_id"],
                {"credential": fresh.model_dump(), "updated_at": now_utc()},
                match={
                    "credential.key_id": read["key_id"],
                    "credential.nonce": read["nonce"],
                    "credential.ciphertext": read["ciphertext"],
                },
            )
            if updated is None:
                log.info("credential changed during the reseal; the newer one is kept", mailbox_id=doc["_id"])
                continue
            await self.publish(self._verified_event(updated))
            counts["resealed"] += 1
        return counts

    # ------------------------------------------------------------------ read

    async def list(self, who: Principal) -> MailboxList:
        docs = await self.store.list(who.tenant_id, owner=_owner(who))
        return MailboxList(items=[self.view(d) for d in docs], limit=self.mailbox_limit(who))

    async def get(self, who: Principal, mailbox_id: str) -> MailboxOut:
        return self.view(await self._get(who, mailbox_id))

    # ------------------------------------------------------------------ edit

    async def update(self, who: Principal, mailbox_id: str, patch: MailboxPatch) -> MailboxOut:
        """Edit a mailbox.

        With email, password, provider or servers in the patch: verify the merged settings first; on failure
        raise (nothing changes); on success save everything and emit ``mailbox.verified``. Otherwise save
        nickname / sync / expiry and emit ``mailbox.updated`` (no verification).

        Raises:
            BindingError: as :meth:`create`, plus 404 ``not_found`` (also for another tenant's mailbox).
        """
        doc = await self._get(who, mailbox_id)
        sync = _sync(patch.sync) if patch.sync is not None else None
        at = now_utc()
        plain: dict[str, Any] = {"updated_at": at}
        if patch.nickname is not None:
            plain["nickname"] = patch.nickname
        if sync is not None:
            plain["sync"] = sync.model_dump()
        if patch.credential_expires_at is not None:
            plain["credential_expires_at"] = patch.credential_expires_at
        if not patch.needs_verification():
            updated = await self.store.update(who.tenant_id, mailbox_id, plain, owner=_owner(who))
            if updated is None:
                raise errors.not_found()
            await self.publish(
                MailboxUpdated(
                    tenant_id=who.tenant_id,
                    mailbox_id=mailbox_id,
                    nickname=updated["nickname"],
                    sync=SyncSettings.model_validate(updated["sync"]),
                )
            )
            return self.view(updated)

        email = _email(patch.email) if patch.email is not None else doc["email"]
        if email != doc["email"] and await self.store.find_by_email(who.tenant_id, email) is not None:
            raise errors.mailbox_exists(email)
        stored_password = patch.password is None
        password = patch.password.get_secret_value() if patch.password is not None else self._open(doc)
        incoming = patch.incoming_protocol or "imap"
        _refuse_pop3(incoming)
        # Same domain and no new provider: keep the stored provider and servers (a colleague's address on the
        # same company server); another domain starts from the catalog, else detection, unless servers are given.
        same_domain = email.rpartition("@")[2] == doc["email"].rpartition("@")[2]
        if same_domain and patch.provider_id is None:
            stored_provider = None if doc["provider_id"] == CUSTOM_PROVIDER else doc["provider_id"]
            imap_in = patch.imap or _server_in(doc["imap"])
            smtp_in = patch.smtp or _server_in(doc["smtp"])
            servers = Servers(_provider(stored_provider, email, imap_in, smtp_in), imap_in, smtp_in)
            if email == doc["email"]:
                imap_first, smtp_first = _stored_usernames(doc)
                servers = dataclasses.replace(servers, imap_usernames=imap_first, smtp_usernames=smtp_first)
        else:
            servers = await self.servers(patch.provider_id, email, patch.imap, patch.smtp)
        provider = servers.provider
        request = _request(email, password, servers, incoming)
        if stored_password:
            new_places = _new_destinations(request, self._stored_request(doc, password))
            if new_places:
                raise errors.password_required(doc["email"], new_places)
        verification = await self._verify(who, request)
        credential = self._seal(who.tenant_id, mailbox_id, verification)
        fields = {
            **plain,
            "email": email,
            **_verified_fields(verification, request, provider, credential, at),
        }
        updated = await self.store.update(who.tenant_id, mailbox_id, fields, owner=_owner(who))
        if updated is None:
            raise errors.not_found()
        await self.publish(self._verified_event(updated))
        return self.view(updated)

    def _stored_request(self, doc: dict[str, Any], password: str) -> VerifyRequest:
        """What re-verifying the stored settings would try: the only places the stored password may go."""
        provider_id = None if doc["provider_id"] == CUSTOM_PROVIDER else doc["provider_id"]
        provider = get_provider(provider_id) if provider_id else None
        imap_first, smtp_first = _stored_usernames(doc)
        servers = Servers(provider, _server_in(doc["imap"]), _server_in(doc["smtp"]), imap_first, smtp_first)
        request = _request(doc["email"], password, servers, "imap")
        if doc.get("auth") == "oauth2":  # the stored credential is the current OAuth access token
            request = dataclasses.replace(request, auth="oauth2")
        return request

    async def reverify(self, who: Principal, mailbox_id: str) -> MailboxOut:
        """Verify the stored settings again (after the user fixed something at the provider).

        On success the status returns to ``normal`` and ``mailbox.verified`` is emitted; on failure the status
        and last error are stored and the failure raised.
        """
        doc = await self._get(who, mailbox_id)
        provider_id = None if doc["provider_id"] == CUSTOM_PROVIDER else doc["provider_id"]
        provider = get_provider(provider_id) if provider_id else None
        request = self._stored_request(doc, self._open(doc))
        at = now_utc()
        try:
            verification = await self._verify(who, request)
        except errors.BindingError as exc:
            if exc.status == 422:
                await self.store.update(
                    who.tenant_id,
                    mailbox_id,
                    {"status": exc.code, "last_error": _last_error_dict(exc.to_dict(), at), "updated_at": at},
                    owner=_owner(who),
                )
            raise
        credential = self._seal(who.tenant_id, mailbox_id, verification)
        fields = {"updated_at": at, **_verified_fields(verification, request, provider, credential, at)}
        updated = await self.store.update(who.tenant_id, mailbox_id, fields, owner=_owner(who))
        if updated is None:
            raise errors.not_found()
        await self.publish(self._verified_event(updated))
        return self.view(updated)

    # ------------------------------------------------------------------ delete

    async def delete(self, who: Principal, mailbox_id: str) -> None:
        """Remove the mailbox and emit ``mailbox.removed``.

        Raises:
            BindingError: 404 ``not_found`` (also for another tenant's mailbox).
        """
        if not await self.store.delete(who.tenant_id, mailbox_id, owner=_owner(who)):
            raise errors.not_found()
        await self.publish(MailboxRemoved(tenant_id=who.tenant_id, mailbox_id=mailbox_id, reason="user"))
        log.info("mailbox removed", mailbox_id=mailbox_id, tenant_id=who.tenant_id)

    # ------------------------------------------------------------------ sync status

    async def apply_sync_status(self, event: MailboxSyncStatus) -> bool:
        """Record a ``mailbox.sync_status`` transition; returns False for unknown mailboxes and for events
        older than the status already stored (at-least-once delivery, so redelivery is harmless).

        ``ok``/``syncing``/``uidvalidity_reset`` -> status ``normal``; ``stopped`` -> ``stopped``; an error
        state -> its taxonomy code (``error_code``, else the state), and ``last_error`` gets the event's texts.
        A ``syncing`` event's ``progress_*`` counts are kept as ``progress`` until the next status clears them.
        """
        if event.source == "send":
            return await self._apply_sending_status(event)
        fields: dict[str, Any] = {"state": event.state}
        if event.state in ("ok", "syncing", "uidvalidity_reset"):
            fields["status"] = NORMAL
        elif event.state == "stopped":
            fields["status"] = "stopped"
        else:
            fields["status"] = event.error_code or event.state
            fields["last_error"] = {
                "code": event.error_code or event.state,
                "message": event.message,
                "fix": event.fix,
                "message_zh": event.message_zh,
                "fix_zh": event.fix_zh,
                "at": event.occurred_at,
            }
        if fields["status"] not in (NORMAL, "stopped", ErrorCode.OAUTH_REVOKED.value):
            # A revoked OAuth grant stays the reason until the user signs in again: sync's own refusals of
            # the dead token (auth_failed) say less.
            current = await self.store.get(event.tenant_id, event.mailbox_id)
            if current is not None and (current.get("oauth") or {}).get("revoked"):
                fields["status"] = ErrorCode.OAUTH_REVOKED.value
                fields.pop("last_error", None)
        if event.last_synced_at is not None:
            fields["last_synced_at"] = event.last_synced_at
        fields["progress"] = (
            {
                "done": event.progress_done,
                "total": event.progress_total,
                "eta_seconds": event.progress_eta_seconds,
            }
            if event.state == "syncing" and event.progress_total is not None
            else None
        )
        changed = await self.store.set_status_if_newer(
            event.tenant_id, event.mailbox_id, event.occurred_at, fields
        )
        log.info(
            "sync status applied" if changed else "sync status ignored (unknown mailbox or stale)",
            mailbox_id=event.mailbox_id,
            state=event.state,
            error_code=event.error_code,
        )
        return changed

    async def _apply_sending_status(self, event: MailboxSyncStatus) -> bool:
        """A status from the send service (``source`` send): kept under ``sending`` beside the sync state, which
        it never replaces. ``ok`` -> ``normal``; otherwise the code (``sending_paused`` while the bounce-rate
        guard holds campaigns back, ``auth_failed`` when the SMTP server refuses the password)."""
        code = "normal" if event.state == "ok" else (event.error_code or event.state)
        sending = {
            "status": code,
            "message": event.message,
            "fix": event.fix,
            "message_zh": event.message_zh,
            "fix_zh": event.fix_zh,
            "at": event.occurred_at,
        }
        changed = await self.store.set_sending_if_newer(
            event.tenant_id, event.mailbox_id, event.occurred_at, sending
        )
        log.info(
            "sending status applied" if changed else "sending status ignored (unknown mailbox or stale)",
            mailbox_id=event.mailbox_id,
            status=code,
        )
        return changed

    # ------------------------------------------------------------------ servers

    async def servers(
        self, provider_id: str | None, email: str, imap: ServerIn | None, smtp: ServerIn | None
    ) -> Servers:
        """The provider and servers a bind of ``email`` verifies against.

        A named provider, both servers given, or a domain in the catalog decide without the network
        (:func:`_provider`). Otherwise the detector runs (catalog, MX, autoconfig, SRV; all network lookups
        within its time budget, ``BINDING_DETECT_TIMEOUT_SECONDS``) and :func:`servers_from_detection` decides.
        A server given alongside wins over the detected one for its protocol.

        Raises:
            BindingError: 422 ``unknown_provider``, ``oauth_required``, ``pop3_unsupported`` (a POP3 server given
                as IMAP, refused before any lookup), ``servers_need_confirmation``, ``servers_required``.
        """
        domain = email.rpartition("@")[2]
        if provider_id or (imap is not None and smtp is not None) or provider_for_domain(domain) is not None:
            return Servers(_provider(provider_id, email, imap, smtp), imap, smtp)
        if imap is not None and (pop3 := pop3_server_error(_endpoint_of(imap))) is not None:
            raise errors.from_mail_error(pop3)
        try:
            detection = await self.detector.detect(email)
        except ValueError:
            raise errors.invalid_email(email) from None
        servers = servers_from_detection(detection, imap, smtp, self.detector.catalog)
        log.info(
            "servers detected",
            email_domain=domain,
            source=detection.source,
            provider=servers.provider.id if servers.provider else None,
        )
        return servers

    # ------------------------------------------------------------------ helpers

    async def _get(self, who: Principal, mailbox_id: str) -> dict[str, Any]:
        doc = await self.store.get(who.tenant_id, mailbox_id, owner=_owner(who))
        if doc is None:
            raise errors.not_found()
        return doc

    def _open(self, doc: dict[str, Any]) -> str:
        """The stored password, opened for the stored servers and logins (v2 associated data)."""
        return self.keyring.open_mailbox(
            EncryptedCredential.model_validate(doc["credential"]), CredentialContext.of(doc)
        )

    def _seal(self, tenant_id: str, mailbox_id: str, verification: Verification) -> EncryptedCredential:
        """Seal the verified password for the servers and logins it was just verified with (what
        :func:`_verified_fields` stores and ``mailbox.verified`` carries), so it opens only for them."""
        imap, smtp = verification.imap, verification.smtp
        fields = {
            "tenant_id": tenant_id,
            "_id": mailbox_id,
            "username": imap.username,
            "smtp_username": smtp.username,
            "imap": {
                "host": imap.endpoint.host,
                "port": imap.endpoint.port,
                "security": imap.endpoint.security.value,
            },
            "smtp": {
                "host": smtp.endpoint.host,
                "port": smtp.endpoint.port,
                "security": smtp.endpoint.security.value,
            },
        }
        return self.keyring.seal_mailbox(verification.password, CredentialContext.of(fields))

    async def _verify(self, who: Principal, request: VerifyRequest) -> Verification:
        """Rate limits, then the verification; raises the failure, records the attempt either way.

        The attempt is reserved before the limits are counted and the counts include it (and every other
        running attempt), so simultaneous requests cannot all pass a limit that each alone would see free.

        Raises:
            BindingError: 429 ``verification_rate_limited`` (nothing sent to a server), or 422 with the
                verification's code.
        """
        at = now_utc()
        await self.attempts.prune(at)
        reservation = await self.attempts.reserve(who.tenant_id, request.email, at)
        try:
            refusal = await self._over_limits(who, request.email, at)
        except BaseException:
            await self.attempts.release(reservation)
            raise
        if refusal is not None:
            await self.attempts.release(reservation)
            raise refusal
        try:
            verification = await self.verifier.verify(request)
        except BaseException:  # interrupted after connecting maybe: counted as a failure, never forgotten
            await self.attempts.settle(reservation, ok=False, code="interrupted")
            raise
        error = verification.error
        await self.attempts.settle(reservation, ok=error is None, code=error.code.value if error else None)
        if error is not None:
            raise errors.verification_failed(error, verification.errors())
        return verification

    async def _over_limits(self, who: Principal, email: str, at: datetime) -> errors.BindingError | None:
        """The 429 to answer when a limit is passed, counting the caller's own reservation; None otherwise."""
        failures = await self.attempts.failures(who.tenant_id, email, at)
        if len(failures) > self.limits.failures_per_address:
            return errors.rate_limited(_retry_after(failures, self.limits, at), "address")
        everywhere = await self.attempts.failures(None, email, at)
        if len(everywhere) > self.limits.failures_per_address_all_tenants:
            return errors.rate_limited(_retry_after(everywhere, self.limits, at), "address")
        attempts = await self.attempts.attempts(who.tenant_id, at)
        if len(attempts) > self.limits.attempts_per_tenant:
            return errors.rate_limited(_retry_after(attempts, self.limits, at), "tenant")
        return None

    def _verified_event(self, doc: dict[str, Any]) -> MailboxVerified:
        return MailboxVerified(
            tenant_id=doc["tenant_id"],
            mailbox_id=doc["_id"],
            user_id=doc["user_id"],
            email=doc["email"],
            nickname=doc["nickname"],
            provider_id=doc["provider_id"],
            username=doc["username"],
            smtp_username=doc.get("smtp_username"),
            imap=ServerEndpoint.model_validate(doc["imap"]),
            smtp=ServerEndpoint.model_validate(doc["smtp"]),
            credential=EncryptedCredential.model_validate(doc["credential"]),
            imap_id_required=doc["imap_id_required"],
            sync=SyncSettings.model_validate(doc["sync"]),
            credential_expires_at=doc.get("credential_expires_at"),
            is_system=bool(doc.get("is_system", False)),
            backup=self._backup_pair(doc),
            auth=doc.get("auth", "basic"),
            access_token_expires_at=(doc.get("oauth") or {}).get("access_expires_at"),
        )

    def _backup_pair(self, doc: dict[str, Any]) -> BackupServers | None:
        """The catalog's backup pair with the password sealed for it, when the provider publishes one (quirk
        ``backup_servers``: NetEase Enterprise's imap/smtp.qiye.163.com behind the recommended hwhz pair) and the
        mailbox uses the recommended pair; sync moves to it when the recommended pair answers
        ``ERR.LOGIN.DOMAINNOTEXIST`` or cannot be reached (product page 204: "switch to backup if connection
        fails"). None otherwise, or when the stored password does not open (logged; the event goes out
        without it)."""
        provider = find_provider(doc.get("provider_id"))
        if provider is None or not provider.has_quirk(QuirkCode.BACKUP_SERVERS):
            return None
        imap_s, smtp_s = provider.settings("imap"), provider.settings("smtp")
        if not imap_s.backups or not smtp_s.backups:
            return None
        if (doc["imap"]["host"], int(doc["imap"]["port"])) != (imap_s.host, imap_s.port) or (
            doc["smtp"]["host"],
            int(doc["smtp"]["port"]),
        ) != (smtp_s.host, smtp_s.port):
            return None
        imap_b, smtp_b = imap_s.backups[0], smtp_s.backups[0]
        imap = ServerEndpoint(host=imap_b.host, port=imap_b.port, security=imap_b.security.value)
        smtp = ServerEndpoint(host=smtp_b.host, port=smtp_b.port, security=smtp_b.security.value)
        try:
            password = self._open(doc)
        except CredentialError as exc:
            log.error(
                "backup pair not sealed: credential does not open", mailbox_id=doc["_id"], error=str(exc)
            )
            return None
        context = CredentialContext.of({**doc, "imap": imap.model_dump(), "smtp": smtp.model_dump()})
        return BackupServers(imap=imap, smtp=smtp, credential=self.keyring.seal_mailbox(password, context))

    def view(self, doc: dict[str, Any]) -> MailboxOut:
        """The API view of a stored document (no credential)."""
        expires = doc.get("credential_expires_at")
        last_error = doc.get("last_error")
        return MailboxOut(
            id=doc["_id"],
            email=doc["email"],
            nickname=doc["nickname"],
            provider_id=doc["provider_id"],
            username=doc["username"],
            imap=ServerOut.model_validate(doc["imap"]),
            smtp=ServerOut.model_validate(doc["smtp"]),
            sync=SyncOut.model_validate(doc["sync"]),
            status=doc["status"],
            auth=doc.get("auth", "basic"),
            state=doc.get("state", "ok"),
            last_synced_at=doc.get("last_synced_at"),
            progress=SyncProgress.model_validate(progress) if (progress := doc.get("progress")) else None,
            last_error=LastError.model_validate(last_error) if last_error else None,
            sending=SendingOut.model_validate(sending) if (sending := doc.get("sending")) else None,
            credential_expires_at=expires,
            credential_expiring=bool(expires and expires - now_utc() <= self.limits.expiry_warning),
            verified_at=doc.get("verified_at"),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )


# ---------------------------------------------------------------------- pure helpers


def _owner(who: Principal) -> str | None:
    """The owner filter of ``who``'s mailbox operations: their own user id, or None (the whole tenant) for the
    tenant's admin."""
    return None if who.is_admin else who.user_id


def _new_destinations(request: VerifyRequest, stored: VerifyRequest) -> list[str]:
    """What ``request`` would send the password to that ``stored`` (the stored settings) would not: IMAP/SMTP
    ``host:port`` pairs and login names, each as ``"imap server host:port"`` / ``"smtp login name"``; empty when
    it goes nowhere new."""
    new: list[str] = []
    for protocol, endpoints, known in (
        ("imap", request.imap, stored.imap),
        ("smtp", request.smtp, stored.smtp),
    ):
        places = {(e.host, e.port) for e in known}
        new += [f"{protocol} server {e.host}:{e.port}" for e in endpoints if (e.host, e.port) not in places]
    for protocol, names, known_names in (
        ("imap", request.imap_usernames, stored.imap_usernames),
        ("smtp", request.smtp_usernames, stored.smtp_usernames),
    ):
        new += [f"{protocol} login {name}" for name in names if name not in known_names]
    return new


def _email(raw: str) -> str:
    try:
        local, domain = split_email(raw)
    except ValueError:
        raise errors.invalid_email(raw) from None
    return f"{local}@{domain}".lower()


def _sync(sync: SyncIn) -> SyncSettings:
    if sync.interval_seconds < MIN_SYNC_INTERVAL_SECONDS:
        raise errors.interval_too_short(MIN_SYNC_INTERVAL_SECONDS, sync.interval_seconds)
    return SyncSettings(
        enabled=sync.enabled,
        interval_seconds=sync.interval_seconds,
        initial_window_days=sync.initial_window_days,
    )


def _provider(
    provider_id: str | None, email: str, imap: ServerIn | None, smtp: ServerIn | None
) -> Provider | None:
    """The catalog entry to use: the one named, else the one serving the domain, else None (custom servers,
    which must then both be given)."""
    provider: Provider | None
    if provider_id:
        try:
            provider = get_provider(provider_id)
        except KeyError:
            raise errors.unknown_provider(provider_id) from None
    else:
        provider = provider_for_domain(email.rpartition("@")[2])
    if provider is None and (imap is None or smtp is None):
        raise errors.servers_required(email)
    if provider is not None:
        _refuse_oauth_only(provider)
    return provider


def servers_from_detection(
    detection: Detection, imap: ServerIn | None, smtp: ServerIn | None, catalog: Catalog | None = None
) -> Servers:
    """Decide a bind's servers from a detection (``catalog`` is the one the detector used).

    - ``catalog`` / ``mx`` with a provider: that catalog provider and its servers (an OAuth2-only one is
      ``oauth_required``). MX is unauthenticated DNS, but the password then goes only to catalog servers.
    - ``autoconfig`` / ``srv``: the detected servers become the mailbox's own (a catalog provider when the IMAP
      host is a catalog host), with the autoconfig username form tried first; unless a host lies outside the
      address's domain and the catalog (``needs_confirmation``): then ``servers_need_confirmation``, and the
      user confirms by sending the servers (Thunderbird asks too; :mod:`laifaxin_binding.detect`).
    - ``guess`` (nothing found, or the time budget ran out): ``servers_required`` with what was tried.

    Raises:
        BindingError: 422 ``oauth_required``, ``servers_need_confirmation``, ``servers_required``.
    """
    email = detection.email
    if detection.source in ("catalog", "mx") and detection.provider is not None:
        found = get_provider(detection.provider, catalog)
        _refuse_oauth_only(found)
        return Servers(found, imap, smtp)
    if detection.source in ("autoconfig", "srv"):
        if detection.needs_confirmation:
            raise errors.servers_need_confirmation(
                email,
                detection.source,
                detection.imap.model_dump(mode="json"),
                detection.smtp.model_dump(mode="json"),
                detection.unconfirmed_hosts,
            )
        provider = get_provider(detection.provider, catalog) if detection.provider else None
        if provider is not None:
            _refuse_oauth_only(provider)
        elif detection.auth is AuthMethod.OAUTH2:
            raise errors.from_mail_error(make_error(ErrorCode.OAUTH_REQUIRED))
        first = (detection.username,) if detection.username != email else ()
        try:
            imap = imap or _server_from(detection.imap.host, detection.imap.port, detection.imap.security)
            smtp = smtp or _server_from(detection.smtp.host, detection.smtp.port, detection.smtp.security)
        except ValidationError:  # a host name no server can have (over 253 characters)
            raise errors.invalid_request(f"the servers {detection.source} gave are not usable") from None
        return Servers(provider, imap, smtp, imap_usernames=first, smtp_usernames=first)
    raise errors.servers_required(email, [(a.source, a.outcome) for a in detection.attempts])


def _refuse_oauth_only(provider: Provider) -> None:
    if provider.auth is AuthMethod.OAUTH2:
        raise errors.from_mail_error(make_error(ErrorCode.OAUTH_REQUIRED, provider_id=provider.id))


def _refuse_pop3(incoming_protocol: str) -> None:
    """``pop3_unsupported`` for a POP3 ``incoming_protocol``, before any lookup or connection."""
    try:
        refuse_pop3(incoming_protocol)
    except MailServerError as exc:
        raise errors.from_mail_error(exc.error) from None


def _server_from(host: str, port: int, security: Security) -> ServerIn:
    return ServerIn(host=host, port=port, security="ssl" if security is Security.SSL else "starttls")


def _endpoint_of(server: ServerIn) -> Endpoint:
    return Endpoint(server.host.lower().rstrip("."), server.port, Security(server.security))


def _endpoint(server: ServerIn | None) -> Endpoint | None:
    return None if server is None else _endpoint_of(server)


def _stored_usernames(doc: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (IMAP, SMTP) login names a stored mailbox last verified with, to try first again."""
    imap = doc.get("username")
    smtp = doc.get("smtp_username") or imap
    return ((imap,) if imap else ()), ((smtp,) if smtp else ())


def _first(preferred: Sequence[str], candidates: Sequence[str]) -> tuple[str, ...]:
    """``preferred`` then ``candidates``, without repeats, in order."""
    return tuple(dict.fromkeys([*preferred, *candidates]))


def _server_in(stored: dict[str, Any]) -> ServerIn:
    return ServerIn(host=stored["host"], port=stored["port"], security=stored["security"])


def _request(email: str, password: str, servers: Servers, incoming_protocol: str) -> VerifyRequest:
    try:
        request = VerifyRequest.build(
            email,
            password,
            provider=servers.provider,
            imap=_endpoint(servers.imap),
            smtp=_endpoint(servers.smtp),
            incoming_protocol=incoming_protocol,
        )
    except MailServerError as exc:  # POP3, refused before any connection
        raise errors.from_mail_error(exc.error) from None
    except ValueError as exc:
        raise errors.invalid_request(str(exc)) from None
    return dataclasses.replace(
        request,
        imap_usernames=_first(servers.imap_usernames, request.imap_usernames),
        smtp_usernames=_first(servers.smtp_usernames, request.smtp_usernames),
    )


def _verified_fields(
    verification: Verification,
    request: VerifyRequest,
    provider: Provider | None,
    credential: EncryptedCredential,
    at: datetime,
) -> dict[str, Any]:
    imap, smtp = verification.imap, verification.smtp
    return {
        "provider_id": provider.id if provider else CUSTOM_PROVIDER,
        "username": imap.username,
        "smtp_username": smtp.username,
        "imap": {
            "host": imap.endpoint.host,
            "port": imap.endpoint.port,
            "security": imap.endpoint.security.value,
        },
        "smtp": {
            "host": smtp.endpoint.host,
            "port": smtp.endpoint.port,
            "security": smtp.endpoint.security.value,
        },
        "imap_id_required": request.imap_id_required or imap.id_sent,
        "credential": credential.model_dump(),
        "status": NORMAL,
        "state": "ok",
        "status_at": at,
        "last_error": None,
        "verified_at": at,
        "updated_at": at,
    }


def _last_error_dict(data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {k: data.get(k, "") for k in ("code", "message", "fix", "message_zh", "fix_zh")} | {"at": at}


def _retry_after(times: list[datetime], limits: Limits, at: datetime) -> int:
    oldest = times[0]
    return max(1, int((oldest + limits.window - at).total_seconds()) + 1)


def mail_error_summary(error: MailError) -> dict[str, Any]:
    """A log-safe summary (code, protocol, rule) of a verification failure."""
    return {"code": error.code.value, "protocol": error.protocol, "rule": error.rule}
