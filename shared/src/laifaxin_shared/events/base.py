"""The envelope every event carries, and the value types several events share.

Schema evolution (v1): producers may add optional fields within a ``schema_version``; consumers ignore fields
they do not know (``extra="ignore"``). A change that removes, renames or retypes a field bumps
``schema_version`` and gets a new model module.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime normalised to UTC; naive datetimes are refused."""


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class EventModel(BaseModel):
    """Base of every model that travels on Kafka: immutable, unknown fields ignored for forward compatibility."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Envelope(EventModel):
    """Fields every event carries (ARCHITECTURE.md, "Services and the events between them").

    Delivery is at-least-once: consumers are idempotent on ``event_id`` or on the event's natural key.
    """

    event_id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        description="Unique id of this event (UUID4); the idempotency key for consumers.",
        examples=["5b0f7a0e-3c43-4a43-9a7c-0f6d3a3f1d2e"],
    )
    occurred_at: UtcDatetime = Field(
        default_factory=utc_now,
        description="When the fact happened, in UTC (ISO 8601 with offset).",
        examples=["2026-11-21T08:30:00Z"],
    )
    schema_version: Literal[1] = Field(
        default=1, description="Version of this event's schema; bumped on any breaking change.", examples=[1]
    )
    tenant_id: str = Field(
        min_length=1,
        max_length=64,
        description="The Laifaxin tenant (customer organisation) that owns the mailbox.",
        examples=["tenant-acme"],
    )


MailboxId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Stable id of a bound mailbox; the Kafka key of every mailbox.* and mail.* event.",
        examples=["mbx_01JD5X6Q8ZK3"],
    ),
]

Security = Literal["ssl", "starttls"]
"""Transport security of a mail server endpoint: implicit TLS (``ssl``) or STARTTLS upgrade (``starttls``).

Plaintext without TLS is not offered: credentials never travel unencrypted.
"""


class ServerEndpoint(EventModel):
    """An IMAP or SMTP server as the user's client reaches it."""

    host: str = Field(
        min_length=1, max_length=253, description="Server host name.", examples=["imap.163.com"]
    )
    port: int = Field(ge=1, le=65535, description="TCP port.", examples=[993])
    security: Security = Field(
        description="ssl = implicit TLS; starttls = upgrade on a plain port.", examples=["ssl"]
    )


class EncryptedCredential(EventModel):
    """A mailbox password / app password / authorization code, sealed with AES-256-GCM.

    The associated data (``aad``) binds it: v2 to the tenant, the mailbox, and the IMAP and SMTP host, port,
    security and login it was verified with, so an envelope copied onto another mailbox, or an event pointing it
    at other servers, does not decrypt; v1 (older envelopes, and secrets other than mailbox passwords) to the
    tenant and object id only. Decrypted only inside binding (to verify) and sync (to log in); see
    :mod:`laifaxin_shared.crypto`.
    """

    algorithm: Literal["AES-256-GCM"] = Field(
        default="AES-256-GCM", description="AEAD algorithm (NIST SP 800-38D).", examples=["AES-256-GCM"]
    )
    key_id: str = Field(
        min_length=1,
        max_length=64,
        description="Id of the key in the key ring that sealed it.",
        examples=["k2026-11"],
    )
    nonce: str = Field(
        min_length=16,
        max_length=16,
        description="96-bit GCM nonce, base64url without padding.",
        examples=["q83vEjRWeJq83vEj"],
    )
    ciphertext: str = Field(
        min_length=22,
        max_length=8192,
        description="Ciphertext with the 128-bit GCM tag appended, base64url without padding.",
        examples=["3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    )
    aad: Literal["v1", "v2"] = Field(
        default="v1",
        description="Associated-data version: v2 = bound to tenant, mailbox and the IMAP/SMTP host, port, security "
        "and login; v1 = tenant and mailbox only (absent means v1).",
        examples=["v2"],
    )

    def __repr__(self) -> str:
        return f"EncryptedCredential(key_id={self.key_id!r}, aad={self.aad!r})"


class EmailAddress(EventModel):
    """A mailbox address with its display name (RFC 5322 section 3.4)."""

    name: str = Field(
        default="", max_length=512, description="Display name, decoded (RFC 2047).", examples=["张伟"]
    )
    email: str = Field(max_length=512, description="addr-spec, as written.", examples=["buyer@example.com"])
