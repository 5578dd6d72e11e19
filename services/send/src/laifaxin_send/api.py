"""HTTP routes of the send API (``/v1/send``). Handlers are thin: authenticate, call one domain function.

| method | path | what |
|---|---|---|
| POST | /v1/send | accept a send command (202 with its state); published to mail.send, the worker does the rest |
| GET | /v1/send/{command_id} | the command's state: queued, deferred (with when and why), sending, sent, failed, unknown |
| GET | /v1/send/mailboxes/{mailbox_id}/plan | today's pacing (cap, used, spacing) and the bounce guard |
| POST | /v1/send/mailboxes/{mailbox_id}/resume | resume campaign sending paused by the bounce guard |

Every query is scoped by the token's tenant. Every error body is :class:`~laifaxin_send.models.ErrorOut`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from laifaxin_send.auth import decode_token
from laifaxin_send.errors import refusal
from laifaxin_send.models import ErrorOut, PlanOut, SendRequest
from laifaxin_send.pacing import bound_days, local_day, plan_for
from laifaxin_send.service import SendService, status_of
from laifaxin_send.settings import SendSettings
from laifaxin_shared.api import error_responses
from laifaxin_shared.auth import Principal
from laifaxin_shared.events import SendCommand, SendStatus
from laifaxin_shared.kafka import describe_validation_error
from laifaxin_shared.providers.catalog import find_provider

_bearer = HTTPBearer(auto_error=False, description="JWT (HS256) with claims tenant_id, sub, exp.")

ERROR_RESPONSES = error_responses(400, 401, 403, 404, 413, 422, 503, model=ErrorOut)
"""Every status a ``/v1/send`` operation can answer besides its success (400: a body that is not JSON; 413: over
``SEND_MAX_BODY_BYTES``, from the RequestGuard)."""


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller, from ``Authorization: Bearer <jwt>``; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise refusal("unauthorized", reason="no bearer token")
    settings: SendSettings = request.app.state.settings
    return decode_token(credentials.credentials, settings)


def service(request: Request) -> SendService:
    svc: SendService = request.app.state.service
    return svc


Who = Annotated[Principal, Depends(principal)]
Service = Annotated[SendService, Depends(service)]

router = APIRouter(prefix="/v1/send", responses=ERROR_RESPONSES)


@router.post("", status_code=202, response_model=SendStatus, tags=["send"])
async def submit(body: SendRequest, who: Who, svc: Service, request: Request) -> JSONResponse:
    """Accept a command: checks the mailbox is the caller's tenant's (or the system mailbox), publishes it to
    ``mail.send`` (keyed by mailbox), and answers 202 with its state (``queued`` until the worker stores and
    schedules it; the stored state when the same ``command_id`` was sent before: idempotent)."""
    try:
        command = SendCommand(tenant_id=who.tenant_id, user_id=who.user_id, **body.model_dump())
    except ValidationError as exc:
        raise refusal("invalid_command", details=describe_validation_error(exc)) from None
    mailbox = await svc.store.mailbox(command.mailbox_id)
    if mailbox is None or (mailbox["tenant_id"] != who.tenant_id and not mailbox.get("is_system")):
        raise refusal("mailbox_unknown")
    existing = await svc.status(who.tenant_id, command.command_id)
    if existing is None:
        await request.app.state.publish(command)
        existing = SendStatus(
            command_id=command.command_id, mailbox_id=command.mailbox_id, kind=command.kind, state="queued"
        )
    return JSONResponse(existing.model_dump(mode="json"), status_code=202)


@router.get("/{command_id}", response_model=SendStatus, tags=["send"])
async def get_status(command_id: str, who: Who, svc: Service) -> SendStatus:
    """The command's state; 404 ``command_not_found`` for another tenant's command or one not stored yet."""
    found = await svc.status(who.tenant_id, command_id)
    if found is None:
        raise refusal("command_not_found")
    return found


@router.get("/mailboxes/{mailbox_id}/plan", response_model=PlanOut, tags=["pacing"])
async def mailbox_plan(mailbox_id: str, who: Who, svc: Service) -> PlanOut:
    """Today's cap and spacing for the mailbox (warm-up or the provider's published cap), what is booked
    today, and the bounce guard's numbers."""
    mailbox = await svc.store.mailbox(mailbox_id)
    if mailbox is None or mailbox["tenant_id"] != who.tenant_id:
        raise refusal("mailbox_unknown")
    zone = svc.settings.zone
    today = local_day(svc.clock.now(), zone)
    plan = plan_for(
        find_provider(mailbox.get("provider_id")), bound_days(mailbox.get("bound_at"), today, zone)
    )
    booked = await svc.store.day(mailbox_id, today)
    sends, bounces, rate = await svc.bounce_rate(mailbox_id)
    return PlanOut(
        mailbox_id=mailbox_id,
        provider=plan.provider,
        daily_cap=plan.daily_cap if svc.settings.pacing else None,
        reserved_today=int(booked["reserved"]),
        min_spacing_seconds=plan.min_spacing_seconds,
        max_spacing_seconds=plan.max_spacing_seconds,
        source=plan.source,
        sending_paused=bool(mailbox.get("sending_paused")),
        sends_in_window=sends,
        bounces_in_window=bounces,
        bounce_rate=rate,
    )


@router.post("/mailboxes/{mailbox_id}/resume", response_model=PlanOut, tags=["pacing"])
async def resume(mailbox_id: str, who: Who, svc: Service) -> PlanOut:
    """Resume campaign sending paused by the bounce guard (its window restarts now); paused commands are
    scheduled again."""
    if not await svc.resume(who.tenant_id, mailbox_id):
        raise refusal("mailbox_unknown")
    return await mailbox_plan(mailbox_id, who, svc)


__all__ = ["router", "status_of"]
