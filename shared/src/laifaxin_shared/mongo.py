"""MongoDB through PyMongo's asyncio API (``pymongo.AsyncMongoClient``; Motor is deprecated by MongoDB).

Each service owns one database. Indexes are declared as data (collection -> ``IndexModel`` list) next to the
code that relies on them and created at start by :func:`ensure_indexes`.

Portability with FerretDB v1 (local runs and CI; ARCHITECTURE.md "Storage"): no transactions, change streams,
TTL or partial indexes, ``$lookup``, or accumulators beyond ``$sum``; a unique violation is reported as
``DuplicateKeyError`` only by inserts, so claim a unique key with :func:`insert_unique` (insert first, then
handle the duplicate) rather than an upsert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .settings import ServiceSettings

Document = dict[str, Any]


def make_mongo_client(url: str, *, appname: str = "laifaxin", **kwargs: Any) -> AsyncMongoClient[Document]:
    """An ``AsyncMongoClient`` that returns aware UTC datetimes and stores UUIDs in the standard form.

    The client connects lazily; call ``await client.aconnect()`` or issue a command to connect.
    """
    options: dict[str, Any] = {
        "tz_aware": True,
        "uuidRepresentation": "standard",
        "appname": appname,
        "serverSelectionTimeoutMS": 10_000,
        **kwargs,
    }
    return AsyncMongoClient(url, **options)


def database_for(
    settings: ServiceSettings, client: AsyncMongoClient[Document] | None = None
) -> AsyncDatabase[Document]:
    """The service's own database named in ``settings`` (a new client when none is given)."""
    client = client or make_mongo_client(
        settings.mongodb_url.get_secret_value(), appname=settings.service_name
    )
    return client[settings.mongodb_database]


async def ensure_indexes(db: AsyncDatabase[Document], indexes: Mapping[str, Sequence[IndexModel]]) -> None:
    """Create the declared indexes that do not exist yet (by index name); idempotent.

    Only missing indexes are sent: FerretDB v1.24 drops the connection (a server-side panic) when
    ``createIndexes`` repeats several indexes that already exist, and MongoDB needs no such round trip either.

    Raises:
        pymongo.errors.OperationFailure: an index option the server does not support (FerretDB v1 refuses TTL
            and partial indexes), or an existing index of the same name with other keys or options.
    """
    for collection, models in indexes.items():
        if not models:
            continue
        existing = {ix["name"] async for ix in await db[collection].list_indexes()}
        missing = [m for m in models if m.document["name"] not in existing]
        if missing:
            await db[collection].create_indexes(missing)


async def insert_unique(collection: AsyncCollection[Document], document: Document) -> bool:
    """Insert ``document``; False when a unique index already holds its key (nothing is written then).

    This is the portable way to claim a key once (dedupe, idempotent consumers): FerretDB reports unique
    violations as ``DuplicateKeyError`` only on insert.
    """
    try:
        await collection.insert_one(document)
    except DuplicateKeyError:
        return False
    return True


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """True when the server answers ``ping`` (for readiness probes)."""
    result = await client.admin.command("ping")
    return bool(result.get("ok"))
