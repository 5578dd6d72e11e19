"""Sign in with Microsoft or Google to bind a mailbox: OAuth 2.0 authorization code with PKCE, OpenID Connect.

Flow (RFC 6749 section 4.1; PKCE RFC 7636 with ``S256``; OpenID Connect Core 1.0 section 3.1):

1. ``start``: the caller (tenant + user from the bearer token) names an address, or a catalog provider with
   :class:`~laifaxin_shared.providers.models.OAuthSignIn`. A sign-in record is stored with a random ``state``
   (only its SHA-256 is kept), the PKCE ``code_verifier`` (sealed with the credential key ring), a ``nonce``,
   and an expiry (``BINDING_OAUTH_STATE_TTL_SECONDS``). The answer is the provider's authorization URL, built
   by Authlib from the issuer's discovery document (``/.well-known/openid-configuration``).
2. The user signs in at the provider, which sends the browser to the redirect URI (a setting; only URIs in
   ``BINDING_OAUTH_REDIRECT_URIS`` are used) with ``code`` and ``state``.
3. ``complete``: the state is claimed once (a replay finds it used), must not have expired, and when the
   caller is known (the authenticated ``POST`` form) must belong to the same tenant and user. The code is
   exchanged with the verifier (Authlib), the ID token is verified (signature against the issuer's JWKS,
   ``iss``, ``aud`` = client id, ``exp``, ``nonce``: PyJWT), and its ``email`` (else ``preferred_username``,
   Microsoft's sign-in name) is the mailbox address. IMAP and SMTP are verified with the access token
   (XOAUTH2) and the mailbox is saved like a password binding (``auth: oauth2``; same events and status).

Token custody: the refresh token is sealed under the key ring (AES-256-GCM bound to tenant and mailbox) in
binding's own document and never leaves binding; the access token is the mailbox's ``credential`` and reaches
sync only sealed, in ``mailbox.verified``. :class:`TokenRefresher` renews it ahead of expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import random
import secrets
import warnings
from datetime import datetime, timedelta
from typing import Any, Literal

import authlib.deprecate
import httpx
import jwt
from pydantic import BaseModel, Field
from pymongo import ReturnDocument

from laifaxin_binding import errors
from laifaxin_binding.errors import BindingError
from laifaxin_binding.models import MailboxOut, ServerIn, SyncIn
from laifaxin_binding.service import (
    MailboxService,
    Principal,
    Servers,
    _endpoint,
    _sync,
    _verified_fields,
    new_mailbox_id,
    now_utc,
)
from laifaxin_binding.settings import BindingSettings
from laifaxin_binding.verify import VerifyRequest
from laifaxin_shared.crypto import CredentialContext
from laifaxin_shared.events.base import EncryptedCredential
from laifaxin_shared.logging import get_logger
from laifaxin_shared.mongo import Document
from laifaxin_shared.providers.catalog import get_provider, provider_for_domain, split_email
from laifaxin_shared.providers.errors import ErrorCode, MailServerError, make_error
from laifaxin_shared.providers.models import OAuthSignIn, Provider, Text

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 package and warns when it falls back to httpx, which binding uses.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

log = get_logger(__name__)

SIGN_INS = "oauth_sign_ins"
Identity = Literal["microsoft", "google"]
SignInStatus = Literal["pending", "working", "bound", "failed"]


# ---------------------------------------------------------------------------------------------- API models


class SignInStart(BaseModel):
    """Start a sign-in. ``email`` picks the provider from the catalog (or name ``provider_id``); when given, the
    account signed in must be that address."""

    email: str | None = Field(default=None, max_length=320, examples=["you@outlook.com"])
    provider_id: str | None = Field(default=None, description="Catalog id (outlook, microsoft365, gmail...).")
    nickname: str = Field(default="", max_length=128)
    sync: SyncIn = Field(default_factory=SyncIn)
    redirect_uri: str | None = Field(
        default=None, description="One of BINDING_OAUTH_REDIRECT_URIS; the first when absent."
    )
    imap: ServerIn | None = Field(default=None, description="Override the catalog's IMAP server.")
    smtp: ServerIn | None = Field(default=None, description="Override the catalog's SMTP server.")


class SignInComplete(BaseModel):
    """What the provider sent to the redirect URI."""

    state: str = Field(min_length=8, max_length=512)
    code: str | None = Field(default=None, max_length=4096)
    error: str | None = Field(default=None, max_length=200)
    error_description: str | None = Field(default=None, max_length=2000)


class SignInOut(BaseModel):
    """A sign-in: ``pending`` until the provider's redirect arrives, then ``bound`` (with the mailbox) or
    ``failed`` (with the error: code, message and fix in English and Chinese)."""

    id: str
    status: SignInStatus
    provider_id: str
    identity: Identity
    authorization_url: str | None = Field(
        default=None, description="Open this to sign in; only in the answer that started the sign-in."
    )
    expires_at: datetime
    mailbox: MailboxOut | None = None
    error: dict[str, Any] | None = None


# ----------------------------------------------------------------------------------------------- errors


def _error(code: str, status: int, en: str, zh: str, fix_en: str, fix_zh: str) -> BindingError:
    return BindingError(code, status, Text(en=en, zh=zh), Text(en=fix_en, zh=fix_zh))


def state_invalid() -> BindingError:
    """The state is unknown, used, expired or someone else's: the same answer for each (no oracle)."""
    return _error(
        "oauth_state_invalid",
        400,
        "This sign-in link is not valid: it was already used, has expired, or belongs to another account.",
        "该登录链接无效：已被使用、已过期，或属于其他账号。",
        "Start the sign-in again from Laifaxin.",
        "请在来发信中重新发起登录。",
    )


