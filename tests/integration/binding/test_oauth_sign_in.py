"""Sign in with Microsoft / Google through the real local Ory Hydra (standing in for both), Dovecot's XOAUTH2,
the SMTP server's XOAUTH2, Kafka and FerretDB: start, the user's sign-in, the callback, the bound mailbox; state
checks (replay, expiry, another tenant); refresh with rotation; a revoked grant ending as ``oauth_revoked``."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from laifaxin_shared.crypto import CredentialContext, KeyRing
from laifaxin_shared.events import EncryptedCredential
from tests.conftest import MailAccount
from tests.integration.binding.apps import own_app
from tests.integration.binding.conftest import Api
from tests.support.infra import Servers
from tests.support.oauth import Hydra, OAuthClient, hydra_from

REDIRECT = "http://127.0.0.1:9/v1/oauth/callback"
SCOPES = (
    "openid",
    "email",
    "offline_access",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "https://mail.google.com/",
)


@pytest.fixture(scope="module")
def hydra(real_servers: Servers) -> Hydra:
    found = hydra_from(real_servers.mail)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("infra.json names no Hydra: start the stack with deploy/local/infra.py up")
        pytest.skip("no local Hydra in this stack")
    return found


@pytest.fixture(scope="module")
def oauth_client(hydra: Hydra) -> OAuthClient:
    return hydra.create_client(REDIRECT, scopes=SCOPES, name="Laifaxin")


@pytest.fixture
async def app(real_servers: Servers, hydra: Hydra, oauth_client: OAuthClient) -> AsyncIterator[Api]:
    secret = SecretStr(oauth_client.client_secret)
    async with own_app(
        real_servers,
        oauth_redirect_uris=REDIRECT,
        oauth_microsoft_client_id=oauth_client.client_id,
        oauth_microsoft_client_secret=secret,
        oauth_microsoft_authority=hydra.issuer,
        oauth_microsoft_authorize_params="response_mode=query",  # Hydra knows no prompt=select_account
        oauth_google_client_id=oauth_client.client_id,
        oauth_google_client_secret=secret,
        oauth_google_authority=hydra.issuer,
        oauth_google_authorize_params="access_type=offline,prompt=consent",
        oauth_refresh_enabled=False,
    ) as api:
        yield api.for_tenant("tenant-oauth")


def servers_of(account: MailAccount) -> dict[str, Any]:
    return {
        "imap": {"host": account.host, "port": account.imaps_port, "security": "ssl"},
        "smtp": {"host": account.host, "port": account.smtps_port, "security": "ssl"},
    }


async def start(api: Api, account: MailAccount, provider: str = "outlook", **auth: Any) -> dict[str, Any]:
    resp = await api.client.post(
        "/v1/oauth/sign-ins",
        json={"email": account.email, "provider_id": provider, **servers_of(account)},
        headers=api.auth(**auth),
    )
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def callback_params(final_url: str) -> dict[str, str]:
    assert final_url.startswith(REDIRECT), final_url
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final_url).query))


def keyring(api: Api) -> KeyRing:
    ring: KeyRing = api.app.state.service.keyring
    return ring


async def test_sign_in_binds_the_mailbox_end_to_end(api_app_account: Any) -> None:
    api, hydra, account, sign_in, params = api_app_account
    assert sign_in["status"] == "pending"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(sign_in["authorization_url"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert "https://outlook.office.com/IMAP.AccessAsUser.All" in query["scope"][0].split()
    page = await api.client.get("/v1/oauth/callback", params=params)
    assert page.status_code == 200, page.text
    assert "Mailbox bound" in page.text
    done = (await api.client.get(f"/v1/oauth/sign-ins/{sign_in['id']}", headers=api.auth())).json()
    assert done["status"] == "bound"
    mailbox = done["mailbox"]
    assert mailbox["email"] == account.email and mailbox["status"] == "normal" and mailbox["auth"] == "oauth2"
    assert mailbox["provider_id"] == "outlook"
    events = await api.events("mailbox.verified", mailbox["id"], expect=1)
    event = json.loads(events[0].value)
    assert event["auth"] == "oauth2" and event["access_token_expires_at"]
    access = keyring(api).open_mailbox(
        EncryptedCredential.model_validate(event["credential"]), CredentialContext.of(event)
    )
    assert hydra.introspect(access)["sub"] == account.email
    stored = await api.db["mailboxes"].find_one({"_id": mailbox["id"]})
    refresh = keyring(api).open(
        EncryptedCredential.model_validate(stored["oauth"]["refresh"]),
        tenant_id=api.tenant,
        mailbox_id=mailbox["id"],
    )
    for text in (json.dumps(event), json.dumps(stored, default=str), page.text, json.dumps(done)):
        assert access not in text and refresh not in text


@pytest.fixture
async def api_app_account(app: Api, hydra: Hydra, mail_account: MailAccount) -> Any:
    sign_in = await start(app, mail_account)
    params = callback_params(hydra.sign_in(sign_in["authorization_url"], mail_account.email))
    return app, hydra, mail_account, sign_in, params


async def test_replayed_state_is_refused(api_app_account: Any) -> None:
    api, _, _, _, params = api_app_account
    first = await api.client.post("/v1/oauth/callback", json=params, headers=api.auth())
    assert first.status_code == 200, first.text
    again = await api.client.post("/v1/oauth/callback", json=params, headers=api.auth())
    assert again.status_code == 400 and again.json()["code"] == "oauth_state_invalid"
    browser = await api.client.get("/v1/oauth/callback", params=params)
    assert browser.status_code == 400


async def test_another_tenants_or_users_state_is_refused(api_app_account: Any) -> None:
    api, _, _, sign_in, params = api_app_account
    other = await api.client.post("/v1/oauth/callback", json=params, headers=api.auth(tenant="tenant-evil"))
    assert other.status_code == 400 and other.json()["code"] == "oauth_state_invalid"
    other_user = await api.client.post("/v1/oauth/callback", json=params, headers=api.auth(user="u_2"))
    assert other_user.status_code == 400
    look = await api.client.get(f"/v1/oauth/sign-ins/{sign_in['id']}", headers=api.auth(tenant="tenant-evil"))
    assert look.status_code == 404
    mine = await api.client.post("/v1/oauth/callback", json=params, headers=api.auth())
    assert mine.status_code == 200 and mine.json()["status"] == "bound"


async def test_expired_state_is_refused(api_app_account: Any) -> None:
    api, _, _, sign_in, params = api_app_account
    await api.db["oauth_sign_ins"].update_one(
        {"_id": sign_in["id"]}, {"$set": {"expires_at": sign_in_expired()}}
    )
    resp = await api.client.post("/v1/oauth/callback", json=params, headers=api.auth())
    assert resp.status_code == 400 and resp.json()["code"] == "oauth_state_invalid"
    failed = (await api.client.get(f"/v1/oauth/sign-ins/{sign_in['id']}", headers=api.auth())).json()
    assert failed["status"] == "failed" and failed["mailbox"] is None


def sign_in_expired() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(seconds=1)


async def test_denied_consent_fails_with_the_reason(
    app: Api, hydra: Hydra, mail_account: MailAccount
) -> None:
    sign_in = await start(app, mail_account)
    params = callback_params(hydra.sign_in(sign_in["authorization_url"], mail_account.email, allow=False))
    assert params["error"] == "access_denied"
    resp = await app.client.post("/v1/oauth/callback", json=params, headers=app.auth())
    assert resp.status_code == 422 and resp.json()["code"] == "oauth_sign_in_failed"


async def test_signing_in_as_another_address_is_refused(
    app: Api, hydra: Hydra, new_mail_account: Any
) -> None:
    alice, bob = new_mail_account(), new_mail_account()
    sign_in = await start(app, alice)
    params = callback_params(hydra.sign_in(sign_in["authorization_url"], bob.email))
    resp = await app.client.post("/v1/oauth/callback", json=params, headers=app.auth())
    assert resp.status_code == 422 and resp.json()["code"] == "oauth_account_mismatch"


async def test_refresh_rotates_and_a_revoked_grant_ends_as_oauth_revoked(
    api_app_account: Any, oauth_client: OAuthClient
) -> None:
    api, hydra, account, _, params = api_app_account
    bound = (await api.client.post("/v1/oauth/callback", json=params, headers=api.auth())).json()["mailbox"]
    oauth = api.app.state.oauth
    ring = keyring(api)

    async def held() -> tuple[dict[str, Any], str, str]:
        doc = await api.db["mailboxes"].find_one({"_id": bound["id"]})
        refresh = ring.open(
            EncryptedCredential.model_validate(doc["oauth"]["refresh"]),
            tenant_id=api.tenant,
            mailbox_id=bound["id"],
        )
        access = ring.open_mailbox(
            EncryptedCredential.model_validate(doc["credential"]), CredentialContext.of(doc)
        )
        return doc, refresh, access

    doc, refresh1, access1 = await held()
    assert await oauth.refresh_mailbox(doc) == "refreshed"
    doc, refresh2, access2 = await held()
    assert refresh2 != refresh1, "Hydra rotates refresh tokens: the new one must be stored"
    assert access2 != access1 and hydra.introspect(access2)["active"] is True
    events = await api.events("mailbox.verified", bound["id"], expect=2)
    assert len(events) == 2
    # A second refresh works with the stored (rotated) token: the rotation was persisted.
    assert await oauth.refresh_mailbox(doc) == "refreshed"
    doc, _, _ = await held()

    hydra.revoke_consent(account.email, oauth_client.client_id)
    assert await oauth.refresh_mailbox(doc) == "revoked"
    listed = (await api.client.get("/v1/mailboxes", headers=api.auth())).json()
    mine = next(m for m in listed["items"] if m["id"] == bound["id"])
    assert mine["status"] == "oauth_revoked"
    assert "sign in again" in mine["last_error"]["fix"].lower() and mine["last_error"]["fix_zh"]
    statuses = await api.events("mailbox.sync_status", bound["id"], expect=1)
    assert json.loads(statuses[0].value)["error_code"] == "oauth_revoked"
    # No retry loop: the mailbox is no longer due for refresh.
    from laifaxin_binding.service import now_utc

    assert bound["id"] not in {d["_id"] for d in await oauth.due(now_utc())}


async def test_password_bind_of_an_oauth_provider_points_to_sign_in(app: Api) -> None:
    resp = await app.client.post(
        "/v1/mailboxes", json={"email": "someone@outlook.com", "password": "x"}, headers=app.auth()
    )
    assert resp.status_code == 422 and resp.json()["code"] == "oauth_required"
    assert "Sign in with Microsoft" in resp.json()["fix"] and "微软" in resp.json()["fix_zh"]


async def test_no_token_in_plaintext_in_kafka_mongo_logs_or_answers(
    api_app_account: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """Scan everything the sign-in and a refresh pass left behind for every secret of the flow: the
    authorization code, the state, each access and refresh token (read back by decrypting)."""
    from datetime import UTC, datetime, timedelta

    from tests.integration.binding.kafka_read import read_topic

    api, _, _, _, params = api_app_account
    answers = [(await api.client.get("/v1/oauth/callback", params=params)).text]
    listed = await api.client.get("/v1/mailboxes", headers=api.auth())
    answers.append(listed.text)
    mailbox_id = listed.json()["items"][0]["id"]
    ring = keyring(api)
    secrets: set[str] = {params["code"], params["state"]}

    async def collect() -> None:
        doc = await api.db["mailboxes"].find_one({"_id": mailbox_id})
        secrets.add(
            ring.open_mailbox(
                EncryptedCredential.model_validate(doc["credential"]), CredentialContext.of(doc)
            )
        )
        secrets.add(
            ring.open(
                EncryptedCredential.model_validate(doc["oauth"]["refresh"]),
                tenant_id=api.tenant,
                mailbox_id=mailbox_id,
            )
        )

    await collect()
    await api.db["mailboxes"].update_one(
        {"_id": mailbox_id}, {"$set": {"oauth.refresh_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    counts = await api.app.state.oauth_refresher.run_once()
    assert counts["refreshed"] == 1
    await collect()
    assert len(secrets) == 6  # code, state, two access tokens, two refresh tokens
    records = await read_topic(
        api.settings.kafka_bootstrap_servers,
        [api.settings.topic(t) for t in ("mailbox.verified", "mailbox.sync_status")],
    )
    kafka = "\n".join(r.value.decode("utf-8", "replace") for r in records)
    assert mailbox_id in kafka
    mongo = ""
    for name in await api.db.list_collection_names():
        async for doc in api.db[name].find({}):
            mongo += json.dumps(doc, default=str)
    out, err = capfd.readouterr()
    for where, text in (
        ("kafka", kafka),
        ("mongo", mongo),
        ("logs", out + err),
        ("answers", "".join(answers)),
    ):
        for secret in secrets:
            assert secret not in text, f"a token in plaintext in {where}"


async def test_reverify_of_an_oauth_mailbox_uses_its_access_token(api_app_account: Any) -> None:
    api, _, _, _, params = api_app_account
    bound = (await api.client.post("/v1/oauth/callback", json=params, headers=api.auth())).json()["mailbox"]
    again = await api.client.post(f"/v1/mailboxes/{bound['id']}/verify", headers=api.auth())
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "normal" and again.json()["auth"] == "oauth2"
