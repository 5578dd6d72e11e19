"""Reseal notify's stored secrets under the active key of ``NOTIFY_SECRETS_KEYS``:
``python -m laifaxin_notify reseal-secrets``.

Used when rotating notify's key ring, and once when upgrading from a notify that sealed users' Apprise URLs with
the mailbox credential ring: put that old key into ``NOTIFY_SECRETS_KEYS`` under its id next to the new active
key, run this, then drop the old key. Every ``apprise`` binding whose envelope is under another key id is opened
(its associated data binds it to its tenant, user and binding id) and sealed again under the active key. Safe to
repeat; never prints or logs a secret.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from laifaxin_shared.crypto import CredentialError, KeyRing
from laifaxin_shared.events.base import EncryptedCredential
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mongo import make_mongo_client

from .channels.apprise import credential_object_id
from .settings import NotifySettings
from .store import Store

log = get_logger(__name__)


async def reseal_secrets(settings: NotifySettings) -> dict[str, Any]:
    """Reseal every Apprise URL not under the active key; returns counts ``resealed``, ``current`` (already
    under the active key) and ``unopenable`` (its key is not in the ring, or the envelope is damaged: left as it
    is, and its binding fails to send until the user adds the URL again)."""
    ring = KeyRing.parse(settings.secrets_keys.get_secret_value(), settings.secrets_active_key_id)
    mongo = make_mongo_client(settings.mongodb_url.get_secret_value(), appname="notify-reseal")
    counts = {"resealed": 0, "current": 0, "unopenable": 0}
    try:
        store = Store(mongo[settings.mongodb_database])
        async for doc in store.bindings.find({"channel": "apprise"}):
            tenant_id, object_id = (
                str(doc["tenant_id"]),
                credential_object_id(doc["user_id"], doc["target_id"]),
            )
            try:
                envelope = EncryptedCredential.model_validate(doc["data"]["credential"])
                if envelope.key_id == settings.secrets_active_key_id:
                    counts["current"] += 1
                    continue
                url = ring.open(envelope, tenant_id=tenant_id, mailbox_id=object_id)
            except (CredentialError, ValidationError, KeyError, TypeError):
                counts["unopenable"] += 1
                log.warning("apprise url cannot be opened with NOTIFY_SECRETS_KEYS", binding=str(doc["_id"]))
                continue
            sealed = ring.seal(url, tenant_id=tenant_id, mailbox_id=object_id).model_dump(mode="json")
            await store.bindings.update_one({"_id": doc["_id"]}, {"$set": {"data.credential": sealed}})
            counts["resealed"] += 1
    finally:
        await mongo.close()
    log.info("notify secrets resealed", **counts)
    return counts


def run(settings: NotifySettings) -> dict[str, Any]:
    return asyncio.run(reseal_secrets(settings))
