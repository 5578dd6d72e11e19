"""Inbox: read-model ingestion rate and list latency with N messages across M mailboxes.

Against the real FerretDB. The read model is written as the service's consumer writes it
(``Ingest.received`` / ``Ingest.classified`` in batches of 500, insert-only); the list queries are
``InboxService.list_messages`` as the HTTP handler calls it (no HTTP, no Kafka in the timing).

- ``inbox_ingest_received_rate``: mail.received events written per second (message, listing, owner, thread).
- ``inbox_ingest_classified_rate``: mail.classified events written per second (classification, category entry).
- ``inbox_list_first_page_p50/p99``: first page (50) of a random user's inbox.
- ``inbox_list_cursor_page_p99``: the page after it (cursor).
- ``inbox_list_category_p99``: first page of a random user's To Reply queue (category=to_reply, handled=false).

Mailboxes belong to users ten at a time (M/10 users). Full size: 1,000,000 messages across 1,000 mailboxes;
``--quick``: 5,000 across 50. ``--messages``/``--mailboxes`` choose others.

Prints ``figure: NAME = VALUE UNIT`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import figure, infra, percentile

from laifaxin_inbox.content import RawClient
from laifaxin_inbox.ingest import Ingest
from laifaxin_inbox.live import Hub
from laifaxin_inbox.service import Filters, InboxService
from laifaxin_inbox.store import Store
from laifaxin_shared.auth import Principal
from laifaxin_shared.events import MailClassified, MailReceived
from laifaxin_shared.mongo import make_mongo_client

BATCH = 500
BASE = datetime(2026, 1, 1, tzinfo=UTC)
CATEGORIES = ("to_reply", "inquiry", "ooo", "rejection", "notification", "bounce")


def received(i: int, mailboxes: int) -> MailReceived:
    mbx = i % mailboxes
    user = mbx // 10
    return MailReceived.model_validate(
        {
            "tenant_id": f"tenant-{user % 7}",
            "user_id": f"u{user}",
            "ref": {
                "mailbox_id": f"mbx-{mbx}",
                "folder": "INBOX",
                "uidvalidity": 1,
                "uid": i + 1,
                "message_id": f"m{i}@bench.example",
            },
            "subject": f"Inquiry {i}",
            "from": {"email": f"buyer{i % 997}@example.com"},
            "text": "Please quote 500 pcs FOB Shenzhen. " * 4,
            "size_bytes": 4000,
            "content_hash": "0" * 64,
            "raw_ref": f"sync:raw_messages/mbx-{mbx}:INBOX:1:{i + 1}",
            "arrived_at": BASE + timedelta(seconds=i * 7),
        }
    )


def classified(ev: MailReceived, i: int) -> MailClassified:
    return MailClassified.model_validate(
        {
            "tenant_id": ev.tenant_id,
            "user_id": ev.user_id,
            "ref": ev.ref.model_dump(),
            "received_event_id": str(ev.event_id),
            "category": CATEGORIES[i % len(CATEGORIES)],
            "confidence": 0.9,
            "arrived_at": ev.arrived_at,
        }
    )


async def main(messages: int, mailboxes: int, queries: int) -> None:
    client = make_mongo_client(infra()["mongodb_url"], appname="bench-inbox")
    name = f"bench_inbox_{uuid.uuid4().hex[:8]}"
    store = Store(client[name])
    await store.init()
    ingest = Ingest(store, Hub())
    service = InboxService(store, RawClient("http://127.0.0.1:9", "", timeout_s=1, max_bytes=1024))
    try:
        spent_r = spent_c = 0.0
        for start in range(0, messages, BATCH):
            evs = [received(i, mailboxes) for i in range(start, min(start + BATCH, messages))]
            cls = [classified(ev, start + k) for k, ev in enumerate(evs)]
            t0 = time.perf_counter()
            await ingest.received(evs)
            t1 = time.perf_counter()
            await ingest.classified(cls)
            spent_r += t1 - t0
            spent_c += time.perf_counter() - t1
        figure("inbox_messages", messages, "messages")
        figure("inbox_mailboxes", mailboxes, "mailboxes")
        figure("inbox_ingest_received_rate", messages / spent_r, "events/s")
        figure("inbox_ingest_classified_rate", messages / spent_c, "events/s")

        users = max(1, mailboxes // 10)
        rng = random.Random(7)
        first: list[float] = []
        nxt: list[float] = []
        cat: list[float] = []
        for _ in range(queries):
            u = rng.randrange(users)
            who = Principal(f"tenant-{u % 7}", f"u{u}")
            t0 = time.perf_counter()
            page = await service.list_messages(who, Filters(), limit=50)
            first.append((time.perf_counter() - t0) * 1000)
            assert page.items, who
            if page.next_cursor:
                t0 = time.perf_counter()
                await service.list_messages(who, Filters(), limit=50, cursor=page.next_cursor)
                nxt.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await service.list_messages(who, Filters(category="to_reply", handled=False), limit=50)
            cat.append((time.perf_counter() - t0) * 1000)
        figure("inbox_list_first_page_p50", percentile(first, 50), "ms")
        figure("inbox_list_first_page_p99", percentile(first, 99), "ms")
        figure("inbox_list_cursor_page_p99", percentile(nxt, 99), "ms")
        figure("inbox_list_category_p99", percentile(cat, 99), "ms")
    finally:
        await client.drop_database(name)
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--mailboxes", type=int, default=None)
    args = parser.parse_args()
    n = args.messages or (5_000 if args.quick else 1_000_000)
    m = args.mailboxes or (50 if args.quick else 1_000)
    asyncio.run(main(n, m, 5 if args.quick else 100))
