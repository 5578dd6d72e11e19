"""HTTP routes of the inbox API (``/v1/inbox``). Handlers are thin: authenticate, call one service method.

| method | path | what |
|---|---|---|
| GET | /v1/inbox/mailboxes | the caller's bound mailboxes |
| GET | /v1/inbox/messages | list across mailboxes, newest first, cursor pagination and filters |
| GET | /v1/inbox/messages/{id} | one message: headers, text, sanitised HTML, attachments |
| PATCH | /v1/inbox/messages/{id} | mark read / handled |
| GET | /v1/inbox/messages/{id}/attachments/{index} | download one attachment (streamed) |
| GET | /v1/inbox/messages/{id}/thread | the conversation (received and sent) |
| GET | /v1/inbox/counts | messages per category and the open To Reply count (badges) |
| GET | /v1/inbox/events | Server-Sent Events: new mail, classifications, replies of the caller |

Errors: ``{"detail": {"code": ..., "message": ...}}``; a message that is not the caller's is 404 like one that
does not exist.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer

from laifaxin_shared.auth import Principal

from .auth import principal
from .content import ContentError
from .live import Hub
from .models import (
    CountsOut,
    ErrorOut,
    MailboxOut,
    MessageOut,
    MessagePage,
    MessageSummary,
    StatePatch,
    ThreadOut,
)
from .service import BadRequest, Filters, InboxService, NotFound

_bearer = HTTPBearer(
    auto_error=False,
    description="JWT (HS256, the inbox's own key INBOX_JWT_SECRET) with claims tenant_id, sub, aud "
    "(laifaxin-inbox), iat, exp.",
)
router = APIRouter(prefix="/v1/inbox", tags=["inbox"], dependencies=[Depends(_bearer)])
User = Annotated[Principal, Depends(principal)]
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "A malformed parameter."},
    401: {"model": ErrorOut, "description": "No valid bearer token."},
    404: {"model": ErrorOut, "description": "No such message for the caller."},
}


def _svc(request: Request) -> InboxService:
    svc: InboxService = request.app.state.service
    return svc


Svc = Annotated[InboxService, Depends(_svc)]


def _not_found() -> HTTPException:
    return HTTPException(404, {"code": "not_found", "message": "no such message"})


@router.get("/mailboxes", response_model=list[MailboxOut])
async def list_mailboxes(user: User, svc: Svc) -> list[MailboxOut]:
    """The caller's bound mailboxes."""
    return await svc.mailboxes(user)


@router.get("/messages", response_model=MessagePage, responses=ERRORS)
async def list_messages(
    user: User,
    svc: Svc,
    mailbox_id: str | None = None,
    folder: str | None = None,
    category: Annotated[
        str | None, Query(description="to_reply, ooo, inquiry, rejection, bounce, notification.")
    ] = None,
    campaign_id: str | None = None,
    sent_message_id: Annotated[
        str | None, Query(description="Only replies matched to this sent Message-ID.")
    ] = None,
    since: Annotated[datetime | None, Query(description="Received at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Received at or before (ISO 8601).")] = None,
    unread: bool | None = None,
    handled: Annotated[
        bool | None,
        Query(description="false with category=to_reply is the To Reply queue: answered ones leave it."),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> MessagePage:
    """Messages of every mailbox of the caller (and their matched system-mailbox replies), newest first."""
    filters = Filters(
        mailbox_id, folder, category, campaign_id, sent_message_id, since, until, unread, handled
    )
    try:
        return await svc.list_messages(user, filters, limit=limit, cursor=cursor)
    except BadRequest as exc:
        raise HTTPException(400, {"code": "invalid_request", "message": str(exc)}) from None


@router.get("/messages/{message_id}", response_model=MessageOut, responses=ERRORS)
async def get_message(message_id: str, user: User, svc: Svc) -> MessageOut:
    """One message with its headers, text, sanitised HTML and attachment list."""
    try:
        return await svc.get_message(user, message_id)
    except NotFound:
        raise _not_found() from None


@router.patch("/messages/{message_id}", response_model=MessageSummary, responses=ERRORS)
async def patch_message(message_id: str, body: StatePatch, user: User, svc: Svc) -> MessageSummary:
    """Mark read/unread and handled/not handled (handled leaves To Reply; false brings it back)."""
    try:
        return await svc.set_state(user, message_id, body)
    except NotFound:
        raise _not_found() from None


@router.get(
    "/messages/{message_id}/attachments/{index}",
    responses={
        **ERRORS,
        200: {"content": {"application/octet-stream": {}}, "description": "The bytes."},
        502: {"model": ErrorOut, "description": "Sync's raw copy could not be read."},
    },
)
async def download_attachment(message_id: str, index: int, user: User, svc: Svc) -> StreamingResponse:
    """One attachment's decoded bytes, streamed, as ``Content-Disposition: attachment``."""
    try:
        att, body = await svc.attachment(user, message_id, index)
    except NotFound:
        raise HTTPException(404, {"code": "not_found", "message": "no such message or attachment"}) from None
    except ContentError as exc:
        raise HTTPException(
            502, {"code": exc.code, "message": "the message content could not be read"}
        ) from None
    name = att.filename or f"attachment-{index}"
    return StreamingResponse(
        body,
        media_type=att.content_type if "/" in att.content_type else "application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/messages/{message_id}/thread", response_model=ThreadOut, responses=ERRORS)
async def get_thread(message_id: str, user: User, svc: Svc) -> ThreadOut:
    """The conversation the message belongs to (References/In-Reply-To), received and sent, oldest first."""
    try:
        return await svc.thread(user, message_id)
    except NotFound:
        raise _not_found() from None


@router.get("/counts", response_model=CountsOut)
async def counts(user: User, svc: Svc) -> CountsOut:
    """Messages per category and open To Reply messages, for the badges."""
    return await svc.counts(user)


@router.get("/events", responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream."}})
async def events(request: Request, user: User) -> StreamingResponse:
    """Server-Sent Events for the caller: ``event: message`` (new mail), ``event: classified``, ``event:
    replied``; each ``data`` is JSON with the message ``id``. A comment line is sent when idle (keep-alive)."""
    hub: Hub = request.app.state.hub
    keepalive: float = request.app.state.settings.sse_keepalive_s
    queue = hub.subscribe(user.tenant_id, user.user_id)

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n: connected\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield f"event: {item.get('type', 'message')}\ndata: {json.dumps(item)}\n\n"
        finally:
            hub.unsubscribe(user.tenant_id, user.user_id, queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
