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
from .mailbox import (
    BackupServers,
    MailboxRemoved,
    MailboxSyncStatus,
    MailboxUpdated,
    MailboxVerified,
    SyncSettings,
)
from .send import Attachment, CommandKind, SendCommand, SendFailed, SendState, SendStatus
from .sent import MailSent, SendKind

__all__ = [
    "Attachment",
    "AttachmentMeta",
    "BackupServers",
    "BounceInfo",
    "Category",
    "ClassificationFlags",
    "CommandKind",
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
    "SendCommand",
    "SendFailed",
    "SendKind",
    "SendState",
    "SendStatus",
    "ServerEndpoint",
    "SyncSettings",
    "contact_event_id",
    "utc_now",
]
