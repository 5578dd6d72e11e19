"""Requests refused before their body is read (security review: memory exhaustion without a token).

Through binding's real app served by uvicorn on loopback (real FerretDB behind it) and a raw socket, so that what
the server reads is under the test's control: a 100 MB ``Content-Length`` without a token is answered at once
while only a few bytes were sent; a streamed (chunked) body with a valid token is cut off at the limit; a
malformed JSON body without a token is 401, not 422.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from laifaxin_binding.app import create_app
from laifaxin_binding.auth import issue_token
from laifaxin_binding.settings import BindingSettings
from tests.support.loopback import served_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture
def served(binding_settings: BindingSettings) -> Iterator[tuple[str, int]]:
    app = create_app(binding_settings, start_broker=False)
    with served_in_thread(app) as url:
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        yield parts.hostname, parts.port


def _response(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of one HTTP/1.1 response read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, json.loads(body[:length]) if length else None


def _request_head(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_100_mb_body_without_a_token_is_refused_unread(served: tuple[str, int]) -> None:
    host, port = served
    with socket.create_connection(served, timeout=30) as sock:
        sock.sendall(_request_head(host, port, "/v1/mailboxes", {"Content-Length": str(100 * 1024 * 1024)}))
        sock.sendall(b'{"email": "' + b"a" * 1000)  # 1 KB of the announced 100 MB, then nothing
        status, headers, body = _response(sock)
    assert status == 413
    assert body["code"] == "request_too_large" and "65536" in body["message"] and body["fix_zh"]
    assert headers["connection"] == "close"


def test_a_streamed_body_is_cut_off_at_the_limit(
    served: tuple[str, int], binding_settings: BindingSettings
) -> None:
    """No Content-Length (chunked), a valid token: the server counts the chunks and answers 413 once past the
    limit; the client is told while it has sent a few MB at most of an endless stream."""
    host, port = served
    token = issue_token(binding_settings, "tenant-guard", "u1")
    with socket.create_connection(served, timeout=30) as sock:
        head = _request_head(
            host, port, "/v1/mailboxes", {"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"}
        )
        sock.sendall(head)
        chunk = b"a" * 16384
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        sent = 0
        sock.settimeout(0.05)
        answer = b""
        while sent < 64 * 1024 * 1024:
            try:
                sock.sendall(framed)
                sent += len(chunk)
            except (BlockingIOError, TimeoutError, ConnectionError):
                break
            try:
                answer = sock.recv(65536, socket.MSG_PEEK)
            except (BlockingIOError, TimeoutError):
                continue
            if answer:
                break
        sock.settimeout(30)
        status, _headers, body = _response(sock)
    assert status == 413 and body["code"] == "request_too_large"
    assert sent < 64 * 1024 * 1024, "the server never answered while the body kept coming"


@pytest.mark.parametrize(
    "auth", [None, "Bearer not.a.jwt", "Basic dXNlcjpwYXNz"], ids=["no token", "bad token", "other scheme"]
)
def test_malformed_json_without_a_valid_token_is_401(served: tuple[str, int], auth: str | None) -> None:
    host, port = served
    body = b'{"email": "x@y.z", "password": '  # cut off: not JSON
    headers = {"Content-Length": str(len(body))}
    if auth:
        headers["Authorization"] = auth
    with socket.create_connection(served, timeout=30) as sock:
        sock.sendall(_request_head(host, port, "/v1/mailboxes", headers) + body)
        status, response_headers, error = _response(sock)
    assert status == 401 and response_headers["www-authenticate"] == "Bearer"
    assert error["code"] == "unauthorized" and "not.a.jwt" not in json.dumps(error)


def test_with_a_valid_token_malformed_json_is_still_a_clear_422(
    served: tuple[str, int], binding_settings: BindingSettings
) -> None:
    host, port = served
    token = issue_token(binding_settings, "tenant-guard", "u1")
    body = b'{"email": "x@y.z", "password": '
    headers = {"Content-Length": str(len(body)), "Authorization": f"Bearer {token}"}
    with socket.create_connection(served, timeout=30) as sock:
        sock.sendall(_request_head(host, port, "/v1/mailboxes", headers) + body)
        status, _headers, error = _response(sock)
    assert status == 422 and error["code"] == "invalid_request"


def test_a_token_for_notify_or_a_hundred_year_token_is_401(
    served: tuple[str, int], binding_settings: BindingSettings
) -> None:
    """The JWT findings through the real app: notify's audience (or key) and an overlong lifetime are refused."""
    import time

    import jwt

    from laifaxin_shared.auth import issue_token as shared_issue

    host, port = served
    key = binding_settings.jwt_secret.get_secret_value()
    now = int(time.time())
    tokens = {
        "notify audience": shared_issue(key, "t", "u", audience="laifaxin-notify"),
        "no audience": jwt.encode({"sub": "u", "tenant_id": "t", "iat": now, "exp": now + 60}, key),
        "100 years": jwt.encode(
            {
                "sub": "u",
                "tenant_id": "t",
                "aud": "laifaxin-binding",
                "iat": now,
                "exp": now + 100 * 365 * 86400,
            },
            key,
        ),
    }
    for name, token in tokens.items():
        with socket.create_connection(served, timeout=30) as sock:
            sock.sendall(
                f"GET /v1/mailboxes HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
            )
            status, _headers, error = _response(sock)
        assert status == 401 and error["code"] == "unauthorized", name
