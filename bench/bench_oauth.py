"""Refreshing OAuth access tokens of many mailboxes against the local Ory Hydra (binding's refresher).

Set-up: ``--mailboxes`` (200; quick: 30) users sign in at Hydra (authorization code with PKCE, through the login
and consent pages), and their mailboxes are stored in binding's collection on the real FerretDB with the
refresh tokens sealed, all due at once (the worst case: every mailbox bound in the same instant).

Figures (all measured in this run):

- ``oauth_refreshes_per_second``: one refresher pass (:meth:`TokenRefresher.run_once`, ``--concurrency`` at a
  time, 1 by default because Hydra's in-memory SQLite refuses concurrent writes) over every
  mailbox: refresh-token grant at Hydra (rotating the refresh token), access token and new refresh token sealed
  and stored, ``mailbox.verified`` handed to the publisher (a no-op here: Kafka is not what is measured);
- ``oauth_refresh_ms_p50`` / ``oauth_refresh_ms_p99``: that pass's wall time per mailbox, milliseconds;
- ``oauth_refresh_peak_minute_share``: after the pass, the next refresh times the refresher stored (between
  50 % and 75 % of each token's life, drawn per mailbox; Hydra's tokens live 1 hour): the largest share of the
  mailboxes due within any one minute (sliding window), percent. Without jitter every mailbox would fall in
  one minute (100 %); ``oauth_refresh_spread_minutes``: minutes between the first and last of them.

Each figure is printed as ``figure: NAME = VALUE UNIT``. Run: ``uv run python bench/bench_oauth.py`` (``--quick``
for a small size). Needs the local servers with Hydra (``uv run python deploy/local/infra.py up``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import figure, infra, percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from laifaxin_binding.oauth import OAuthService, TokenRefresher
from laifaxin_binding.service import MailboxService
from laifaxin_binding.settings import BindingSettings
from laifaxin_binding.store import AttemptLog, MailboxStore
from laifaxin_binding.verify import Verifier
from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.logging import configure_logging
from laifaxin_shared.mongo import make_mongo_client
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from tests.support.oauth import Hydra

SCOPES = ("openid", "email", "offline_access", "https://outlook.office.com/IMAP.AccessAsUser.All")


class Timed(OAuthService):
    """The service, with each refresh's wall time recorded."""

    times: list[float]

    async def refresh_mailbox(self, doc: dict[str, Any], *, now: datetime | None = None) -> str:
        t0 = time.perf_counter()
        try:
            return await super().refresh_mailbox(doc, now=now)
        finally:
            self.times.append(time.perf_counter() - t0)


def peak_minute_share(times: list[datetime]) -> float:
    """Largest share (0-1) of ``times`` inside any 60-second window."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] - start < timedelta(seconds=60):
            j += 1
        best = max(best, j - i)
    return best / len(ordered) if ordered else 0.0


async def main(n: int, concurrency: int) -> None:
    configure_logging("bench-oauth", "WARNING", json=True)
    ep = infra()
    hydra = Hydra(ep["hydra"])
    client = hydra.create_client("http://127.0.0.1:9/cb", scopes=SCOPES, name="bench")
    settings = BindingSettings(
        environment="test",
        mongodb_url=ep["mongodb_url"],
        mongodb_database=f"bench_oauth_{uuid.uuid4().hex[:8]}",
        oauth_redirect_uris="http://127.0.0.1:9/cb",
        oauth_microsoft_client_id=client.client_id,
        oauth_microsoft_client_secret=client.client_secret,
        oauth_microsoft_authority=hydra.issuer,
    )
    mongo = make_mongo_client(ep["mongodb_url"], appname="bench-oauth")
    db = mongo[settings.mongodb_database]
    ring = KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0")
    published: list[Any] = []

    async def publish(event: Any) -> None:
        published.append(event)

    store = MailboxStore(db)
    await store.init()
    mailboxes = MailboxService(
        store=store,
        attempts=AttemptLog(db, timedelta(minutes=15)),
        verifier=Verifier(),
        keyring=ring,
        publish=publish,
    )
    service = Timed(settings, mailboxes)
    service.times = []
    try:
        t0 = time.perf_counter()
        # One at a time: Hydra's in-memory SQLite refuses concurrent writes ("Unable to serialize access").
        tokens = [
            await asyncio.to_thread(
                hydra.tokens_for, client, f"bench{i}-{uuid.uuid4().hex[:6]}@laifaxin.test", SCOPES
            )
            for i in range(n)
        ]
        print(f"{n} sign-ins in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        now = datetime.now(UTC)
        docs = []
        for i, tok in enumerate(tokens):
            mid = f"mbx_bench{i:05d}"
            docs.append(
                {
                    "_id": mid,
                    "tenant_id": "bench",
                    "user_id": "u",
                    "email": f"bench{i}@laifaxin.test",
                    "nickname": "",
                    "provider_id": "outlook",
                    "username": f"bench{i}@laifaxin.test",
                    "imap": {"host": "127.0.0.1", "port": 993, "security": "ssl"},
                    "smtp": {"host": "127.0.0.1", "port": 465, "security": "ssl"},
                    "imap_id_required": False,
                    "sync": {"enabled": True, "interval_seconds": 300, "initial_window_days": 30},
                    "credential": ring.seal(tok.access_token, tenant_id="bench", mailbox_id=mid).model_dump(),
                    "auth": "oauth2",
                    "oauth": {
                        "identity": "microsoft",
                        "refresh": ring.seal(
                            str(tok.refresh_token), tenant_id="bench", mailbox_id=mid
                        ).model_dump(),
                        "access_expires_at": now + timedelta(seconds=tok.expires_in),
                        "refresh_at": now - timedelta(seconds=1),
                        "revoked": False,
                    },
                    "status": "normal",
                    "state": "ok",
                    "status_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await db["mailboxes"].insert_many(docs)
        refresher = TokenRefresher(service, interval_s=3600, concurrency=concurrency)
        t0 = time.perf_counter()
        counts = await refresher.run_once()
        wall = time.perf_counter() - t0
        assert counts["refreshed"] == n, counts
        figure("oauth_refreshes_per_second", n / wall, "1/s")
        figure("oauth_refresh_ms_p50", percentile(service.times, 50) * 1000, "ms")
        figure("oauth_refresh_ms_p99", percentile(service.times, 99) * 1000, "ms")
        due = [d["oauth"]["refresh_at"] async for d in db["mailboxes"].find({"tenant_id": "bench"})]
        figure("oauth_refresh_peak_minute_share", 100 * peak_minute_share(due), "%")
        figure("oauth_refresh_spread_minutes", (max(due) - min(due)).total_seconds() / 60, "min")
    finally:
        await mongo.drop_database(settings.mongodb_database)
        await mongo.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mailboxes", type=int, default=None)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="refreshes at a time (1: Hydra's in-memory SQLite serialises writes and refuses concurrent ones)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.mailboxes or (30 if args.quick else 200), args.concurrency))
