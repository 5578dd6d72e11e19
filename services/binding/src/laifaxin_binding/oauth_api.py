"""HTTP routes of the sign-in with Microsoft / Google (``/v1/oauth``); the flow is :mod:`laifaxin_binding.oauth`.

| method | path | what |
|---|---|---|
| POST | /v1/oauth/sign-ins | start: returns the authorization URL to open (201) |
| GET | /v1/oauth/sign-ins/{id} | pending, bound (with the mailbox) or failed (with the error) |
| POST | /v1/oauth/callback | complete with the redirect's ``state`` and ``code`` as the user who started it |
| GET | /v1/oauth/callback | the redirect URI for a browser: completes, answers a short HTML page |

Errors are :class:`~laifaxin_binding.models.ErrorOut`. Tokens never appear in an answer.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from laifaxin_binding.api import ERROR_RESPONSES, Who
from laifaxin_binding.errors import BindingError
from laifaxin_binding.oauth import OAuthService, SignInComplete, SignInOut, SignInStart


def oauth_service(request: Request) -> OAuthService:
    svc: OAuthService = request.app.state.oauth
    return svc


OAuth = Annotated[OAuthService, Depends(oauth_service)]

router = APIRouter(prefix="/v1/oauth", responses=ERROR_RESPONSES, tags=["oauth"])


@router.post("/sign-ins", status_code=201, response_model=SignInOut)
async def start_sign_in(body: SignInStart, who: Who, svc: OAuth) -> SignInOut:
    """Start signing in with the provider of ``email`` (or ``provider_id``): Outlook.com / Hotmail / Live /
    MSN and Microsoft 365 with Microsoft, Gmail and Google Workspace with Google. Open ``authorization_url``;
    the sign-in expires at ``expires_at``."""
    return await svc.start(who, body)


@router.get("/sign-ins/{sign_in_id}", response_model=SignInOut)
async def get_sign_in(sign_in_id: str, who: Who, svc: OAuth) -> SignInOut:
    """The sign-in's status; ``bound`` carries the mailbox, ``failed`` the error (code, fix in EN/ZH)."""
    return await svc.get(who, sign_in_id)


@router.post("/callback", response_model=SignInOut)
async def complete_sign_in(body: SignInComplete, who: Who, svc: OAuth) -> SignInOut:
    """Complete a sign-in with what the provider sent to the redirect URI. Refused with
    ``oauth_state_invalid`` when the state is unknown, used, expired, or was started by another tenant or
    user; otherwise the mailbox is verified with the access token and saved (as ``POST /v1/mailboxes``)."""
    return await svc.complete(body, who)


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Laifaxin</title></head><body>
<h1>{title}</h1><p>{text}</p><p>{text_zh}</p></body></html>"""


@router.get("/callback", response_class=HTMLResponse, include_in_schema=True)
async def browser_callback(
    svc: OAuth,
    state: str = "",
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> HTMLResponse:
    """Where the provider sends the browser: completes the sign-in the ``state`` names (single use) and
    shows the outcome; the CLI and the admin UI learn it from ``GET /v1/oauth/sign-ins/{id}``."""
    try:
        body = SignInComplete(state=state, code=code, error=error, error_description=error_description)
        result = await svc.complete(body, None)
    except BindingError as exc:
        page = _PAGE.format(
            title="Sign-in failed",
            text=html.escape(f"{exc.message.en} {exc.fix.en}"),
            text_zh=html.escape(f"{exc.message.zh}{exc.fix.zh}"),
        )
        return HTMLResponse(page, status_code=exc.status)
    except ValueError:
        return HTMLResponse(
            _PAGE.format(title="Sign-in failed", text="Bad request.", text_zh="请求无效。"), 400
        )
    email = result.mailbox.email if result.mailbox else ""
    page = _PAGE.format(
        title="Mailbox bound",
        text=html.escape(f"{email} is bound to Laifaxin. You can close this window."),
        text_zh=html.escape(f"{email} 已绑定到来发信，可以关闭此窗口。"),
    )
    return HTMLResponse(page)
