"""laifaxin_shared.asgi.RequestGuard as a pure ASGI middleware: driven with ASGI messages directly, around a tiny
application that echoes how many body bytes it read."""

from __future__ import annotations

import json
from typing import Any

from laifaxin_shared.asgi import RequestGuard
from laifaxin_shared.auth import TokenVerifier

VERIFIER = TokenVerifier("unit-asgi-jwt-secret-0123456789abcdef", "laifaxin-binding")


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body, answers 200 with its length (or 400 when the client went away)."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"gone"})
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


async def call(
    guard: RequestGuard, method: str, path: str, chunks: list[bytes], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes, int]:
    """Status, headers, body of the answer, and how many chunks the guard took from the client."""
    pending = list(chunks)
    taken = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if not pending:
            return {"type": "http.disconnect"}
        taken += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await guard(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, taken


def guard(**kw: Any) -> RequestGuard:
    return RequestGuard(echo_app, verifier=VERIFIER, max_body_bytes=1000, **kw)


async def test_writes_without_a_token_are_401_before_any_chunk_is_taken() -> None:
    status, headers, body, taken = await call(guard(), "POST", "/v1/mailboxes", [b"{not json"] * 5)
    assert status == 401 and headers["www-authenticate"] == "Bearer" and taken <= 5
    assert json.loads(body)["code"] == "unauthorized"
    # reads, public paths and paths outside /v1/ are the routes' business
    assert (await call(guard(), "GET", "/v1/mailboxes", [b""]))[0] == 200
    assert (await call(guard(public_paths={"/v1/open"}), "POST", "/v1/open", [b"x"]))[0] == 200
    assert (await call(guard(), "POST", "/wechat/callback", [b"x"]))[0] == 200


async def test_sizes_by_content_length_and_by_counting() -> None:
    auth = {"Authorization": f"Bearer {VERIFIER.issue('t', 'u')}"}
    ok = await call(guard(), "POST", "/v1/x", [b"a" * 500, b"a" * 500], auth)
    assert ok[0] == 200 and ok[2] == b"1000"
    announced = await call(guard(), "POST", "/v1/x", [b"a" * 10], {**auth, "Content-Length": "5000000"})
    assert announced[0] == 413 and announced[3] <= 1  # not read: the announced length is over the drain cap
    streamed = await call(guard(), "POST", "/v1/x", [b"a" * 400] * 10, auth)
    assert streamed[0] == 413 and json.loads(streamed[2])["code"] == "request_too_large"
    bad = await call(guard(), "POST", "/v1/x", [b"a"], {**auth, "Content-Length": "12abc"})
    assert bad[0] == 400
    small = await call(guard(path_limits={"/cb": 10}), "POST", "/cb", [b"a" * 11])
    assert small[0] == 413 and b"10 bytes" in small[2]


async def test_the_detail_error_shape() -> None:
    status, _headers, body, _taken = await call(guard(error_shape="detail"), "PUT", "/v1/preferences", [b"x"])
    assert status == 401 and json.loads(body)["detail"]["code"] == "unauthorized"
