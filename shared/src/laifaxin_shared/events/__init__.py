"""Event models v1, one per topic. See :mod:`laifaxin_shared.topics` for the registry that maps them."""

from .base import EmailAddress, EncryptedCredential, Envelope, EventModel, ServerEndpoint, utc_now
from .contact import ContactEvidence, ContactStatus, ContactStatusKind, contact_event_id
from .mail import (
    AttachmentMeta,
    BounceInfo,
    Category,
    ClassificationFlags,
    MailClassified,
    MailReceived,
    MatchMethod,
    MessageRef,
    ReplyMatch,
)
from .mailbox import MailboxRemoved, MailboxSyncStatus, MailboxUpdated, MailboxVerified, SyncSettings
from .sent import MailSent, SendKind

__all__ = [
    "AttachmentMeta",
    "BounceInfo",
    "Category",
    "ClassificationFlags",
    "ContactEvidence",
    "ContactStatus",
    "ContactStatusKind",
    "EmailAddress",
    "EncryptedCredential",
    "Envelope",
    "EventModel",
    "MailClassified",
    "MailReceived",
    "MailSent",
    "MailboxRemoved",
    "MailboxSyncStatus",
    "MailboxUpdated",
    "MailboxVerified",
    "MatchMethod",
    "MessageRef",
    "ReplyMatch",
    "SendKind",
    "ServerEndpoint",
    "SyncSettings",
    "contact_event_id",
    "utc_now",
]
