"""laifaxin_shared.api: the 405 names every method of the documented path; error responses declare the model."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

from laifaxin_shared.api import ApiError, DetailError, error_responses, install_method_not_allowed


def _app(*, wrap_detail: bool = False) -> FastAPI:
    app = FastAPI(responses=error_responses(401, 404, model=DetailError if wrap_detail else ApiError))

    @app.get("/things")
    async def list_things() -> list[str]:
        return []

    @app.post("/things")
    async def add_thing() -> str:
        return "ok"

    @app.post("/things/special")
    async def special() -> str:
        return "special"

    @app.delete("/things/{kind}/{thing_id}")
    async def remove(kind: str, thing_id: str) -> None:
        raise HTTPException(404, {"code": "not_found", "message": f"no {kind} {thing_id}"})

    @app.get("/callback", response_class=PlainTextResponse, responses=error_responses(403, json_ref=True))
    async def callback() -> str:
        return "success"

    install_method_not_allowed(app, wrap_detail=wrap_detail)
    return app


async def _call(app: FastAPI, method: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.request(method, path)


async def test_405_allow_names_every_method_of_the_path() -> None:
    answer = await _call(_app(), "OPTIONS", "/things")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, POST"  # Starlette alone names only GET, HEAD
    assert answer.json()["code"] == "method_not_allowed" and "GET, HEAD, POST" in answer.json()["fix"]


async def test_405_keeps_to_the_first_matching_template() -> None:
    # /things/special also matches DELETE /things/{kind}/{thing_id}; the document's path is the POST one.
    answer = await _call(_app(wrap_detail=True), "PUT", "/things/special")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.json()["detail"]["code"] == "method_not_allowed"


async def test_other_http_errors_keep_fastapis_shape() -> None:
    answer = await _call(_app(wrap_detail=True), "DELETE", "/things/a/b")
    assert answer.status_code == 404 and answer.json() == {
        "detail": {"code": "not_found", "message": "no a b"}
    }


def test_documents_declare_the_error_model_per_status() -> None:
    spec = _app().openapi()
    listed = spec["paths"]["/things"]["get"]["responses"]
    assert listed["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiError"}
    callback = spec["paths"]["/callback"]["get"]["responses"]["403"]
    assert callback["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}
    assert set(spec["components"]["schemas"]["ApiError"]["required"]) == {"code", "message"}
