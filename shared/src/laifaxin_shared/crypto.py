"""Credential crypto: AES-256-GCM under a key ring, bound to the tenant, the mailbox and its servers.

A mailbox password (app password, authorization code) is sealed with AES-256-GCM (NIST SP 800-38D) under the
ring's active key, with a fresh random 96-bit nonce. The result is an
:class:`~laifaxin_shared.events.EncryptedCredential` (key id, nonce, ciphertext+tag, base64url, associated-data
version) that may be stored and sent on Kafka; the plaintext exists only inside binding (to verify) and sync (to
log in).

Associated data (authenticated, not encrypted; a mismatch makes the envelope fail to open):

- **v2** (mailbox passwords, :meth:`KeyRing.seal_mailbox`): ``laifaxin:cred:v2:`` followed by the JSON array
  ``[tenant_id, mailbox_id, [imap host, port, security, login], [smtp host, port, security, login]]``
  (:meth:`CredentialContext.associated_data`; host names lower-cased without a trailing dot). The password opens
  only for the servers and login it was verified with: whoever can write a ``mailbox.verified`` event cannot point
  a real envelope at a server of theirs, because sync opens it with the endpoint it is about to connect to.
  A legitimate change of server or login goes through binding, which verifies with the password and seals it
  again for the new servers.
- **v1** (``laifaxin:cred:v1:{tenant_id}:{mailbox_id}``): tenant and object only. Still used by
  :meth:`KeyRing.seal` / :meth:`KeyRing.open` for secrets that name their own destination (notify's Apprise URLs).
  Mailbox envelopes sealed with v1 before v2 existed open in :meth:`KeyRing.open_mailbox` only while the ring
  accepts v1 (``LAIFAXIN_CREDENTIAL_ACCEPT_V1``, default on during the migration); ``laifaxin-mail credentials
  rotate`` reseals them to v2, after which v1 is turned off.

Key rotation: add a new key to the ring, make it active, then :meth:`KeyRing.reseal_mailbox` every stored envelope
(opened under its old key id or v1 associated data, sealed under the active key with v2); drop the old key once
nothing uses it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .events.base import EncryptedCredential

KEY_BYTES = 32
NONCE_BYTES = 12


class CredentialError(Exception):
    """Base of credential crypto errors. Messages never contain key material or plaintext."""


class UnknownKeyError(CredentialError):
    """The envelope names a key id that is not in the ring (rotated out, or a wrong ring)."""


class CredentialDecryptError(CredentialError):
    """Authentication failed: wrong key, tampered ciphertext, or associated data of another mailbox/tenant."""


class KeyRingError(CredentialError):
    """The key ring configuration is malformed."""


class CredentialV1RefusedError(CredentialDecryptError):
    """A mailbox envelope sealed with v1 associated data (not bound to its servers) while the ring refuses v1."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def associated_data(tenant_id: str, mailbox_id: str) -> bytes:
    """The v1 AEAD associated data binding a secret to one object (mailbox, notify binding) of one tenant."""
    return f"laifaxin:cred:v1:{tenant_id}:{mailbox_id}".encode()


@dataclass(frozen=True, slots=True)
class ServerLogin:
    """A server a mailbox password is sent to, and the login name used there.

    Attributes:
        host: DNS name or address literal (compared lower-case, without a trailing dot or brackets).
        port: TCP port.
        security: ``ssl`` or ``starttls``.
        username: the login name exactly as sent (IMAP LOGIN / SMTP AUTH).
    """

    host: str
    port: int
    security: str
    username: str

    def _canonical(self) -> list[Any]:
        return [
            self.host.strip().strip("[]").rstrip(".").lower(),
            int(self.port),
            self.security,
            self.username,
        ]


