"""Signed reply tokens: route a reply to the message it answers when the client drops the threading headers.

Mail sent from the platform's system mailbox carries ``Reply-To: reply+<token>@<system domain>`` (RFC 5233
sub-addressing; Dovecot, Gmail, Outlook and most hosted mail deliver ``user+tag@domain`` to ``user@domain``). The
token names the sent message (a digest of its Message-ID) and the day it was issued, signed with HMAC-SHA256
(RFC 2104) under a rotatable key ring; a reply addressed to it is tied to that message even without
``In-Reply-To`` / ``References``.

Token text: ``<key id>.<base32>`` with the base32 (RFC 4648, lowercase, no padding) of
``digest (10 bytes) || issued day (2 bytes, days since 2020-01-01, big-endian) || MAC (10 bytes)``, where MAC is the
first 80 bits of ``HMAC-SHA256(key, b"laifaxin:reply:v1:" + key_id + b":" + digest + day)``. Lowercase because
some servers fold the local part's case. A token is at most ``8 + 1 + 36`` characters, so
``reply+TOKEN@domain`` stays within the 64-octet local part of RFC 5321 section 4.5.3.1.1.

A forged, tampered, expired or unknown-key token verifies to ``None`` with the reason; it never raises on input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from .crypto import KeyRingError, parse_key_spec

EPOCH = date(2020, 1, 1)
DIGEST_BYTES = 10
MAC_BYTES = 10
MIN_KEY_BYTES = 32
DEFAULT_MAX_AGE_DAYS = 180
"""Replies to a campaign trickle in for weeks and months; older tokens are refused as expired."""

_KEY_ID = re.compile(r"^[a-z0-9]{1,8}$")
_TOKEN = re.compile(r"^([a-z0-9]{1,8})\.([a-z2-7]{36})$")
_ADDRESS = re.compile(r"^([A-Za-z0-9._-]{1,32})\+([A-Za-z0-9.]{1,64})@([A-Za-z0-9.-]{1,253})$")

Invalid = Literal["malformed", "unknown_key", "bad_signature", "expired", "not_yet_valid"]


def message_digest(message_id: str) -> bytes:
    """The 80-bit digest a token carries for a Message-ID (angle brackets and case of the domain ignored)."""
    return hashlib.sha256(normalize_message_id(message_id).encode("utf-8")).digest()[:DIGEST_BYTES]


def normalize_message_id(message_id: str) -> str:
    """A Message-ID without surrounding space and angle brackets, its domain part lowercased (RFC 5322 3.6.4)."""
    text = message_id.strip().strip("<>").strip()
    local, sep, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}" if sep else text


@dataclass(frozen=True)
class VerifiedToken:
    """A token that verified: the sent message's digest and when the token was issued."""

    digest: bytes
    issued: date
    key_id: str

    @property
    def digest_hex(self) -> str:
        """The digest as 20 hex characters (how a registry may index sent messages)."""
        return self.digest.hex()


@dataclass(frozen=True)
class Rejected:
    """A token that did not verify, and why (for metrics; never shown to the sender of the reply)."""

    reason: Invalid


class ReplyTokens:
    """Signs and verifies reply tokens under a key ring.

    Args:
        keys: key id (1-8 lowercase letters or digits) -> key of at least 32 bytes.
        active_key_id: the id new tokens are signed with.
        max_age_days: tokens issued longer ago than this are refused (``expired``).

    Raises:
        KeyRingError: an id is malformed, a key too short, or the active id missing.
    """

    def __init__(
        self, keys: Mapping[str, bytes], active_key_id: str, *, max_age_days: int = DEFAULT_MAX_AGE_DAYS
    ) -> None:
        if not keys:
            raise KeyRingError("the reply token key ring is empty")
        for key_id, key in keys.items():
            if not _KEY_ID.match(key_id):
                raise KeyRingError(f"reply token key id {key_id!r} must be 1-8 lowercase letters or digits")
            if len(key) < MIN_KEY_BYTES:
                raise KeyRingError(f"reply token key {key_id!r} must be at least {MIN_KEY_BYTES} bytes")
        if active_key_id not in keys:
            raise KeyRingError(f"active reply token key id {active_key_id!r} is not in the ring")
        self._keys = dict(keys)
        self.active_key_id = active_key_id
        self.max_age_days = max_age_days

    @classmethod
    def parse(cls, spec: str, active_key_id: str, *, max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> ReplyTokens:
        """Build from ``"id1:BASE64KEY,id2:BASE64KEY"`` (as the credential key ring is written).

        Raises:
            KeyRingError: as the constructor, or a malformed entry.
        """
        return cls(parse_key_spec(spec), active_key_id, max_age_days=max_age_days)

    def _mac(self, key_id: str, digest: bytes, day: bytes) -> bytes:
        msg = b"laifaxin:reply:v1:" + key_id.encode("ascii") + b":" + digest + day
        return hmac.new(self._keys[key_id], msg, hashlib.sha256).digest()[:MAC_BYTES]

    def sign(self, message_id: str, *, today: date | None = None) -> str:
        """The token for a sent message's Message-ID, issued ``today`` (UTC date by default)."""
        issued = today or datetime.now(UTC).date()
        day = max(0, (issued - EPOCH).days).to_bytes(2, "big")
        digest = message_digest(message_id)
        mac = self._mac(self.active_key_id, digest, day)
        body = base64.b32encode(digest + day + mac).decode("ascii").rstrip("=").lower()
        return f"{self.active_key_id}.{body}"

    def verify(self, token: str, *, today: date | None = None) -> VerifiedToken | Rejected:
        """Check a token's signature and age; never raises on hostile input."""
        m = _TOKEN.match(token.strip().lower()[:64])
        if not m:
            return Rejected("malformed")
        key_id, body = m.groups()
        if key_id not in self._keys:
            return Rejected("unknown_key")
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):
            return Rejected("malformed")
        if len(raw) != DIGEST_BYTES + 2 + MAC_BYTES:
            return Rejected("malformed")
        digest, day, mac = raw[:DIGEST_BYTES], raw[DIGEST_BYTES : DIGEST_BYTES + 2], raw[DIGEST_BYTES + 2 :]
        if not hmac.compare_digest(mac, self._mac(key_id, digest, day)):
            return Rejected("bad_signature")
        issued = date.fromordinal(EPOCH.toordinal() + int.from_bytes(day, "big"))
        now = today or datetime.now(UTC).date()
        if (issued - now).days > 1:
            return Rejected("not_yet_valid")
        if (now - issued).days > self.max_age_days:
            return Rejected("expired")
        return VerifiedToken(digest=digest, issued=issued, key_id=key_id)

    def reply_address(self, message_id: str, *, mailbox: str, today: date | None = None) -> str:
        """``local+TOKEN@domain`` for the system mailbox's address ``mailbox`` (RFC 5233 sub-address)."""
        local, _, domain = mailbox.rpartition("@")
        return f"{local}+{self.sign(message_id, today=today)}@{domain}"


def token_from_address(address: str) -> str | None:
    """The ``+detail`` part of ``local+detail@domain`` (RFC 5233), or None when the address has none."""
    m = _ADDRESS.match(address.strip())
    return m.group(2) if m else None