def not_configured(identity: str) -> BindingError:
    return _error(
        "oauth_not_configured",
        422,
        f"Sign-in with {identity.title()} is not set up on this Laifaxin installation.",
        f"此来发信部署尚未配置 {identity.title()} 登录。",
        f"The operator sets BINDING_OAUTH_{identity.upper()}_CLIENT_ID / _CLIENT_SECRET and "
        "BINDING_OAUTH_REDIRECT_URIS (see the README).",
        f"请运维人员配置 BINDING_OAUTH_{identity.upper()}_CLIENT_ID / _CLIENT_SECRET 和 "
        "BINDING_OAUTH_REDIRECT_URIS（见 README）。",
    )


def no_oauth(provider_id: str) -> BindingError:
    return _error(
        "oauth_unavailable",
        422,
        f"Provider {provider_id} has no sign-in that Laifaxin can use; bind it with its password.",
        f"服务商 {provider_id} 不支持来发信可用的授权登录，请用密码绑定。",
        "Use POST /v1/mailboxes with the app password or authorization code.",
        "请用应用专用密码或授权码通过 POST /v1/mailboxes 绑定。",
    )


def sign_in_refused(detail: str) -> BindingError:
    return _error(
        "oauth_sign_in_failed",
        422,
        f"The sign-in did not complete: {detail}",
        f"授权登录未完成：{detail}",
        "Start the sign-in again and allow Laifaxin access to the mailbox.",
        "请重新发起登录，并允许来发信访问该邮箱。",
    )


def account_mismatch(expected: str, got: str) -> BindingError:
    return _error(
        "oauth_account_mismatch",
        422,
        f"You signed in as {got}, not {expected}.",
        f"你登录的账号是 {got}，而不是 {expected}。",
        f"Sign in again with {expected} (use the provider's account switcher).",
        f"请使用 {expected} 重新登录（在服务商页面切换账号）。",
    )


# ---------------------------------------------------------------------------------------------- helpers


@dataclasses.dataclass(frozen=True)
class OAuthApp:
    """Binding's registration at one identity service, from settings."""

    identity: Identity
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    authority: str