@dataclass(frozen=True, slots=True)
class CredentialContext:
    """What a mailbox password is bound to (v2 associated data): tenant, mailbox, IMAP and SMTP server + login."""

    tenant_id: str
    mailbox_id: str
    imap: ServerLogin
    smtp: ServerLogin

    @classmethod
    def of(cls, doc: Mapping[str, Any], *, mailbox_id: str | None = None) -> CredentialContext:
        """From a mailbox document shaped like ``mailbox.verified`` (binding's stored mailbox, sync's stored
        config, or ``MailboxVerified.model_dump()``): ``tenant_id``, ``_id`` or ``mailbox_id``,
        ``imap``/``smtp`` (``host``, ``port``, ``security``), ``username`` and ``smtp_username`` (absent or
        empty: the same as ``username``).

        Raises:
            KeyError: a field is missing.
        """
        imap, smtp = doc["imap"], doc["smtp"]
        username = str(doc["username"])
        return cls(
            tenant_id=str(doc["tenant_id"]),
            mailbox_id=mailbox_id or str(doc.get("mailbox_id") or doc["_id"]),
            imap=ServerLogin(str(imap["host"]), int(imap["port"]), str(imap["security"]), username),
            smtp=ServerLogin(
                str(smtp["host"]),
                int(smtp["port"]),
                str(smtp["security"]),
                str(doc.get("smtp_username") or username),
            ),
        )

    def associated_data(self) -> bytes:
        """``laifaxin:cred:v2:`` + compact JSON ``[tenant, mailbox, [imap...], [smtp...]]`` (unambiguous for any
        character in a host or login)."""
        body = [self.tenant_id, self.mailbox_id, self.imap._canonical(), self.smtp._canonical()]
        return b"laifaxin:cred:v2:" + json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded, for a ``key_id:key`` ring entry."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_key_spec(spec: str) -> dict[str, bytes]:
    """Parse ``"id1:BASE64KEY,id2:BASE64KEY"`` (standard or url-safe base64) into key id -> raw key bytes.

    Shared by every key ring of the platform (credentials, reply tokens); key lengths are checked by the user.

    Raises:
        KeyRingError: malformed entry or key (the message names the entry's id, never the key).
    """
    keys: dict[str, bytes] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        key_id, sep, b64 = entry.partition(":")
        if not sep or not key_id:
            raise KeyRingError("key ring entries must look like 'key_id:base64key'")
        try:
            raw = base64.b64decode(
                b64.replace("-", "+").replace("_", "/") + "=" * (-len(b64) % 4), validate=True
            )
        except (binascii.Error, ValueError) as exc:
            raise KeyRingError(f"key {key_id!r} is not valid base64") from exc
        keys[key_id] = raw
    return keys


