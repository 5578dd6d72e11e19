"""The local Ory Hydra as tests use it: register clients, sign in as a user would, revoke a grant.

Hydra (started by ``deploy/local/infra.py``, endpoints under ``"hydra"`` in ``infra.json``) stands in for
Microsoft's and Google's sign-in. A user's sign-in is driven through ``deploy/local/hydra_login.py``'s pages with
one cookie-keeping HTTP client, following each redirect by hand: the authorization URL, the login form (the
address), the consent form (Allow / Deny), back to Hydra, and finally the client's redirect URI with ``code``
and ``state`` (or ``error``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

HYDRA_TIMEOUT_S = 60.0
"""Seconds a test waits for one answer of Hydra or its login app: their first answers in a fresh stack can take
longer than 10 s on a busy 2-core machine (seen in CI as the read timing out)."""

MAIL_SCOPES = ("openid", "offline_access", "email", "mail")
"""What a test client may ask for at Hydra; ``mail`` stands for the providers' mail scopes."""


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass
class Tokens:
    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_in: int


class Hydra:
    """A running Hydra: ``urls`` as in ``infra.json``'s ``hydra`` entry."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.issuer = urls["issuer"].rstrip("/")
        self.public = urls["public"].rstrip("/")
        self.admin = urls["admin"].rstrip("/")
        self.login_app = urls["login_app"].rstrip("/")
        self.introspection_url = urls["introspection"]

    @property
    def authorize_url(self) -> str:
        return f"{self.public}/oauth2/auth"

    @property
    def token_url(self) -> str:
        return f"{self.public}/oauth2/token"

    def create_client(
        self,
        redirect_uri: str,
        *,
        scopes: tuple[str, ...] = MAIL_SCOPES,
        access_token_ttl: str | None = None,
        name: str = "Laifaxin test",
    ) -> OAuthClient:
        """Register a confidential client (``client_secret_post``) for the authorization-code and refresh-token
        grants; ``access_token_ttl`` (a Go duration such as ``"20s"``) shortens its access tokens."""
        body = {
            "client_name": name,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": " ".join(scopes),
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "client_secret_post",
        }
        resp = httpx.post(f"{self.admin}/admin/clients", json=body, timeout=HYDRA_TIMEOUT_S)
        resp.raise_for_status()
        data = resp.json()
        client = OAuthClient(data["client_id"], data["client_secret"], redirect_uri)
        if access_token_ttl:
            lifespans = {
                "authorization_code_grant_access_token_lifespan": access_token_ttl,
                "refresh_token_grant_access_token_lifespan": access_token_ttl,
            }
            httpx.put(
                f"{self.admin}/admin/clients/{client.client_id}/lifespans",
                json=lifespans,
                timeout=HYDRA_TIMEOUT_S,
            ).raise_for_status()
        return client

    def revoke_consent(self, subject: str, client_id: str) -> None:
        """What a user does at the provider's "apps with access": every token of the grant stops working."""
        httpx.delete(
            f"{self.admin}/admin/oauth2/auth/sessions/consent",
            params={"subject": subject, "client": client_id},
            timeout=HYDRA_TIMEOUT_S,
        ).raise_for_status()

    def introspect(self, token: str) -> dict[str, Any]:
        resp = httpx.post(self.introspection_url, data={"token": token}, timeout=HYDRA_TIMEOUT_S)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def sign_in(self, authorization_url: str, email: str, *, allow: bool = True) -> str:
        """Do what a user does in the browser; returns the URL the browser is finally sent to (the client's
        redirect URI with ``code`` and ``state``, or with ``error``)."""
        with httpx.Client(timeout=HYDRA_TIMEOUT_S, follow_redirects=False) as browser:
            url = authorization_url
            for _ in range(12):
                if not url.startswith((self.public, self.login_app)):
                    return url
                resp = browser.get(url)
                if resp.status_code in (302, 303):
                    url = urllib.parse.urljoin(url, resp.headers["location"])
                    continue
                resp.raise_for_status()
                page = resp.text
                if 'action="/login"' in page:
                    challenge = _hidden(page, "login_challenge")
                    resp = browser.post(
                        f"{self.login_app}/login", data={"login_challenge": challenge, "email": email}
                    )
                elif 'action="/consent"' in page:
                    challenge = _hidden(page, "consent_challenge")
                    resp = browser.post(
                        f"{self.login_app}/consent",
                        data={"consent_challenge": challenge, "action": "allow" if allow else "deny"},
                    )
                else:
                    raise AssertionError(f"unexpected sign-in page: {page[:300]}")
                assert resp.status_code in (302, 303), resp.text[:300]
                url = urllib.parse.urljoin(url, resp.headers["location"])
            raise AssertionError("sign-in did not reach the redirect URI")

    def tokens_for(self, client: OAuthClient, email: str, scopes: tuple[str, ...] = MAIL_SCOPES) -> Tokens:
        """A full authorization-code flow with PKCE for ``email``: the tokens a provider would give."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        query = urllib.parse.urlencode(
            {
                "client_id": client.client_id,
                "response_type": "code",
                "scope": " ".join(scopes),
                "redirect_uri": client.redirect_uri,
                "state": state,
                "nonce": secrets.token_urlsafe(16),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        final = self.sign_in(f"{self.authorize_url}?{query}", email)
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))
        assert params.get("state") == state, params
        resp = httpx.post(
            self.token_url,
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": client.redirect_uri,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "code_verifier": verifier,
            },
            timeout=HYDRA_TIMEOUT_S,
        )
        resp.raise_for_status()
        data = resp.json()
        return Tokens(
            data["access_token"], data.get("refresh_token"), data.get("id_token"), data["expires_in"]
        )


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} in the page"
    return match.group(1).replace("&amp;", "&")


def hydra_from(mail: dict[str, Any]) -> Hydra | None:
    """The Hydra named in ``infra.json`` (``mail``), or None when this stack has none."""
    urls = mail.get("hydra")
    return Hydra(urls) if urls else None
