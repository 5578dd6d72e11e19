"""Request guards for the HTTP services, as one pure ASGI middleware (ASGI 3.0 HTTP spec): a body-size limit
and a bearer-token gate, both decided before the application reads a byte of the body.

Why here and not in the routes: FastAPI reads and parses a JSON body before it runs a route's dependencies, so
a request without a token could make the process buffer and parse any amount of JSON (100 MB cost 200 MB of
memory) before it was told 401, and a malformed body without a token answered 422 instead of 401. The guard
runs first:

1. **Token** (:class:`~laifaxin_shared.auth.TokenVerifier`): a request under a protected prefix (``/v1/``) with
   a method that carries a body (anything but GET, HEAD, OPTIONS) and without a valid ``Authorization: Bearer``
   token is answered 401 (``WWW-Authenticate: Bearer``, RFC 6750 section 3) without reading its body. Routes
   still check the token themselves (GET requests, and the principal they use), so the gate only moves the
   refusal earlier.
2. **Size**: a ``Content-Length`` over the path's limit is answered 413 at once (RFC 9110 section 15.5.14); a
   body without one (chunked) is counted chunk by chunk as the application reads it, and the first chunk over
   the limit ends the request with 413 (the application sees the client as gone and whatever it answers is
   replaced). A ``Content-Length`` that is not a number is 400.

Error bodies have the platform's error shape ``{code, message, fix, message_zh, fix_zh}``
(``error_shape="flat"``, binding) or the same object under ``detail`` (``error_shape="detail"``, notify's
FastAPI-style errors).

Usage (an app factory)::

    app.add_middleware(RequestGuard, verifier=settings.token_verifier(), max_body_bytes=65536,
                       path_limits={"/wechat/callback": 16384})
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Literal

from .auth import InvalidTokenError, TokenVerifier

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 64 * 1024
"""Largest body by default, bytes (the APIs take small JSON documents)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DRAIN_MAX_BYTES = 1024 * 1024
"""After a 413 or 401, at most this much of the rest of a body is read and thrown away (constant memory), so that
a client still sending a moderately large body gets the answer instead of a TCP reset; a larger (announced)
body is not read at all."""
DRAIN_TIMEOUT_S = 2.0


def _texts(status: int, reason: str, limit: int) -> dict[str, str]:
    if status == 401:
        return {
            "code": "unauthorized",
            "message": f"Missing or invalid bearer token ({reason}).",
            "fix": "Sign in again to get a fresh token.",
            "message_zh": f"缺少或无效的访问令牌（{reason}）。",
            "fix_zh": "请重新登录以获取新的令牌。",
        }
    if status == 413:
        return {
            "code": "request_too_large",
            "message": f"The request body is larger than {limit} bytes.",
            "fix": "Send a smaller request; this API takes small JSON documents.",
            "message_zh": f"请求体超过 {limit} 字节。",
            "fix_zh": "请发送更小的请求；该接口只接受小型 JSON 文档。",
        }
    return {
        "code": "invalid_request",
        "message": f"The request is not valid: {reason}.",
        "fix": "Send a valid Content-Length header, or none.",
        "message_zh": f"请求无效：{reason}。",
        "fix_zh": "请发送有效的 Content-Length 头，或不发送。",
    }


class RequestGuard:
    """Pure ASGI middleware: token gate and body-size limit (see the module docstring).

    Args:
        app: the ASGI application.
        verifier: the service's token rules; None disables the gate (size limit only).
        max_body_bytes: the limit for every path without its own.
        path_limits: exact paths with their own limit (notify's unauthenticated WeChat callback: small).
        protected_prefixes: paths under these need a token for methods other than GET, HEAD, OPTIONS.
        public_paths: exact paths under a protected prefix that need no token.
        error_shape: ``flat`` (binding's errors) or ``detail`` (the same object under ``detail``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier | None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        path_limits: Mapping[str, int] | None = None,
        protected_prefixes: Iterable[str] = ("/v1/",),
        public_paths: Iterable[str] = (),
        error_shape: Literal["flat", "detail"] = "flat",
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})
        self.protected_prefixes = tuple(protected_prefixes)
        self.public_paths = frozenset(public_paths)
        self.error_shape = error_shape

    def limit_for(self, path: str) -> int:
        """The body limit of ``path``, bytes."""
        return self.path_limits.get(path, self.max_body_bytes)

    def needs_token(self, method: str, path: str) -> bool:
        """True when the gate checks the token of a ``method`` request to ``path`` before its body is read."""
        return (
            self.verifier is not None
            and method.upper() not in SAFE_METHODS
            and path.startswith(self.protected_prefixes)
            and path not in self.public_paths
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limit_for(path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await self._refuse(send, 400, "Content-Length is not a number", limit)
                return
            if int(length) > limit:
                await self._refuse(send, 413, "", limit)
                await _drain(receive, int(length))
                return
        if self.needs_token(scope.get("method", "GET"), path):
            assert self.verifier is not None
            try:
                self.verifier.from_header(headers.get("authorization"))
            except InvalidTokenError as exc:
                await self._refuse(send, 401, exc.reason, limit)
                await _drain(receive, int(length) if length is not None else None)
                return
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app, counting the body it reads; past ``limit``, answer 413 in place of the app."""
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}  # the app stops reading: the client looks gone
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a body it never got whole; the 413 below replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not (exceeded and not started):
                raise
        if exceeded and not started:
            await self._refuse(send, 413, "", limit)
            await _drain(receive, None)

    async def _refuse(self, send: Send, status: int, reason: str, limit: int) -> None:
        error: dict[str, Any] = _texts(status, reason, limit)
        body = json.dumps(
            {"detail": error} if self.error_shape == "detail" else error, ensure_ascii=False
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the unread body must not be taken for the next request
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive, announced: int | None) -> None:
    """Read and discard what is left of a refused body, at most :data:`DRAIN_MAX_BYTES` and
    :data:`DRAIN_TIMEOUT_S`; nothing when ``announced`` (the Content-Length) is over that (it would not help)."""
    if announced is not None and announced > DRAIN_MAX_BYTES:
        return
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while drained <= DRAIN_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return
