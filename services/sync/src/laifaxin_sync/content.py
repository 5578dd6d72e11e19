"""``GET /v1/raw``: the raw RFC 5322 bytes of one stored message, for services holding a signed grant.

Sync owns ``raw_messages`` (``_id`` = the ``raw_ref`` that ``mail.received`` carries). This route is the only
way another service reads them: the request carries a grant from :mod:`laifaxin_shared.content_token` (HMAC over
``raw_ref`` and a short expiry, keyed with ``SYNC_CONTENT_TOKEN_SECRET``). Answers:

- 200 ``message/rfc822``, streamed in 64 KiB chunks; ``X-Laifaxin-Truncated: 1`` when the stored copy was cut at
  ``SYNC_RAW_MAX_BYTES``;
- 401 a missing, expired or wrongly signed grant (the reason in the body, never the grant);
- 404 no such raw message (never stored, or removed with its mailbox);
- 503 no ``SYNC_CONTENT_TOKEN_SECRET`` configured (the route is then closed).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from laifaxin_shared import content_token
from laifaxin_shared.logging import get_logger
from laifaxin_sync.store import SyncStore

log = get_logger(__name__)

CHUNK_BYTES = 64 * 1024


def content_router(store: SyncStore, secret: str) -> APIRouter:
    """The router serving ``GET /v1/raw`` from ``store`` with grants keyed by ``secret`` (empty: 503)."""
    router = APIRouter()

    @router.get("/v1/raw")
    async def raw(request: Request) -> Response:
        if not secret:
            return PlainTextResponse("content reads are disabled\n", status_code=503)
        h = request.headers
        try:
            ref = content_token.verify(
                secret,
                h.get(content_token.HEADER_REF),
                h.get(content_token.HEADER_EXPIRES),
                h.get(content_token.HEADER_SIGNATURE),
            )
        except content_token.GrantError as exc:
            log.info("raw read refused", reason=exc.reason)
            return PlainTextResponse(exc.reason + "\n", status_code=401)
        doc = await store.raw.find_one({"_id": ref})
        if doc is None:
            return PlainTextResponse("no such message\n", status_code=404)
        data = bytes(doc.get("data") or b"")

        def chunks() -> Iterator[bytes]:
            view = memoryview(data)
            for start in range(0, len(view), CHUNK_BYTES):
                yield bytes(view[start : start + CHUNK_BYTES])

        headers = {"Content-Length": str(len(data))}
        if doc.get("truncated"):
            headers["X-Laifaxin-Truncated"] = "1"
        return StreamingResponse(chunks(), media_type="message/rfc822", headers=headers)

    return router