class KeyRing:
    """Key id -> 256-bit key, with one active key for sealing.

    Args:
        keys: key id -> raw 32-byte key.
        active_key_id: the id new credentials are sealed under; must be in ``keys``.

    Raises:
        KeyRingError: a key is not 32 bytes, or the active id is missing.
    """

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str, *, accept_v1: bool = True) -> None:
        if not keys:
            raise KeyRingError("the credential key ring is empty")
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"key {key_id!r} must be {KEY_BYTES} bytes, got {len(key)}")
        if active_key_id not in keys:
            raise KeyRingError(
                f"active key id {active_key_id!r} is not in the ring ({', '.join(sorted(keys))})"
            )
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id
        self.accept_v1 = accept_v1

    @classmethod
    def parse(cls, spec: str, active_key_id: str, *, accept_v1: bool = True) -> KeyRing:
        """Build a ring from ``"id1:BASE64KEY,id2:BASE64KEY"`` (standard or url-safe base64, 32-byte keys).

        ``accept_v1``: whether :meth:`open_mailbox` still opens mailbox envelopes sealed with v1 associated data
        (``LAIFAXIN_CREDENTIAL_ACCEPT_V1``).

        Raises:
            KeyRingError: malformed entry or key (the message names the entry's id, never the key).
        """
        return cls(parse_key_spec(spec), active_key_id, accept_v1=accept_v1)

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of every key in the ring."""
        return frozenset(self._aead)

    def _seal(self, plaintext: str, aad: bytes, version: str) -> EncryptedCredential:
        nonce = os.urandom(NONCE_BYTES)
        ct = self._aead[self.active_key_id].encrypt(nonce, plaintext.encode("utf-8"), aad)
        return EncryptedCredential(
            key_id=self.active_key_id, nonce=_b64e(nonce), ciphertext=_b64e(ct), aad=version
        )

    def _open(self, envelope: EncryptedCredential, aad: bytes, what: str) -> str:
        aead = self._aead.get(envelope.key_id)
        if aead is None:
            raise UnknownKeyError(f"credential sealed under unknown key id {envelope.key_id!r}")
        try:
            nonce, ct = _b64d(envelope.nonce), _b64d(envelope.ciphertext)
        except (binascii.Error, ValueError) as exc:
            raise CredentialDecryptError("credential envelope is not valid base64url") from exc
        if len(nonce) != NONCE_BYTES:
            raise CredentialDecryptError("credential nonce must be 96 bits")
        try:
            return aead.decrypt(nonce, ct, aad).decode("utf-8")
        except InvalidTag as exc:
            raise CredentialDecryptError(f"credential for {what} failed authentication") from exc

    def seal(self, plaintext: str, *, tenant_id: str, mailbox_id: str) -> EncryptedCredential:
        """Encrypt ``plaintext`` (UTF-8) under the active key with v1 associated data (tenant and object id).

        For secrets that carry their own destination (notify's Apprise URLs). A mailbox password is sealed with
        :meth:`seal_mailbox`, which binds it to its servers too.
        """
        return self._seal(plaintext, associated_data(tenant_id, mailbox_id), "v1")

    def open(self, envelope: EncryptedCredential, *, tenant_id: str, mailbox_id: str) -> str:
        """Decrypt an envelope sealed by :meth:`seal` for this tenant and object.

        Raises:
            UnknownKeyError: ``envelope.key_id`` is not in the ring.
            CredentialDecryptError: wrong key, tampered data, another object's or tenant's envelope, or a v2
                (mailbox) envelope, which only :meth:`open_mailbox` opens.
        """
        if envelope.aad != "v1":
            raise CredentialDecryptError("a v2 mailbox credential opens only with its servers (open_mailbox)")
        return self._open(
            envelope,
            associated_data(tenant_id, mailbox_id),
            f"mailbox {mailbox_id!r} (wrong key, tampered data, or sealed for another mailbox or tenant)",
        )

    def seal_mailbox(self, plaintext: str, context: CredentialContext) -> EncryptedCredential:
        """Encrypt a mailbox password under the active key with v2 associated data: it opens only for this
        tenant, mailbox, IMAP and SMTP server and login (:class:`CredentialContext`)."""
        return self._seal(plaintext, context.associated_data(), "v2")

    def open_mailbox(
        self, envelope: EncryptedCredential, context: CredentialContext, *, allow_v1: bool | None = None
    ) -> str:
        """Decrypt a mailbox password for the servers and login about to be used (``context``).

        A v1 envelope (from before v2) opens with its tenant and mailbox only while the ring accepts v1
        (``allow_v1`` overrides: binding's own key rotation reads its store with ``allow_v1=True``).

        Raises:
            UnknownKeyError: ``envelope.key_id`` is not in the ring.
            CredentialV1RefusedError: a v1 envelope while v1 is refused.
            CredentialDecryptError: wrong key, tampered data, another mailbox's or tenant's envelope, or an
                envelope sealed for other servers or another login (a redirected ``mailbox.verified``).
        """
        if envelope.aad == "v2":
            return self._open(
                envelope,
                context.associated_data(),
                f"mailbox {context.mailbox_id!r} (wrong key, tampered data, or sealed for other servers, another "
                "login, mailbox or tenant)",
            )
        if not (self.accept_v1 if allow_v1 is None else allow_v1):
            raise CredentialV1RefusedError(
                f"credential for mailbox {context.mailbox_id!r} is sealed with v1 associated data (not bound to "
                "its servers), which LAIFAXIN_CREDENTIAL_ACCEPT_V1=false refuses; reseal it with "
                "`laifaxin-mail credentials rotate`"
            )
        return self.open(envelope, tenant_id=context.tenant_id, mailbox_id=context.mailbox_id)

    def needs_reseal(self, envelope: EncryptedCredential) -> bool:
        """True when the envelope is not sealed under the active key."""
        return envelope.key_id != self.active_key_id

    def mailbox_needs_reseal(self, envelope: EncryptedCredential) -> bool:
        """True when a mailbox envelope is not under the active key or not yet bound to its servers (v1)."""
        return self.needs_reseal(envelope) or envelope.aad != "v2"

    def reseal_mailbox(
        self, envelope: EncryptedCredential, context: CredentialContext
    ) -> EncryptedCredential:
        """Re-encrypt a mailbox password under the active key with v2 associated data for ``context`` (key
        rotation and the v1 -> v2 migration); returns the envelope unchanged if already current. Opens v1
        envelopes whatever the ring's ``accept_v1`` (the caller reads its own store, not an event).

        Raises:
            UnknownKeyError, CredentialDecryptError: as :meth:`open_mailbox`.
        """
        if not self.mailbox_needs_reseal(envelope):
            return envelope
        plaintext = self.open_mailbox(envelope, context, allow_v1=True)
        return self.seal_mailbox(plaintext, context)

    def reseal(
        self, envelope: EncryptedCredential, *, tenant_id: str, mailbox_id: str
    ) -> EncryptedCredential:
        """Re-encrypt a v1 envelope under the active key (key rotation of :meth:`seal`'s secrets); returns the
        envelope unchanged if already current.

        Raises:
            UnknownKeyError, CredentialDecryptError: as :meth:`open`.
        """
        if not self.needs_reseal(envelope):
            return envelope
        plaintext = self.open(envelope, tenant_id=tenant_id, mailbox_id=mailbox_id)
        return self.seal(plaintext, tenant_id=tenant_id, mailbox_id=mailbox_id)
