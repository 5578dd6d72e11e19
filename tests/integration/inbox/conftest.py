"""The inbox through its real parts: the inbox app (uvicorn, its Kafka consumers on the real broker, its read
model on the real FerretDB), and sync's raw-content route (uvicorn, sync's store on FerretDB) it reads from."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from bson import Binary
from fastapi import FastAPI

from laifaxin_inbox.app import create_app
from laifaxin_inbox.auth import issue_token
from laifaxin_inbox.settings import InboxSettings
from laifaxin_shared.events import MailClassified, MailReceived, MailSent
from laifaxin_shared.events.mail import ReplyMatch
from laifaxin_shared.kafka import make_broker, publish_event
from laifaxin_shared.mime.message import parse_message
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_sync.content import content_router
from laifaxin_sync.store import SyncStore
from tests.support.infra import Servers

CONTENT_SECRET = "content-secret-for-tests-0123456789abcdef"
BASE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port in this event loop; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before starting")
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Mail:
    """Publishes what sync, the classifier and the sender would, and stores raw messages where sync does."""

    def __init__(self, broker: Any, prefix: str, sync_store: SyncStore) -> None:
        self.broker = broker
        self.prefix = prefix
        self.sync_store = sync_store
        self.uid = 0

    async def receive(
        self,
        raw: bytes,
        *,
        tenant: str,
        user: str,
        mailbox: str,
        minutes: int,
        folder: str = "INBOX",
        publish: bool = True,
    ) -> MailReceived:
        """Store ``raw`` in sync's raw_messages and publish its mail.received (parsed by the shared parser)."""
        self.uid += 1
        key = f"{mailbox}:{folder}:1:{self.uid}"
        raw_ref = f"sync:raw_messages/{key}"
        await self.sync_store.store_raw(
            [
                {
                    "_id": raw_ref,
                    "mailbox_id": mailbox,
                    "size_bytes": len(raw),
                    "truncated": False,
                    "data": Binary(raw),
                    "stored_at": datetime.now(UTC),
                }
            ]
        )
        ev = parse_message(raw).to_event(
            tenant_id=tenant,
            user_id=user,
            mailbox_id=mailbox,
            folder=folder,
            uidvalidity=1,
            uid=self.uid,
            raw_ref=raw_ref,
            arrived_at=BASE + timedelta(minutes=minutes),
        )
        if publish:
            await publish_event(self.broker, ev, prefix=self.prefix)
        return ev

    async def classify(
        self, ev: MailReceived, category: str, *, match: ReplyMatch | None = None, system: bool = False
    ) -> MailClassified:
        owner_t = match.owner_tenant_id if (system and match) else ev.tenant_id
        owner_u = match.owner_user_id if (system and match) else ev.user_id
        out = MailClassified.model_validate(
            {
                "tenant_id": owner_t,
                "user_id": owner_u,
                "ref": ev.ref.model_dump(),
                "received_event_id": str(ev.event_id),
                "category": category,
                "confidence": 0.9,
                "subject": ev.subject,
                "from": ev.from_.model_dump() if ev.from_ else None,
                "snippet": ev.text[:100],
                "arrived_at": ev.arrived_at,
                "match": match,
                "system_mailbox": system,
            }
        )
        await publish_event(self.broker, out, prefix=self.prefix)
        return out

    async def sent(
        self, *, tenant: str, user: str, mailbox: str, in_reply_to: str, references: list[str]
    ) -> MailSent:
        ev = MailSent.model_validate(
            {
                "tenant_id": tenant,
                "user_id": user,
                "mailbox_id": mailbox,
                "message_id": f"reply-{uuid.uuid4().hex[:8]}@laifa.xin",
                "from": {"email": "me@laifa.xin"},
                "to": [{"email": "buyer@example.com"}],
                "subject": "Re: quote",
                "kind": "reply",
                "in_reply_to": in_reply_to,
                "references": references,
                "sent_at": BASE + timedelta(hours=5),
            }
        )
        await publish_event(self.broker, ev, prefix=self.prefix)
        return ev


@pytest.fixture
async def inbox(real_servers: Servers, topic_prefix: str) -> AsyncIterator[dict[str, Any]]:
    """A running inbox (consuming ``topic_prefix``'s topics) and sync's content route; yields the base URLs,
    a token maker and a :class:`Mail` publisher."""
    client = make_mongo_client(real_servers.mongodb_url, appname="inbox-tests")
    db_inbox = f"test_inbox_{uuid.uuid4().hex[:10]}"
    db_sync = f"test_sync_{uuid.uuid4().hex[:10]}"
    sync_store = SyncStore(client[db_sync])
    sync_app = FastAPI()
    sync_app.include_router(content_router(sync_store, CONTENT_SECRET))
    async with serve(sync_app) as sync_url:
        settings = InboxSettings(
            environment="test",
            kafka_bootstrap_servers=real_servers.kafka_bootstrap_servers,
            mongodb_url=real_servers.mongodb_url,
            mongodb_database=db_inbox,
            topic_prefix=topic_prefix,
            create_topics=True,
            jwt_secret="inbox-test-secret-0123456789abcdef0123",
            sync_content_url=sync_url,
            sync_content_secret=CONTENT_SECRET,
            sse_keepalive_s=1.0,
        )
        producer = make_broker(settings, client_id="inbox-tests")
        await producer.connect()
        try:
            async with serve(create_app(settings)) as url:

                def token(tenant: str, user: str) -> dict[str, str]:
                    return {"Authorization": f"Bearer {issue_token(settings, tenant, user)}"}

                yield {
                    "url": url,
                    "sync_url": sync_url,
                    "token": token,
                    "mail": Mail(producer, topic_prefix, sync_store),
                    "settings": settings,
                }
        finally:
            await producer.stop()
            await client.drop_database(db_inbox)
            await client.drop_database(db_sync)
            await client.close()


async def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Call async ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode()


@pytest.fixture
def http() -> Callable[[], httpx.AsyncClient]:
    return lambda: httpx.AsyncClient(timeout=30)