def app_for(settings: BindingSettings, sign_in: OAuthSignIn) -> OAuthApp:
    """The client registration for ``sign_in.identity``; ``oauth_not_configured`` (422: this installation cannot serve the request, like ``oauth_unavailable``) when missing."""
    identity = sign_in.identity
    client_id = getattr(settings, f"oauth_{identity}_client_id")
    secret = getattr(settings, f"oauth_{identity}_client_secret")
    authority = getattr(settings, f"oauth_{identity}_authority") or sign_in.authority
    if not client_id or secret is None or not settings.oauth_redirect_uri_list:
        raise not_configured(identity)
    return OAuthApp(identity, client_id, secret.get_secret_value(), authority.rstrip("/"))


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class Discovery:
    """OpenID Connect discovery documents (``{issuer}/.well-known/openid-configuration``), cached per issuer."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._cache: dict[str, dict[str, Any]] = {}
        self._jwks: dict[str, jwt.PyJWKClient] = {}

    async def get(self, authority: str) -> dict[str, Any]:
        """Raises: httpx.HTTPError, ValueError (not JSON)."""
        if authority not in self._cache:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                resp = await client.get(f"{authority}/.well-known/openid-configuration")
                resp.raise_for_status()
                self._cache[authority] = resp.json()
        return self._cache[authority]

    def jwks(self, uri: str) -> jwt.PyJWKClient:
        if uri not in self._jwks:
            self._jwks[uri] = jwt.PyJWKClient(uri, cache_keys=True, timeout=int(self.timeout))
        return self._jwks[uri]


def expected_issuer(discovered: str, claims: dict[str, Any]) -> str:
    """The issuer an ID token must carry: the discovery ``issuer``, where Microsoft's multi-tenant ``common``
    document writes ``{tenantid}`` for the signing-in user's tenant (the token's ``tid`` claim; Microsoft
    identity platform, "Validate the issuer" in its ID token reference)."""
    return discovered.replace("{tenantid}", str(claims.get("tid", "")))


def refresh_delay(lifetime_s: float, *, rng: random.Random | None = None) -> float:
    """Seconds until an access token of ``lifetime_s`` is refreshed: between 50 % and 75 % of its life, drawn
    uniformly, so tokens issued together are not refreshed together (no thundering herd) and a failed refresh
    still has a quarter of the life to retry."""
    r = rng or random
    return max(1.0, lifetime_s * r.uniform(0.5, 0.75))


# ----------------------------------------------------------------------------------------------- service


class OAuthService:
    """Sign-ins (``oauth_sign_ins`` collection) and the binding of their mailboxes."""

    def __init__(self, settings: BindingSettings, mailboxes: MailboxService) -> None:
        self.settings = settings
        self.mailboxes = mailboxes
        self.keyring = mailboxes.keyring
        self.collection = mailboxes.store.db[SIGN_INS]
        self.discovery = Discovery(settings.command_timeout_seconds)

    def _client(self, app: OAuthApp, redirect_uri: str | None = None, scope: str | None = None) -> Any:
        return AsyncOAuth2Client(
            client_id=app.client_id,
            client_secret=app.client_secret,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_post",  # noqa: S106  (a method name, not a secret)
            timeout=self.settings.command_timeout_seconds,
        )

    def _provider(self, body: SignInStart) -> Provider:
        if body.provider_id:
            try:
                provider = get_provider(body.provider_id)
            except KeyError:
                raise errors.unknown_provider(body.provider_id) from None
        else:
            if not body.email:
                raise errors.invalid_request("give email or provider_id")
            try:
                _, domain = split_email(body.email)
            except ValueError:
                raise errors.invalid_email(body.email) from None
            found = provider_for_domain(domain)
            if found is None:
                raise no_oauth(domain)
            provider = found
        if provider.oauth is None:
            raise no_oauth(provider.id)
        return provider

    async def start(self, who: Principal, body: SignInStart) -> SignInOut:
        """Store a sign-in and return the authorization URL.

        Raises:
            BindingError: 422 ``unknown_provider``, ``oauth_unavailable``, ``invalid_email``, ``invalid_request``
                (redirect URI not allow-listed), ``sync_interval_too_short``, ``oauth_not_configured``; 503 ``unavailable`` (the issuer's
                discovery document could not be read).
        """
        provider = self._provider(body)
        assert provider.oauth is not None
        app = app_for(self.settings, provider.oauth)
        allowed = self.settings.oauth_redirect_uri_list
        redirect_uri = body.redirect_uri or allowed[0]
        if redirect_uri not in allowed:
            raise errors.invalid_request("redirect_uri is not one of BINDING_OAUTH_REDIRECT_URIS")
        sync = _sync(body.sync)
        email = None
        if body.email:
            try:
                local, domain = split_email(body.email)
            except ValueError:
                raise errors.invalid_email(body.email) from None
            email = f"{local}@{domain}".lower()
        try:
            discovered = await self.discovery.get(app.authority)
        except (httpx.HTTPError, ValueError):
            raise errors.unavailable(f"{app.identity.title()} sign-in") from None
        sign_in_id = "si_" + secrets.token_hex(12)
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)[:96]  # RFC 7636 4.1: 43-128 unreserved characters
        nonce = secrets.token_urlsafe(24)
        override = getattr(self.settings, f"oauth_{app.identity}_authorize_params")
        params: dict[str, str] = (
            dict(provider.oauth.authorize_params)
            if override is None
            else dict(p.split("=", 1) for p in override.split(",") if "=" in p)
        )
        if email:
            params["login_hint"] = email
        client = self._client(app, redirect_uri, " ".join(provider.oauth.scopes))
        url, _ = client.create_authorization_url(
            discovered["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce, **params
        )
        at = now_utc()
        expires = at + timedelta(seconds=self.settings.oauth_state_ttl_seconds)
        doc: Document = {
            "_id": sign_in_id,
            "state_hash": state_hash(state),
            "tenant_id": who.tenant_id,
            "user_id": who.user_id,
            "provider_id": provider.id,
            "identity": app.identity,
            "email": email,
            "nickname": body.nickname,
            "sync": sync.model_dump(),
            "imap": body.imap.model_dump(mode="json") if body.imap else None,
            "smtp": body.smtp.model_dump(mode="json") if body.smtp else None,
            "redirect_uri": redirect_uri,
            "verifier": self.keyring.seal(
                verifier, tenant_id=who.tenant_id, mailbox_id=sign_in_id
            ).model_dump(),
            "nonce": nonce,
            "status": "pending",
            "created_at": at,
            "expires_at": expires,
            "mailbox_id": None,
            "error": None,
        }
        await self.collection.insert_one(doc)
        log.info(
            "oauth sign-in started", sign_in_id=sign_in_id, tenant_id=who.tenant_id, provider=provider.id
        )
        out = self._view(doc)
        out.authorization_url = url  # answered once, never stored: it carries the state
        return out

    async def get(self, who: Principal, sign_in_id: str) -> SignInOut:
        doc = await self.collection.find_one(
            {"_id": sign_in_id, "tenant_id": who.tenant_id, "user_id": who.user_id}
        )
        if doc is None:
            raise errors.not_found()
        return await self._view_with_mailbox(doc)

    async def complete(self, body: SignInComplete, who: Principal | None) -> SignInOut:
        """Finish the sign-in the redirect belongs to (see the module docstring).

        ``who``: the authenticated caller, or None for the browser's redirect to the public callback (the
        state itself, unguessable and single-use, then identifies the tenant and user who started it).

        Raises:
            BindingError: 400 ``oauth_state_invalid`` (unknown, used, expired, another tenant's or user's);
                422 ``oauth_sign_in_failed`` (the provider's error, a refused code, a bad ID token),
                ``oauth_account_mismatch``, a verification failure's taxonomy code; 409 ``mailbox_exists``
                (another user of the tenant has the address).
        """
        at = now_utc()
        query: dict[str, Any] = {"state_hash": state_hash(body.state), "status": "pending"}
        if who is not None:
            query |= {"tenant_id": who.tenant_id, "user_id": who.user_id}
        doc = await self.collection.find_one_and_update(
            query, {"$set": {"status": "working", "used_at": at}}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise state_invalid()
        if doc["expires_at"].replace(tzinfo=at.tzinfo) <= at:
            await self._fail(doc, state_invalid())
            raise state_invalid()
        try:
            mailbox = await self._finish(doc, body)
        except BindingError as exc:
            await self._fail(doc, exc)
            raise
        except Exception as exc:
            await self._fail(doc, errors.unavailable("The sign-in"))
            log.error("oauth sign-in failed", sign_in_id=doc["_id"], error_type=type(exc).__name__)
            raise
        await self.collection.update_one(
            {"_id": doc["_id"]},
            {"$set": {"status": "bound", "mailbox_id": mailbox.id, "finished_at": now_utc()}},
        )
        doc |= {"status": "bound", "mailbox_id": mailbox.id}
        out = self._view(doc)
        out.mailbox = mailbox
        return out

    async def _fail(self, doc: Document, exc: BindingError) -> None:
        await self.collection.update_one(
            {"_id": doc["_id"]},
            {"$set": {"status": "failed", "error": exc.to_dict(), "finished_at": now_utc()}},
        )

    async def _finish(self, doc: Document, body: SignInComplete) -> MailboxOut:
        if body.error or not body.code:
            raise sign_in_refused(body.error_description or body.error or "no authorization code")
        provider = get_provider(doc["provider_id"])
        assert provider.oauth is not None
        app = app_for(self.settings, provider.oauth)
        discovered = await self.discovery.get(app.authority)
        verifier = self.keyring.open(
            EncryptedCredential.model_validate(doc["verifier"]),
            tenant_id=doc["tenant_id"],
            mailbox_id=doc["_id"],
        )
        client = self._client(app, doc["redirect_uri"])
        try:
            token = await client.fetch_token(
                discovered["token_endpoint"],
                code=body.code,
                code_verifier=verifier,
                grant_type="authorization_code",
            )
        except OAuthError as exc:
            raise sign_in_refused(f"the provider refused the code ({exc.error})") from None
        finally:
            await client.aclose()
        claims = await self._id_claims(token.get("id_token"), app, discovered, doc["nonce"])
        email = str(claims.get("email") or claims.get("preferred_username") or "").strip().lower()
        if "@" not in email or claims.get("email_verified") is False:
            raise sign_in_refused("the provider gave no verified email address")
        if doc["email"] and email != doc["email"]:
            raise account_mismatch(doc["email"], email)
        refresh = token.get("refresh_token")
        if not refresh:
            raise sign_in_refused("the provider gave no refresh token (offline access was not granted)")
        who = Principal(tenant_id=doc["tenant_id"], user_id=doc["user_id"])
        return await self.bind(who, doc, provider, email, token)

    async def _id_claims(
        self, id_token: str | None, app: OAuthApp, discovered: dict[str, Any], nonce: str
    ) -> dict[str, Any]:
        """Verify the ID token (OpenID Connect Core 3.1.3.7): signature by a key of the issuer's JWKS,
        ``aud`` = our client id, ``iss``, ``exp``/``iat``, and ``nonce``."""
        if not id_token:
            raise sign_in_refused("the provider gave no ID token (the openid scope was not granted)")
        try:
            key = await asyncio.to_thread(
                self.discovery.jwks(discovered["jwks_uri"]).get_signing_key_from_jwt, id_token
            )
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"],
                audience=app.client_id,
                options={"require": ["iss", "aud", "exp", "iat", "sub"], "verify_iss": False},
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            raise sign_in_refused(f"the ID token did not verify ({type(exc).__name__})") from None
        if claims.get("iss") != expected_issuer(str(discovered["issuer"]), claims):
            raise sign_in_refused("the ID token names another issuer")
        if claims.get("nonce") != nonce:
            raise sign_in_refused("the ID token's nonce does not match")
        return claims

    async def bind(
        self, who: Principal, sign_in: Document, provider: Provider, email: str, token: dict[str, Any]
    ) -> MailboxOut:
        """Verify IMAP and SMTP with the access token and save the mailbox (``auth: oauth2``); an existing
        mailbox of the same user and address (signing in again, e.g. after ``oauth_revoked``) gets the new
        tokens and is verified again."""
        svc = self.mailboxes
        access = str(token["access_token"])
        lifetime = float(token.get("expires_in") or 3600)
        imap = ServerIn.model_validate(sign_in["imap"]) if sign_in.get("imap") else None
        smtp = ServerIn.model_validate(sign_in["smtp"]) if sign_in.get("smtp") else None
        servers = Servers(provider, imap, smtp)
        try:
            request = VerifyRequest.build(
                email, access, provider=provider, imap=_endpoint(servers.imap), smtp=_endpoint(servers.smtp)
            )
        except MailServerError as exc:
            raise errors.from_mail_error(exc.error) from None
        request = dataclasses.replace(
            request, auth="oauth2", imap_usernames=(email,), smtp_usernames=(email,)
        )
        verification = await svc._verify(who, request)
        existing = await svc.store.find_by_email(who.tenant_id, email)
        if existing is not None and existing.get("user_id") != who.user_id:
            raise errors.mailbox_exists(email)
        mailbox_id = existing["_id"] if existing else new_mailbox_id()
        at = now_utc()
        credential = svc._seal(who.tenant_id, mailbox_id, verification)
        fields = {
            **_verified_fields(verification, request, provider, credential, at),
            "auth": "oauth2",
            "oauth": self._custody(who.tenant_id, mailbox_id, provider, token, at, lifetime),
        }
        if existing is None:
            document = {
                "_id": mailbox_id,
                "tenant_id": who.tenant_id,
                "user_id": who.user_id,
                "email": email,
                "nickname": sign_in.get("nickname", ""),
                "sync": sign_in["sync"],
                "credential_expires_at": None,
                "last_synced_at": None,
                "last_error": None,
                "created_at": at,
                "is_system": False,
                **fields,
            }
            if not await svc.store.insert(document):
                raise errors.mailbox_exists(email)
        else:
            updated = await svc.store.update(who.tenant_id, mailbox_id, fields)
            if updated is None:
                raise errors.not_found()
            document = updated
        try:
            await svc.publish(svc._verified_event(document))
        except Exception as exc:
            if existing is None:
                await svc.store.delete(who.tenant_id, mailbox_id)
            raise errors.unavailable("The event bus") from exc
        log.info(
            "mailbox bound by oauth", mailbox_id=mailbox_id, tenant_id=who.tenant_id, provider=provider.id
        )
        return svc.view(document)

    def _custody(
        self,
        tenant_id: str,
        mailbox_id: str,
        provider: Provider,
        token: dict[str, Any],
        at: datetime,
        lifetime: float,
        previous_refresh: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ``oauth`` sub-document: the sealed refresh token (the new one when the provider rotated it, else
        the one held), when the access token expires, and when it is due for refresh (jittered)."""
        refresh = token.get("refresh_token")
        sealed = (
            self.keyring.seal(str(refresh), tenant_id=tenant_id, mailbox_id=mailbox_id).model_dump()
            if refresh
            else previous_refresh
        )
        return {
            "identity": provider.oauth.identity if provider.oauth else None,
            "refresh": sealed,
            "access_expires_at": at + timedelta(seconds=lifetime),
            "refresh_at": at + timedelta(seconds=refresh_delay(lifetime)),
            "refreshed_at": at,
            "scope": str(token.get("scope") or ""),
            "revoked": False,
        }

    def _view(self, doc: Document) -> SignInOut:
        return SignInOut(
            id=doc["_id"],
            status=doc["status"],
            provider_id=doc["provider_id"],
            identity=doc["identity"],
            expires_at=doc["expires_at"],
            error=doc.get("error"),
        )

    async def _view_with_mailbox(self, doc: Document) -> SignInOut:
        out = self._view(doc)
        if doc.get("mailbox_id"):
            mailbox = await self.mailboxes.store.get(doc["tenant_id"], doc["mailbox_id"])
            if mailbox is not None:
                out.mailbox = self.mailboxes.view(mailbox)
        return out

    # ------------------------------------------------------------------ refresh

    async def refresh_mailbox(self, doc: Document, *, now: datetime | None = None) -> str:
        """Refresh one mailbox's access token now; returns ``refreshed``, ``revoked`` or ``failed``.

        On success the new access token becomes the sealed ``credential``, a rotated refresh token replaces
        the held one (Microsoft and Hydra rotate on every use; Google returns none, and the held one stays),
        and ``mailbox.verified`` carries the new credential to sync. ``invalid_grant`` (RFC 6749 5.2: revoked,
        expired) sets status ``oauth_revoked`` with its fix and stops refreshing this mailbox until the user
        signs in again; any other failure is retried at the next refresh time (a quarter of the token's life
        remains, see :func:`refresh_delay`).
        """
        at = now or now_utc()
        oauth = doc.get("oauth") or {}
        provider = get_provider(doc["provider_id"])
        if provider.oauth is None or not oauth.get("refresh"):
            return "failed"
        app = app_for(self.settings, provider.oauth)
        refresh = self.keyring.open(
            EncryptedCredential.model_validate(oauth["refresh"]),
            tenant_id=doc["tenant_id"],
            mailbox_id=doc["_id"],
        )
        client = self._client(app)
        try:
            discovered = await self.discovery.get(app.authority)
            token = await client.refresh_token(discovered["token_endpoint"], refresh_token=refresh)
        except OAuthError as exc:
            if exc.error == "invalid_grant":
                await self._revoked(doc, at)
                return "revoked"
            await self._retry_later(doc, at)
            log.warning("oauth refresh failed", mailbox_id=doc["_id"], error=exc.error)
            return "failed"
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            await self._retry_later(doc, at)
            log.warning("oauth refresh failed", mailbox_id=doc["_id"], error_type=type(exc).__name__)
            return "failed"
        finally:
            await client.aclose()
        lifetime = float(token.get("expires_in") or 3600)
        # The access token is the mailbox credential: sealed for the mailbox's servers and login (v2).
        credential = self.keyring.seal_mailbox(str(token["access_token"]), CredentialContext.of(doc))
        custody = self._custody(
            doc["tenant_id"],
            doc["_id"],
            provider,
            dict(token),
            at,
            lifetime,
            previous_refresh=oauth["refresh"],
        )
        updated = await self.mailboxes.store.update(
            doc["tenant_id"],
            doc["_id"],
            {"credential": credential.model_dump(), "oauth": custody, "updated_at": at},
        )
        if updated is not None:
            await self.mailboxes.publish(self.mailboxes._verified_event(updated))
        return "refreshed"

    async def _retry_later(self, doc: Document, at: datetime) -> None:
        oauth = doc.get("oauth") or {}
        expires = oauth.get("access_expires_at") or at
        remaining = max(30.0, (expires.replace(tzinfo=at.tzinfo) - at).total_seconds() / 2)
        await self.mailboxes.store.update(
            doc["tenant_id"], doc["_id"], {"oauth.refresh_at": at + timedelta(seconds=remaining)}
        )

    async def _revoked(self, doc: Document, at: datetime) -> None:
        error = make_error(ErrorCode.OAUTH_REVOKED, provider_id=doc["provider_id"])
        last = {
            "code": error.code.value,
            "message": error.message.en,
            "fix": error.fix.en,
            "message_zh": error.message.zh,
            "fix_zh": error.fix.zh,
            "at": at,
        }
        await self.mailboxes.store.update(
            doc["tenant_id"],
            doc["_id"],
            {
                "status": ErrorCode.OAUTH_REVOKED.value,
                "state": "auth_failed",
                "status_at": at,
                "last_error": last,
                "oauth.revoked": True,
                "oauth.refresh_at": None,
                "updated_at": at,
            },
        )
        log.warning("oauth grant revoked", mailbox_id=doc["_id"], tenant_id=doc["tenant_id"])
        if self.on_revoked is not None:
            await self.on_revoked(doc, error, at)

    on_revoked: Any = None
    """Async callable (mailbox document, MailError, time) run after a grant is found revoked: publishes
    ``mailbox.sync_status`` (set by the app)."""

    async def due(self, now: datetime, limit: int = 500) -> list[Document]:
        """OAuth mailboxes whose access token is due for refresh, earliest first."""
        cursor = (
            self.mailboxes.store.collection.find(
                {"auth": "oauth2", "oauth.revoked": False, "oauth.refresh_at": {"$lte": now}}
            )
            .sort("oauth.refresh_at", 1)
            .limit(limit)
        )
        return [d async for d in cursor]


class TokenRefresher:
    """Background task: every ``interval_s`` refresh the access tokens that are due (:meth:`OAuthService.due`),
    at most ``concurrency`` at a time. One binding instance runs it (``BINDING_OAUTH_REFRESH_ENABLED``); each
    mailbox's refresh time is spread over its token's life by :func:`refresh_delay`, so the load is even."""

    def __init__(self, service: OAuthService, interval_s: float, concurrency: int = 8) -> None:
        self.service = service
        self.interval_s = interval_s
        self.semaphore = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> dict[str, int]:
        counts = {"refreshed": 0, "revoked": 0, "failed": 0}
        docs = await self.service.due(now_utc())

        async def one(doc: Document) -> None:
            async with self.semaphore:
                counts[await self.service.refresh_mailbox(doc)] += 1

        await asyncio.gather(*(one(d) for d in docs))
        return counts

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001  a bad pass must not end the loop
                log.error("oauth refresh pass failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="oauth-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
