"""Live updates for open inbox pages: an in-process hub from the consumer to the SSE streams of one replica.

Each stream subscribes for its (tenant, user); the consumer publishes, after a batch is written, one item per
new message or classification of that owner. A stream's queue is bounded: a client that does not read loses
the oldest items, never blocks the consumer (it can list again to catch up).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

QUEUE_MAX = 256


class Hub:
    """Fan-out of live items to the subscribed streams of each owner."""

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str], set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def subscribe(self, tenant_id: str, user_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self._subs[(tenant_id, user_id)].add(queue)
        return queue

    def unsubscribe(self, tenant_id: str, user_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        subs = self._subs.get((tenant_id, user_id))
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subs[(tenant_id, user_id)]

    def publish(self, tenant_id: str, user_id: str, item: dict[str, Any]) -> None:
        for queue in self._subs.get((tenant_id, user_id), ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(item)

    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())
