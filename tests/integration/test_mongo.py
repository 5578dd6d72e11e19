"""PyMongo's AsyncMongoClient against the real MongoDB-wire server (FerretDB locally, MongoDB when given)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from laifaxin_shared.mongo import ensure_indexes, insert_unique, make_mongo_client, ping
from tests.support.infra import Servers

pytestmark = pytest.mark.integration

INDEXES = {
    "messages": [
        IndexModel(
            [
                ("mailbox_id", ASCENDING),
                ("folder", ASCENDING),
                ("uidvalidity", ASCENDING),
                ("uid", ASCENDING),
            ],
            unique=True,
            name="message_identity",
        )
    ],
    "deliveries": [IndexModel([("dedupe_key", ASCENDING)], unique=True, name="dedupe_key")],
    "attempts": [
        IndexModel([("tenant_id", ASCENDING), ("at", ASCENDING)], name="tenant_at"),
        IndexModel([("at", ASCENDING)]),  # a generated name
    ],
}


async def test_ping(real_servers: Servers) -> None:
    client = make_mongo_client(real_servers.mongodb_url)
    try:
        assert await ping(client)
    finally:
        await client.close()


async def test_write_and_read_back(mongo_db: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    await mongo_db.mailboxes.insert_one(
        {"_id": "mbx_1", "tenant_id": "t1", "email": "a@b.c", "created_at": now}
    )
    doc = await mongo_db.mailboxes.find_one({"_id": "mbx_1", "tenant_id": "t1"})
    assert doc is not None and doc["email"] == "a@b.c"
    assert doc["created_at"] == now and doc["created_at"].tzinfo is not None
    assert await mongo_db.mailboxes.find_one({"_id": "mbx_1", "tenant_id": "t2"}) is None
    result = await mongo_db.mailboxes.update_one({"_id": "mbx_1"}, {"$set": {"email": "x@y.z"}})
    assert result.modified_count == 1
    assert [d["email"] async for d in mongo_db.mailboxes.find({"tenant_id": "t1"})] == ["x@y.z"]


async def test_unique_index_and_duplicate_key(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db, INDEXES)
    await ensure_indexes(mongo_db, INDEXES)  # idempotent, also for a collection with several indexes
    assert {ix["name"] async for ix in await mongo_db.attempts.list_indexes()} == {
        "_id_",
        "tenant_at",
        "at_1",
    }
    names = {ix["name"] async for ix in await mongo_db.messages.list_indexes()}
    assert "message_identity" in names
    key = {"mailbox_id": "m", "folder": "INBOX", "uidvalidity": 7, "uid": 1}
    await mongo_db.messages.insert_one({**key, "subject": "first"})
    with pytest.raises(DuplicateKeyError):
        await mongo_db.messages.insert_one({**key, "subject": "second"})
    assert await mongo_db.messages.count_documents(key) == 1


async def test_insert_unique_claims_a_key_once(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db, INDEXES)
    claims = [await insert_unique(mongo_db.deliveries, {"dedupe_key": "ev1:u1:wechat"}) for _ in range(3)]
    assert claims == [True, False, False]
    assert await mongo_db.deliveries.count_documents({}) == 1
