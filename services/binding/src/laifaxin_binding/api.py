"""HTTP routes of the binding API (``/v1``). Handlers are thin: authenticate, call one domain function.

| method | path | what |
|---|---|---|
| POST | /v1/mailboxes | verify and save (201); emits mailbox.verified |
| GET | /v1/mailboxes | list with status (normal or error code), last sync, last error |
| GET | /v1/mailboxes/{id} | one mailbox |
| PATCH | /v1/mailboxes/{id} | edit (re-verifies when login settings change) |
| DELETE | /v1/mailboxes/{id} | unbind (204); emits mailbox.removed |
| POST | /v1/mailboxes/{id}/verify | re-verify stored settings |
| GET | /v1/providers | catalog entries (``?domain=`` for the one serving a domain) |
| GET | /v1/providers/{id} | one catalog entry |
| POST | /v1/providers/detect | autodetection for an address |

Every error body is :class:`~laifaxin_binding.models.ErrorOut` (code, message, fix, in English and Chinese).

Mailboxes belong to the user who bound them: ``/v1/mailboxes/...`` finds only the caller's own (404 otherwise),
unless the token carries ``role=admin`` (the tenant's administrator: every mailbox of the tenant).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from laifaxin_binding import errors
from laifaxin_binding.auth import decode_token
from laifaxin_binding.detect import Detection, Detector
from laifaxin_binding.models import DetectIn, ErrorOut, MailboxCreate, MailboxList, MailboxOut, MailboxPatch
from laifaxin_binding.service import MailboxService, Principal
from laifaxin_binding.settings import BindingSettings
from laifaxin_shared.providers.catalog import get_provider, load_catalog, provider_for_domain

_bearer = HTTPBearer(
    auto_error=False,
    description="JWT (HS256, binding's own key) with claims tenant_id, sub, aud (BINDING_JWT_AUDIENCE), iat, "
    "exp (at most BINDING_JWT_MAX_LIFETIME_SECONDS after iat); optional role=admin, mailbox_limit.",
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 413, 422, 429, 503)
}


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller, from ``Authorization: Bearer <jwt>``; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise errors.unauthorized("no bearer token")
    settings: BindingSettings = request.app.state.settings
    return decode_token(credentials.credentials, settings)


def service(request: Request) -> MailboxService:
    svc: MailboxService = request.app.state.service
    return svc


Who = Annotated[Principal, Depends(principal)]
Service = Annotated[MailboxService, Depends(service)]

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


@router.post("/mailboxes", status_code=201, response_model=MailboxOut, tags=["mailboxes"])
async def create_mailbox(body: MailboxCreate, who: Who, svc: Service) -> MailboxOut:
    """Verify IMAP and SMTP, then save and emit ``mailbox.verified``. Nothing is saved on failure; the error
    names the taxonomy code (auth_failed, tls_mismatch...) with the fix. Without ``provider_id`` and servers, they
    come from the catalog, MX, autoconfig or SRV records (``servers_need_confirmation`` for servers outside the
    address's domain and the catalog, ``servers_required`` with what was tried when nothing is found)."""
    return await svc.create(who, body)


@router.get("/mailboxes", response_model=MailboxList, tags=["mailboxes"])
async def list_mailboxes(who: Who, svc: Service) -> MailboxList:
    """The caller's mailboxes (every mailbox of the tenant for a ``role=admin`` token) with status (``normal``
    or the error code), last sync time and last error."""
    return await svc.list(who)


@router.get("/mailboxes/{mailbox_id}", response_model=MailboxOut, tags=["mailboxes"])
async def get_mailbox(mailbox_id: str, who: Who, svc: Service) -> MailboxOut:
    return await svc.get(who, mailbox_id)


@router.patch("/mailboxes/{mailbox_id}", response_model=MailboxOut, tags=["mailboxes"])
async def edit_mailbox(mailbox_id: str, body: MailboxPatch, who: Who, svc: Service) -> MailboxOut:
    """Edit. Email, password, provider or servers: verify first, change nothing on failure, emit
    ``mailbox.verified`` on success. Nickname / sync settings only: save and emit ``mailbox.updated``. Without
    ``password``, a change that would send the stored password to another host, port or login name is refused
    (``password_required``) before any connection."""
    return await svc.update(who, mailbox_id, body)


@router.delete("/mailboxes/{mailbox_id}", status_code=204, tags=["mailboxes"])
async def delete_mailbox(mailbox_id: str, who: Who, svc: Service) -> Response:
    """Unbind and emit ``mailbox.removed``."""
    await svc.delete(who, mailbox_id)
    return Response(status_code=204)


@router.post("/mailboxes/{mailbox_id}/verify", response_model=MailboxOut, tags=["mailboxes"])
async def reverify_mailbox(mailbox_id: str, who: Who, svc: Service) -> MailboxOut:
    """Verify the stored settings again; the status becomes ``normal`` or the failure's code."""
    return await svc.reverify(who, mailbox_id)


@router.get("/providers", tags=["providers"])
async def list_providers(who: Who, domain: str | None = None) -> list[dict[str, Any]]:
    """Catalog entries; with ``domain``, only the provider serving that email domain (may be empty)."""
    del who
    if domain is not None:
        try:
            found = provider_for_domain(domain)
        except ValueError:
            raise errors.invalid_request(f"not a domain: {domain!r}") from None
        return [found.model_dump(mode="json")] if found else []
    return [p.model_dump(mode="json") for p in load_catalog().providers]


@router.get("/providers/{provider_id}", tags=["providers"])
async def show_provider(provider_id: str, who: Who) -> dict[str, Any]:
    del who
    try:
        return get_provider(provider_id).model_dump(mode="json")
    except KeyError:
        raise errors.unknown_provider(provider_id) from None


@router.post("/providers/detect", response_model=Detection, tags=["providers"])
async def detect_provider(body: DetectIn, who: Who, request: Request) -> Detection:
    """Catalog, MX, autoconfig, SRV, then a guess; ``needs_confirmation`` marks servers outside the user's
    domain and the catalog, which the user must confirm before a password is sent there."""
    del who
    detector: Detector = request.app.state.detector
    try:
        return await detector.detect(body.email, offline=body.offline)
    except ValueError:
        raise errors.invalid_email(body.email) from None
