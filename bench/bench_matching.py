"""Reply matching: throughput of the matcher with a large sent registry, the index's memory, and the bytes each
sent message costs in FerretDB.

Figures (``--quick``: 20,000 sent messages and 4,000 received; full: 1,000,000 and 20,000; the figure names say
the size):

- ``matching_rate_<N>_sent``: received messages matched per second on one core (CPU time of this process),
  through :meth:`ReplyMatching.on_classified` in batches of 500 — the service's path over the in-memory index the
  stored registry answers from. Mix: 40 % In-Reply-To, 10 % References, 15 % reply token (system mailbox),
  15 % heuristic (no threading headers), 5 % bounces naming the recipient, 15 % unmatched.
- ``matched_share``: the share of messages matched (checks the mix, not a quality figure).
- ``index_bytes_per_sent``: RSS growth of the index per sent message.
- ``stored_bytes_per_sent``: BSON bytes of the stored document per sent message (what FerretDB keeps as JSON),
  and ``ferretdb_bytes_per_sent``: the collection's ``size`` over its documents after inserting 2,000 through
  :class:`MongoRegistry` (needs ``MONGODB_URL`` or the local infra file; skipped with ``--no-db``).
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

import bson
from common import figure, infra, max_rss_mb  # bench/common.py (the script's folder is on sys.path)

from laifaxin_classifier.matching.cli import DEV_REPLY_TOKEN_KEYS
from laifaxin_classifier.matching.matcher import Matcher
from laifaxin_classifier.matching.pipeline import ReplyMatching
from laifaxin_classifier.matching.records import SentRecord, tenant_scope
from laifaxin_classifier.matching.registry import MemoryRegistry, MongoRegistry
from laifaxin_classifier.matching.subjects import subject_key
from laifaxin_shared.events import (
    BounceInfo,
    ClassificationFlags,
    EmailAddress,
    MailClassified,
    MailReceived,
    MessageRef,
)
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.replytoken import ReplyTokens

SYSTEM_TENANT = "laifaxin-system"
SUBJECTS = [f"Campaign subject number {i} for buyers" for i in range(50)]
NOW = datetime.now(UTC).replace(microsecond=0)


def sent_records(n: int, rng: random.Random) -> list[SentRecord]:
    out = []
    for i in range(n):
        system = i % 3 == 0
        tenant = sys.intern(f"tenant-{i % 500}")  # as SentRecord.from_event interns them
        out.append(
            SentRecord(
                scope=tenant_scope(tenant, system=system),
                message_id=f"lfx.{i:012x}.cmd-{i}@mail.laifaxin.test",
                provider_message_id=None,
                mailbox_id="mbx_system" if system else sys.intern(f"mbx_{i % 500}"),
                tenant_id=tenant,
                user_id=sys.intern(f"u_{i % 500}"),
                system=system,
                event_id=str(uuid.UUID(int=i)),
                campaign_id=sys.intern(f"cmp_{i % 997}"),
                recipients=(f"r{i}@buyer{i % 1000}.example",),
                subject_key=subject_key(SUBJECTS[i % len(SUBJECTS)]),
                sent_at=NOW - timedelta(days=rng.randint(1, 25), seconds=rng.randint(0, 86400)),
            )
        )
    return out


def received(
    records: list[SentRecord], m: int, rng: random.Random, tokens: ReplyTokens
) -> list[tuple[MailReceived, MailClassified]]:
    out = []
    for j in range(m):
        rec = records[rng.randrange(len(records))]
        kind = rng.random()
        tenant = SYSTEM_TENANT if rec.system else rec.tenant_id
        subject = f"Re: {SUBJECTS[int(rec.message_id.split('.')[1], 16) % len(SUBJECTS)]}"
        update: dict[str, object] = {}
        category = "to_reply"
        bounce = None
        sender = rec.recipients[0]
        to = [EmailAddress(email="sales@acme.example")]
        if kind < 0.40:
            update["in_reply_to"] = rec.message_id
        elif kind < 0.50:
            update["references"] = [f"x{j}@elsewhere.example", rec.message_id]
        elif kind < 0.65 and rec.system:
            to = [EmailAddress(email=f"campaigns+{tokens.sign(rec.message_id)}@mail.laifaxin.test")]
        elif kind < 0.80:
            pass  # heuristic
        elif kind < 0.85:
            category = "bounce"
            bounce = BounceInfo(kind="hard", recipient=rec.recipients[0], status="5.1.1")
            sender = "mailer-daemon@mx.example"
            subject = "Undelivered Mail Returned to Sender"
        else:
            sender = f"stranger{j}@elsewhere.example"
            subject = "A new question"
            update["in_reply_to"] = f"{uuid.uuid4().hex}@elsewhere.example"
        ref = MessageRef(
            mailbox_id=rec.mailbox_id, folder="INBOX", uidvalidity=1, uid=j + 1, message_id=f"m{j}@x.example"
        )
        ev = MailReceived(
            tenant_id=tenant,
            user_id="u",
            ref=ref,
            content_hash="0" * 64,
            date=NOW,
            subject=subject,
            from_=EmailAddress(email=sender),
            to=to,
            size_bytes=1000,
            raw_ref="bench",
            **update,  # type: ignore[arg-type]
        )
        classified = MailClassified(
            tenant_id=tenant,
            user_id="u",
            ref=ref,
            received_event_id=str(ev.event_id),
            category=category,  # type: ignore[arg-type]
            confidence=0.9,
            flags=ClassificationFlags(bounce=category == "bounce"),
            bounce=bounce,
            subject=subject,
            from_=ev.from_,
        )
        out.append((ev, classified))
    return out


async def stored_size(records: list[SentRecord]) -> float | None:
    url = os.environ.get("MONGODB_URL")
    if not url:
        try:
            url = str(infra()["mongodb_url"])
        except (OSError, KeyError):
            return None
    client = make_mongo_client(url, appname="bench-matching")
    name = f"bench_matching_{uuid.uuid4().hex[:8]}"
    try:
        reg = MongoRegistry(client[name])
        for i in range(0, len(records), 500):
            await reg.add(records[i : i + 500])
        stats = await client[name].command("collStats", "sent")
        return float(stats["size"]) / max(1, int(stats["count"]))
    finally:
        await client.drop_database(name)
        await client.close()


async def run(n_sent: int, n_received: int, use_db: bool) -> None:
    rng = random.Random(5)
    tokens = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev")
    rss0 = max_rss_mb()
    records = sent_records(n_sent, rng)
    registry = MemoryRegistry()
    t0 = time.perf_counter()
    await registry.add(records)
    load_s = time.perf_counter() - t0
    index_mb = max_rss_mb() - rss0  # the records and both maps
    matching = ReplyMatching(registry, Matcher(registry, tokens, system_tenant_id=SYSTEM_TENANT))
    work = received(records, n_received, rng, tokens)
    matched = 0
    cpu0 = time.process_time()
    for i in range(0, len(work), 500):
        out = await matching.on_classified(work[i : i + 500])
        matched += sum(1 for c in out.classified if c.match is not None)
    cpu = time.process_time() - cpu0
    size = f"{n_sent // 1000}k" if n_sent < 1_000_000 else f"{n_sent // 1_000_000}m"
    figure(f"matching_rate_{size}_sent", n_received / cpu, "msg/cpu-s")
    figure("matched_share", matched / n_received, "x")
    figure(f"index_load_rate_{size}_sent", n_sent / load_s, "records/s")
    figure("index_bytes_per_sent", index_mb * 1024 * 1024 / n_sent, "B")
    figure(
        "stored_bytes_per_sent",
        sum(len(bson.encode(d)) for r in records[:2000] for d in r.to_documents()) / 2000,
        "B",
    )
    if use_db:
        per = await stored_size(records[:2000])
        if per is not None:
            figure("ferretdb_bytes_per_sent", per, "B")
    figure("rss_peak", max_rss_mb(), "MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 sent, 4,000 received")
    parser.add_argument("--no-db", action="store_true", help="skip the FerretDB size figure")
    args = parser.parse_args()
    n_sent, n_received = (20_000, 4_000) if args.quick else (1_000_000, 20_000)
    asyncio.run(run(n_sent, n_received, not args.no_db))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
