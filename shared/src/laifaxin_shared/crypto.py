"""Credential crypto: AES-256-GCM under a key ring, bound to the tenant and mailbox.

A mailbox password (app password, authorization code) is sealed with AES-256-GCM (NIST SP 800-38D) under the
ring's active key, with a fresh random 96-bit nonce, and with ``laifaxin:cred:v1:{tenant_id}:{mailbox_id}`` as
associated data: an envelope moved to another mailbox or tenant fails to open. The result is an
:class:`~laifaxin_shared.events.EncryptedCredential` (key id, nonce, ciphertext+tag, base64url) that may be
stored and sent on Kafka; the plaintext exists only inside binding (to verify) and sync (to log in).

Key rotation: add a new key to the ring, make it active, then :meth:`KeyRing.reseal` every stored envelope
(opened under its old key id, sealed under the active one); drop the old key once nothing uses it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

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


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def associated_data(tenant_id: str, mailbox_id: str) -> bytes:
    """The AEAD associated data binding a credential to one mailbox of one tenant."""
    return f"laifaxin:cred:v1:{tenant_id}:{mailbox_id}".encode()


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

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
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

    @classmethod
    def parse(cls, spec: str, active_key_id: str) -> KeyRing:
        """Build a ring from ``"id1:BASE64KEY,id2:BASE64KEY"`` (standard or url-safe base64, 32-byte keys).

        Raises:
            KeyRingError: malformed entry or key (the message names the entry's id, never the key).
        """
        return cls(parse_key_spec(spec), active_key_id)

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of every key in the ring."""
        return frozenset(self._aead)

    def seal(self, plaintext: str, *, tenant_id: str, mailbox_id: str) -> EncryptedCredential:
        """Encrypt ``plaintext`` (UTF-8) under the active key for this tenant and mailbox."""
        nonce = os.urandom(NONCE_BYTES)
        ct = self._aead[self.active_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), associated_data(tenant_id, mailbox_id)
        )
        return EncryptedCredential(key_id=self.active_key_id, nonce=_b64e(nonce), ciphertext=_b64e(ct))

    def open(self, envelope: EncryptedCredential, *, tenant_id: str, mailbox_id: str) -> str:
        """Decrypt an envelope sealed for this tenant and mailbox.

        Raises:
            UnknownKeyError: ``envelope.key_id`` is not in the ring.
            CredentialDecryptError: wrong key, tampered data, or another mailbox's or tenant's envelope.
        """
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
            return aead.decrypt(nonce, ct, associated_data(tenant_id, mailbox_id)).decode("utf-8")
        except InvalidTag as exc:
            raise CredentialDecryptError(
                f"credential for mailbox {mailbox_id!r} failed authentication (wrong key, tampered data, "
                "or sealed for another mailbox or tenant)"
            ) from exc

    def needs_reseal(self, envelope: EncryptedCredential) -> bool:
        """True when the envelope is not sealed under the active key."""
        return envelope.key_id != self.active_key_id

    def reseal(
        self, envelope: EncryptedCredential, *, tenant_id: str, mailbox_id: str
    ) -> EncryptedCredential:
        """Re-encrypt under the active key (key rotation); returns the envelope unchanged if already current.

        Raises:
            UnknownKeyError, CredentialDecryptError: as :meth:`open`.
        """
        if not self.needs_reseal(envelope):
            return envelope
        plaintext = self.open(envelope, tenant_id=tenant_id, mailbox_id=mailbox_id)
        return self.seal(plaintext, tenant_id=tenant_id, mailbox_id=mailbox_id)
