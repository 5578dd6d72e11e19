"""A MailboxLoop whose report() path runs against in-memory stand-ins for the publisher and the store (the two
calls report() makes), for the unit tests of status refresh and catch-up progress."""

from __future__ import annotations

from typing import Any

from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.events import MailboxSyncStatus
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from laifaxin_sync.mailbox_loop import MailboxLoop, WorkerContext
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.settings import SyncSettings


class FakePublisher:
    def __init__(self) -> None:
        self.statuses: list[MailboxSyncStatus] = []

    async def status(self, event: MailboxSyncStatus) -> None:
        self.statuses.append(event)


class FakeStore:
    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []

    async def set_state(self, mailbox_id: str, state: dict[str, Any]) -> None:
        self.states.append(state)


def reporting_loop(
    status: dict[str, Any] | None, **settings: Any
) -> tuple[MailboxLoop, FakePublisher, FakeStore, SyncMetrics]:
    """Mailbox ``mbx_1`` with its stored ``status`` (None: never reported), under ``SyncSettings(**settings)``."""
    publisher, store, metrics = FakePublisher(), FakeStore(), SyncMetrics()
    ctx = WorkerContext(
        SyncSettings(environment="test", http_port=0, **settings),
        store,  # type: ignore[arg-type]  # the methods report() uses
        publisher,  # type: ignore[arg-type]
        metrics,
        KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0"),
    )
    config = {"_id": "mbx_1", "partition": 0, "tenant_id": "t1", "user_id": "u1", "status": status}
    return MailboxLoop(config, ctx), publisher, store, metrics
