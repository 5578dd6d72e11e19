"""What every HTTP API of the platform shares in its OpenAPI document: the error model, a helper that declares
the error statuses an operation can answer, and a ``405`` whose ``Allow`` header names every method of the path.

Other teams (the UI, the send and inbox services) build against the generated documents
(``docs/openapi/<service>.json``) and test them with schemathesis, so a document must state every status an
operation answers and every constraint the server enforces (formats, lengths, ``additionalProperties: false``).

Error body (:class:`ApiError`): ``{"code", "message", "fix", "message_zh", "fix_zh", ...}``: a stable
machine-readable ``code``, what happened and what to do, in English and, where the service has them, Chinese;
an error may add fields of its own (``retry_after_seconds``, ``errors``...). binding answers it as the body;
notify wraps it as ``{"detail": ApiError}`` (FastAPI's ``HTTPException`` shape, kept for its clients):
:class:`DetailError`.

Usage::

    @router.post("/things", responses=error_responses(401, 409, 422))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (the body is not JSON, or a callback's payload cannot be read).",
    401: "Missing, expired or invalid bearer token (code ``unauthorized``).",
    403: "The token is valid but the action is not allowed (a plan limit, a bad signature).",
    404: "No such resource for this caller (code ``not_found`` or the resource's own code).",
    405: "Method not allowed on this path; ``Allow`` lists the methods that are.",
    409: "Conflicts with the current state (already exists, a per-user limit reached, not configured).",
    410: "Gone: the operation was replaced (the body's ``fix`` names the replacement).",
    413: "Request body over the service's limit (code ``request_too_large``).",
    422: "The request breaks a rule the schema cannot state, or fails validation (the body's ``code`` says "
    "which).",
    429: "Rate limited; ``Retry-After`` gives the seconds to wait.",
    502: "An upstream service (a mail server, WeChat, an SMTP relay) refused or could not be reached.",
    503: "A dependency of the service is unavailable or the feature is disabled; nothing was changed.",
}


class ApiError(BaseModel):
    """Every error of the platform's HTTP APIs: a stable ``code`` and what to do about it. ``message_zh`` and
    ``fix_zh`` are present where the service has Chinese texts (binding always); other fields are the error's
    own (``retry_after_seconds``, ``errors``, ``errcode``...)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable machine-readable code.", examples=["not_found"])
    message: str = Field(description="What happened, in English.")
    fix: str | None = Field(default=None, description="What to do about it, in English.")
    message_zh: str | None = Field(default=None, description="What happened, in Chinese.")
    fix_zh: str | None = Field(default=None, description="What to do about it, in Chinese.")


class ValidationIssue(BaseModel):
    """One field that failed validation (pydantic's error: where, what, which rule)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="Where: body / query / path, then the field names.")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. missing, string_too_long.")


class DetailError(BaseModel):
    """An error as ``{"detail": ApiError}`` (notify; FastAPI's ``HTTPException`` shape). A request that fails
    validation has the list of :class:`ValidationIssue` instead (FastAPI's ``HTTPValidationError``), and a few
    callback errors (WeChat's server is the caller, not a person) carry the code alone as a string."""

    detail: ApiError | list[ValidationIssue] | str


def error_responses(
    *statuses: int,
    model: type[BaseModel] = ApiError,
    notes: dict[int, str] | None = None,
    json_ref: bool = False,
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a FastAPI route: each of ``statuses`` answered with ``model`` and a description
    (:data:`STATUS_DESCRIPTIONS`, or ``notes[status]`` for the operation's own codes). ``json_ref``: for a route
    whose success is not JSON (``response_class=PlainTextResponse``), the errors are still JSON; the schema is then
    a reference to ``model``'s component (which another route must use, so that it exists)."""
    notes = notes or {}
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = notes.get(status, STATUS_DESCRIPTIONS.get(status, "Error."))
        if json_ref:
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            out[status] = {"description": description, "content": {"application/json": {"schema": ref}}}
        else:
            out[status] = {"model": model, "description": description}
    return out


def allowed_methods(app: Starlette, scope: dict[str, Any]) -> list[str]:
    """Every method some route of ``app`` serves at the request's path (FastAPI makes one route per method, and
    Starlette's own 405 names only the first route's methods)."""
    methods: set[str] = set()
    template: str | None = None
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"})
        if match is Match.NONE:
            continue
        path = getattr(route, "path", None)
        # The first route that matches names the path template (the document's path); a later template that
        # also matches (``/v1/bindings/{channel}/{target_id}`` for ``/v1/bindings/wechat/qrcode``) is another
        # resource of the document.
        template = path if template is None else template
        if path == template:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_method_not_allowed(
    app: Starlette,
    *,
    wrap_detail: bool = False,
    render: Callable[[int, str], dict[str, Any]] | None = None,
) -> None:
    """Answer ``405`` with an ``Allow`` header naming every method of the path (RFC 9110 section 15.5.6) and an
    :class:`ApiError` body, code ``method_not_allowed`` (as ``{"detail": ...}`` with ``wrap_detail``). Every other
    HTTP error raised by routing or a handler is answered as FastAPI does (``{"detail": exc.detail}``), or as
    ``render(status, detail)`` gives it (a service whose errors are flat :class:`ApiError` bodies)."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        if exc.status_code != 405:
            if render is not None:
                return JSONResponse(
                    render(exc.status_code, str(exc.detail)), exc.status_code, headers=headers
                )
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)
        headers["Allow"] = ", ".join(allowed_methods(app, dict(request.scope)))
        body: dict[str, Any] = {
            "code": "method_not_allowed",
            "message": f"{request.method} is not allowed on this path.",
            "fix": f"Use one of: {headers['Allow']}.",
        }
        if render is not None:
            body = {**render(405, body["message"]), **body}
        return JSONResponse({"detail": body} if wrap_detail else body, 405, headers=headers)

    app.add_exception_handler(StarletteHTTPException, handler)
