"""The login and consent pages of the local Ory Hydra: a test identity provider standing in for Microsoft/Google.

Hydra sends the browser here with a ``login_challenge`` and later a ``consent_challenge``; this app answers them
through Hydra's admin API (Ory Hydra v2 "Implementing the login and consent endpoints"):

- ``GET /login?login_challenge=..``: a form asking for the address (no password: anyone may sign in as any
  address on this loopback test server). ``POST /login`` (``login_challenge``, ``email``) accepts the login
  with the address, lower-cased, as the OpenID Connect *subject* (``PUT /admin/oauth2/auth/requests/login/
  accept``), so Dovecot's token introspection can match the IMAP user name on ``sub``; the browser goes on to
  Hydra's ``redirect_to``. A login Hydra says may be skipped (a remembered session) is accepted at once.
- ``GET /consent?consent_challenge=..``: a form listing the requested scopes with Allow and Deny. ``POST
  /consent`` with ``action=allow`` grants every requested scope and audience, with ``email`` and
  ``email_verified`` in the ID token (``PUT .../consent/accept``); ``action=deny`` rejects with
  ``access_denied`` (``PUT .../consent/reject``).
- ``GET /error``: shows Hydra's error parameters.

Run: ``python deploy/local/hydra_login.py --port 14446 --admin-url http://127.0.0.1:14445``. Loopback only.
"""

from __future__ import annotations

import argparse
import html
import json
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ADMIN = "http://127.0.0.1:14445"


def admin(method: str, path: str, challenge_name: str, challenge: str, body: Any = None) -> dict[str, Any]:
    """Call Hydra's admin API; returns its JSON answer. Raises urllib.error.HTTPError on a refusal."""
    url = f"{ADMIN}/admin/oauth2/auth/requests/{path}?{urllib.parse.urlencode({challenge_name: challenge})}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310  loopback admin URL from the command line
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310  loopback admin URL from the command line
        answer: dict[str, Any] = json.loads(resp.read() or b"{}")
        return answer


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>"""


class Handler(BaseHTTPRequestHandler):
    server_version = "laifaxin-hydra-login"

    def log_message(self, format: str, *args: Any) -> None:
        # Only the path: challenges are single-use but still not worth keeping in logs.
        sys.stderr.write(f"{self.command} {urllib.parse.urlsplit(self.path).path}\n")

    def _page(self, status: int, title: str, body: str) -> None:
        data = PAGE.format(title=html.escape(title), body=body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        try:
            if parts.path == "/login":
                self._login_page(query.get("login_challenge", ""))
            elif parts.path == "/consent":
                self._consent_page(query.get("consent_challenge", ""))
            elif parts.path == "/error":
                text = f"{query.get('error', '')}: {query.get('error_description', '')}"
                self._page(400, "Sign-in error", f"<p>{html.escape(text)}</p>")
            elif parts.path == "/health":
                self._page(200, "ok", "")
            else:
                self._page(404, "Not found", "")
        except urllib.error.HTTPError as exc:
            self._page(exc.code, "Hydra refused the challenge", f"<p>{html.escape(exc.reason or '')}</p>")

    def do_POST(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        form = self._form()
        try:
            if parts.path == "/login":
                email = form.get("email", "").strip().lower()
                if "@" not in email:
                    self._page(400, "Sign in", "<p>Enter an email address.</p>")
                    return
                done = admin(
                    "PUT",
                    "login/accept",
                    "login_challenge",
                    form.get("login_challenge", ""),
                    {"subject": email, "remember": False},
                )
                self._redirect(done["redirect_to"])
            elif parts.path == "/consent":
                self._consent(form.get("consent_challenge", ""), form.get("action") == "allow")
            else:
                self._page(404, "Not found", "")
        except urllib.error.HTTPError as exc:
            self._page(exc.code, "Hydra refused the challenge", f"<p>{html.escape(exc.reason or '')}</p>")

    def _login_page(self, challenge: str) -> None:
        request = admin("GET", "login", "login_challenge", challenge)
        if request.get("skip"):
            done = admin("PUT", "login/accept", "login_challenge", challenge, {"subject": request["subject"]})
            self._redirect(done["redirect_to"])
            return
        hint = (request.get("oidc_context") or {}).get("login_hint") or ""
        client = (request.get("client") or {}).get("client_name") or "an application"
        self._page(
            200,
            "Sign in",
            f"<p>Sign in to continue to {html.escape(client)}.</p>"
            '<form method="post" action="/login">'
            f'<input type="hidden" name="login_challenge" value="{html.escape(challenge)}">'
            f'<label>Email <input name="email" type="email" value="{html.escape(hint)}"></label>'
            '<button type="submit">Sign in</button></form>',
        )

    def _consent_page(self, challenge: str) -> None:
        request = admin("GET", "consent", "consent_challenge", challenge)
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in request.get("requested_scope") or [])
        client = (request.get("client") or {}).get("client_name") or "An application"
        self._page(
            200,
            "Allow access",
            f"<p>{html.escape(client)} asks for:</p><ul>{scopes}</ul>"
            '<form method="post" action="/consent">'
            f'<input type="hidden" name="consent_challenge" value="{html.escape(challenge)}">'
            '<button name="action" value="allow">Allow</button>'
            '<button name="action" value="deny">Deny</button></form>',
        )

    def _consent(self, challenge: str, allow: bool) -> None:
        if not allow:
            done = admin(
                "PUT",
                "consent/reject",
                "consent_challenge",
                challenge,
                {"error": "access_denied", "error_description": "The user denied access."},
            )
            self._redirect(done["redirect_to"])
            return
        request = admin("GET", "consent", "consent_challenge", challenge)
        subject = request.get("subject", "")
        done = admin(
            "PUT",
            "consent/accept",
            "consent_challenge",
            challenge,
            {
                "grant_scope": request.get("requested_scope") or [],
                "grant_access_token_audience": request.get("requested_access_token_audience") or [],
                "remember": False,
                "session": {"id_token": {"email": subject, "email_verified": True}},
            },
        )
        self._redirect(done["redirect_to"])


def main() -> None:
    global ADMIN
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-url", required=True)
    args = parser.parse_args()
    ADMIN = args.admin_url.rstrip("/")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    print(f"hydra login/consent app on 127.0.0.1:{args.port}", flush=True)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    thread.join()


if __name__ == "__main__":
    main()
