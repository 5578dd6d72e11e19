"""Attacks on notify as an attacker would try them, through the real service: the API over HTTP, the Kafka
consumers on the real broker, FerretDB, the local SMTP relay, and the loopback Web Push and WeChat services. Each
of these succeeded before the fixes (the attack reached its target or the secret was accepted).

- SSRF through Web Push endpoints: a subscription naming the cloud metadata service, a cluster address or a
  loopback port; a name that resolves somewhere internal when the push connects (DNS rebinding); a push service
  that redirects inward; and the delivery history as an oracle.
- Unverified alert destinations: an email address nobody confirmed, an openid typed in, unlimited bindings.
- Secrets shared too widely: notify in production without the mailbox credential ring, sealing with its own.
- A weak JWT secret in production, and replayed or stale WeChat callbacks.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import secrets
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from laifaxin_notify.app import create_app
from laifaxin_notify.auth import issue_token
from laifaxin_notify.channels.apprise import AppriseSender, new_target_id
from laifaxin_notify.channels.webpush import load_vapid, vapid_private_raw
from laifaxin_notify.egress import EgressGuard
from laifaxin_notify.reseal import reseal_secrets
from laifaxin_notify.settings import NotifySettings
from laifaxin_notify.store import Binding, Store, push_target_id
from laifaxin_shared.crypto import CredentialError, KeyRing, generate_key
from laifaxin_shared.events.base import EncryptedCredential
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from tests.conftest import MailAccount
from tests.integration.notify.conftest import alert_handled, classified, serve
from tests.integration.notify.test_service import auth, make_settings, relay_settings, run_service
from tests.support.infra import Servers
from tests.support.loopback import serve as serve_aiohttp
from tests.support.platform import confirmation_code
from tests.support.push_service import PushService
from tests.support.wechat_server import WeChatServer, push_callback

pytestmark = pytest.mark.integration

CALLBACK_TOKEN = "attack-tests-callback-token"
MAX_PUSH, MAX_EMAILS, MAX_CONFIRMATIONS, MAX_WECHAT = 4, 2, 4, 2
"""The per-user caps the service under attack is given (small, so the tests stay short)."""
ROOT = Path(__file__).resolve().parents[3]


class InternalService:
    """Stands for what an attacker wants notify to reach: the cloud metadata service, a cluster admin port. A
    raw TCP server on ``host`` (default 127.0.0.2, not in the tests' push allowlist 127.0.0.1/32) that counts
    every connection (a TLS handshake counts too) and answers any plaintext request with a secret."""

    SECRET = b"iam-role-credentials: AKIAINTERNAL 10.0.0.7"

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host = host
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> InternalService:
        self._server = await asyncio.start_server(self._session, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await asyncio.wait_for(reader.read(65536), 2)
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.SECRET)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + self.SECRET)
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def internal() -> AsyncIterator[InternalService]:
    async with InternalService() as service:
        yield service


@pytest.fixture
async def service(
    real_servers: Servers,
    topic_prefix: str,
    wechat: WeChatServer,
    push: PushService,
    mail_account: MailAccount,
) -> AsyncIterator[dict[str, Any]]:
    """notify as operated: only the loopback push service's address allowlisted (127.0.0.1/32), a callback
    token, alert and confirmation mail through the local relay (``"mail_account"``)."""
    settings = make_settings(
        real_servers,
        topic_prefix,
        wechat,
        push_allowlist="127.0.0.1/32",
        wechat_callback_token=SecretStr(CALLBACK_TOKEN),
        webpush_max_subscriptions_per_user=MAX_PUSH,
        email_max_addresses_per_user=MAX_EMAILS,
        email_confirmations_per_hour=MAX_CONFIRMATIONS,
        wechat_max_bindings_per_user=MAX_WECHAT,
        **relay_settings(mail_account),
    )
    async with run_service(settings, topic_prefix) as api:
        yield {**api, "mail_account": mail_account}


def user(service: dict[str, Any]) -> tuple[httpx.AsyncClient, Any, dict[str, str]]:
    ev = classified()
    return service["http"], ev, auth(service["settings"], ev.tenant_id, ev.user_id)


def keys() -> dict[str, str]:
    """Real push subscription keys (the attack is the endpoint, not the keys)."""
    subscription: dict[str, Any] = PushService().subscribe()
    return dict(subscription["keys"])


def subscribe_xml(openid: str, scene: str) -> str:
    """A ``subscribe`` event through the QR code of ``scene``, as WeChat pushes it."""
    return (
        f"<xml><ToUserName><![CDATA[gh_laifaxin]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_{scene}]]></EventKey></xml>"
    )


# 1. SSRF through Web Push -----------------------------------------------------------------------------------
async def test_push_subscriptions_to_internal_addresses_are_refused(
    service: dict[str, Any], internal: InternalService
) -> None:
    http, ev, me = user(service)
    attempts = {
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/": "https_required",
        "https://169.254.169.254/latest/meta-data/": "host_not_allowed",
        "https://[::ffff:169.254.169.254]/latest/meta-data/": "host_not_allowed",
        "https://[fd00:ec2::254]/latest/meta-data/": "host_not_allowed",
        "https://10.96.0.1/api/v1/namespaces": "host_not_allowed",
        f"https://{internal.host}:{internal.port}/push/x": "host_not_allowed",
        f"http://{internal.host}:{internal.port}/push/x": "https_required",
        f"https://user:pw@{internal.host}:{internal.port}/": "invalid_url",
    }
    for endpoint, code in attempts.items():
        answer = await http.post(
            "/v1/bindings/webpush", json={"endpoint": endpoint, "keys": keys()}, headers=me
        )
        assert answer.status_code == 422, (endpoint, answer.text)
        assert answer.json()["detail"]["code"] == code, endpoint
    assert (await http.get("/v1/bindings", headers=me)).json() == []
    await alert_handled(service, ev)
    assert internal.connections == 0


async def test_a_name_that_rebinds_inward_is_refused_when_the_push_connects(
    real_servers: Servers, topic_prefix: str, wechat: WeChatServer
) -> None:
    """A subscription accepted while its name resolved to a public address; when the push connects the name
    resolves to loopback (here ``localhost``): notify refuses that address, connects nowhere, drops the
    subscription, and the user's delivery history names the rule, not the address."""
    settings = make_settings(real_servers, topic_prefix, wechat, push_allowlist="")
    async with InternalService("127.0.0.1") as inside, run_service(settings, topic_prefix) as api:
        http, ev, me = user(api)
        store: Store = api["app"].state.runtime.store
        endpoint = f"https://localhost:{inside.port}/push/rebound"
        data = {"endpoint": endpoint, "keys": keys()}
        await store.put_binding(Binding(ev.tenant_id, ev.user_id, "webpush", push_target_id(endpoint), data))
        await alert_handled(api, ev)
        assert inside.connections == 0
        assert await store.list_bindings(ev.tenant_id, ev.user_id) == []
        [row] = (await http.get("/v1/deliveries", headers=me)).json()
        assert row["status"] == "failed" and row["last_error"] == "push endpoint refused: host_not_allowed"
        assert "127.0.0.1" not in json.dumps(row)


async def test_push_redirects_are_not_followed_and_deliveries_leak_nothing(
    service: dict[str, Any], internal: InternalService
) -> None:
    """A push service the operator allows (127.0.0.1) answers 307 to an internal address: the redirect is not
    followed, and the delivery history shows the status class only."""
    target = f"http://{internal.host}:{internal.port}/latest/meta-data/"

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": target}, text="see 10.0.0.7 " + target)

    app = web.Application()
    app.router.add_post("/push/{sub}", redirect)
    runner, base = await serve_aiohttp(app)
    try:
        http, ev, me = user(service)
        sub = {"endpoint": f"{base}/push/redirecting", "keys": keys()}
        assert (await http.post("/v1/bindings/webpush", json=sub, headers=me)).status_code == 201
        await alert_handled(service, ev)
        assert internal.connections == 0
        [row] = (await http.get("/v1/deliveries", headers=me)).json()
        assert row["status"] == "failed" and row["last_error"] == "push 3xx: redirect not followed"
        shown = json.dumps(row)
        assert "10.0.0.7" not in shown and "127.0.0.2" not in shown and "AKIA" not in shown
    finally:
        await runner.cleanup()


async def test_push_subscriptions_per_user_are_capped(service: dict[str, Any], push: PushService) -> None:
    http, _ev, me = user(service)
    limit = MAX_PUSH
    subs = [push.subscribe() for _ in range(limit + 1)]
    for sub in subs[:limit]:
        assert (await http.post("/v1/bindings/webpush", json=sub, headers=me)).status_code == 201
    refused = await http.post("/v1/bindings/webpush", json=subs[-1], headers=me)
    assert refused.status_code == 409 and refused.json()["detail"]["code"] == "too_many_push_subscriptions"
    again = await http.post("/v1/bindings/webpush", json=subs[0], headers=me)  # the same one: an update
    assert again.status_code == 201
    assert len((await http.get("/v1/bindings", headers=me)).json()) == limit


# 2. Unverified alert destinations ---------------------------------------------------------------------------
def mails_to(index: Path, address: str, since: float) -> list[email.message.EmailMessage]:
    """The messages the local SMTP relay accepted for ``address`` since ``since``."""
    out = []
    for line in index.read_text().splitlines() if index.exists() else []:
        rec = json.loads(line)
        if rec["received_at"] >= since and address in rec.get("rcpt_tos", []):
            raw = Path(rec["file"]).read_bytes()
            out.append(email.message_from_bytes(raw, policy=email.policy.default))
    return out  # type: ignore[return-value]


async def test_alerts_go_only_to_a_confirmed_email_address(service: dict[str, Any]) -> None:
    http, ev, me = user(service)
    index = Path(str(service["mail_account"].servers.mail["smtp_received_index"]))
    victim = f"victim-{uuid.uuid4().hex[:8]}@laifaxin.example"
    t0 = time.time() - 1

    added = await http.put("/v1/bindings/email", json={"address": victim}, headers=me)
    assert added.status_code == 200
    assert added.json()["confirmed"] is False and added.json()["active"] is False
    await alert_handled(service, ev)
    [only] = mails_to(index, victim, t0)  # the confirmation, no alert
    assert str(only["Message-ID"]).startswith("<confirm-")
    assert only["Auto-Submitted"] == "auto-generated"
    code = await confirmation_code(index, victim, t0)
    assert f"/confirm-email#code={code}" in only.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    rows = (await http.get("/v1/deliveries", headers=me)).json()
    assert all(r["channel"] != "email" for r in rows)

    wrong = await http.post("/v1/bindings/email/confirm", json={"code": "x" * 32})
    assert wrong.status_code == 404 and wrong.json()["detail"]["code"] == "invalid_code"
    confirmed = await http.post("/v1/bindings/email/confirm", json={"code": code})
    assert confirmed.status_code == 200 and confirmed.json()["confirmed"] is True
    assert (await http.post("/v1/bindings/email/confirm", json={"code": code})).status_code == 404  # once

    await alert_handled(service, classified(1, tenant_id=ev.tenant_id, user_id=ev.user_id))
    alerts = [m for m in mails_to(index, victim, t0) if not str(m["Message-ID"]).startswith("<confirm-")]
    assert len(alerts) == 1
    # confirmed already: adding it again sends no second confirmation
    again = await http.put("/v1/bindings/email", json={"address": victim.upper()}, headers=me)
    assert again.json()["confirmed"] is True
    assert len(mails_to(index, victim, t0)) == 2


async def test_an_expired_confirmation_code_confirms_nothing(service: dict[str, Any]) -> None:
    http, ev, me = user(service)
    store: Store = service["app"].state.runtime.store
    await http.put("/v1/bindings/email", json={"address": "late@laifaxin.example"}, headers=me)
    code = secrets.token_urlsafe(24)
    past = datetime_ago(1)
    await store.create_email_confirmation(code, ev.tenant_id, ev.user_id, "late@laifaxin.example", past)
    assert (await http.post("/v1/bindings/email/confirm", json={"code": code})).status_code == 404
    [row] = (await http.get("/v1/bindings", headers=me)).json()
    assert row["confirmed"] is False and row["active"] is False


def datetime_ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


async def test_email_addresses_and_confirmation_mails_are_capped(service: dict[str, Any]) -> None:
    http, _ev, me = user(service)
    addresses = [f"a{i}-{uuid.uuid4().hex[:6]}@laifaxin.example" for i in range(MAX_EMAILS + 1)]
    for a in addresses[:MAX_EMAILS]:
        assert (await http.put("/v1/bindings/email", json={"address": a}, headers=me)).status_code == 200
    over = await http.put("/v1/bindings/email", json={"address": addresses[-1]}, headers=me)
    assert over.status_code == 409 and over.json()["detail"]["code"] == "too_many_email_addresses"
    # re-asking for a pending address sends a new confirmation, up to the hourly cap
    made = MAX_EMAILS
    while made < MAX_CONFIRMATIONS:
        assert (
            await http.put("/v1/bindings/email", json={"address": addresses[0]}, headers=me)
        ).status_code == 200
        made += 1
    spam = await http.put("/v1/bindings/email", json={"address": addresses[0]}, headers=me)
    assert spam.status_code == 429 and spam.json()["detail"]["code"] == "too_many_confirmations"


async def test_a_typed_in_openid_gets_no_alerts(service: dict[str, Any], wechat: WeChatServer) -> None:
    http, ev, me = user(service)
    typed = await http.put("/v1/bindings/wechat", json={"openid": "oSOMEONE_ELSE"}, headers=me)
    assert typed.status_code == 410
    detail = typed.json()["detail"]
    assert detail["code"] == "wechat_qrcode_required" and "/v1/bindings/wechat/qrcode" in detail["fix"]
    await alert_handled(service, ev)
    assert wechat.messages_for("oSOMEONE_ELSE") == []
    assert (await http.get("/v1/bindings", headers=me)).json() == []


async def test_wechat_links_per_user_are_capped(service: dict[str, Any], wechat: WeChatServer) -> None:
    http, _ev, me = user(service)
    callback = service["base_url"] + "/wechat/callback"
    codes = []
    for _ in range(MAX_WECHAT + 1):  # codes made before any is scanned
        made = await http.post("/v1/bindings/wechat/qrcode", headers=me)
        assert made.status_code == 201
        codes.append(made.json()["ticket"])
    for i, ticket in enumerate(codes):
        scanned = await wechat.scan(callback, CALLBACK_TOKEN, f"oLINK{i}", ticket=ticket)
        assert scanned.status == 200
    linked = (await http.get("/v1/bindings/wechat", headers=me)).json()
    assert len(linked) == MAX_WECHAT  # the last scan is past the cap
    more = await http.post("/v1/bindings/wechat/qrcode", headers=me)
    assert more.status_code == 409 and more.json()["detail"]["code"] == "too_many_wechat_bindings"


# 3. Secrets shared too widely -------------------------------------------------------------------------------
async def test_production_notify_needs_no_credential_ring_and_seals_with_its_own(
    real_servers: Servers, internal: InternalService
) -> None:
    """notify in production gets no LAIFAXIN_CREDENTIAL_KEYS (k8s), so it must start without it and seal users'
    Apprise URLs with NOTIFY_SECRETS_KEYS: an envelope it stored does not open with the credential ring, and a
    URL sealed under an old key is resealed by ``reseal-secrets``."""
    own = f"n1:{generate_key()},k1:{DEV_CREDENTIAL_KEYS.split(':', 1)[1]}"
    settings = NotifySettings(
        mongodb_url=SecretStr(real_servers.mongodb_url),
        mongodb_database=f"notify_{uuid.uuid4().hex[:10]}",
        environment="production",
        jwt_secret=SecretStr(secrets.token_urlsafe(48)),
        secrets_keys=SecretStr(own),
        secrets_active_key_id="n1",
        vapid_private_key=SecretStr(vapid_private_raw(_vapid())),
        host_allowlist="127.0.0.0/8",
        log_json=False,
        log_level="WARNING",
    )
    app = create_app(settings, consume=False)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        store: Store = app.state.runtime.store
        try:
            me = {"Authorization": f"Bearer {issue_token(settings, 'tenant-p', 'u-p')}"}
            url = f"json://{internal.host}:{internal.port}/hook"
            added = await http.post("/v1/bindings/apprise", json={"url": url}, headers=me)
            assert added.status_code == 201, added.text
            [stored] = await store.list_bindings("tenant-p", "u-p", ["apprise"])
            envelope = EncryptedCredential.model_validate(stored.data["credential"])
            assert envelope.key_id == "n1"
            with pytest.raises(CredentialError):  # the mailbox credential ring cannot open it
                KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0").open(
                    envelope, tenant_id="tenant-p", mailbox_id=f"notify.apprise:u-p:{stored.target_id}"
                )

            # an Apprise URL sealed by an older notify with the credential ring (key id k1) is resealed
            old = KeyRing.parse(f"k1:{DEV_CREDENTIAL_KEYS.split(':', 1)[1]}", "k1").seal(
                url, tenant_id="tenant-p", mailbox_id="notify.apprise:u-p:old0"
            )
            await store.put_binding(
                Binding("tenant-p", "u-p", "apprise", "old0", {"credential": old.model_dump(mode="json")})
            )
            assert await reseal_secrets(settings) == {"resealed": 1, "current": 1, "unopenable": 0}
            resealed = await store.get_binding("tenant-p", "u-p", "apprise", "old0")
            assert resealed is not None and resealed.data["credential"]["key_id"] == "n1"
            assert await reseal_secrets(settings) == {"resealed": 0, "current": 2, "unopenable": 0}
        finally:
            await app.state.runtime.mongo.drop_database(settings.mongodb_database)


def _vapid() -> Any:
    return load_vapid("")


# 4. Weak JWT secret, WeChat callback replay -----------------------------------------------------------------
async def test_a_production_notify_with_a_weak_jwt_secret_does_not_start(real_servers: Servers) -> None:
    weak = "laifaxin-2026-laifaxin-2026-laifaxin"  # long enough, but a guessable pattern
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "LAIFAXIN_"))},
        "LAIFAXIN_ENVIRONMENT": "production",
        "KAFKA_BOOTSTRAP_SERVERS": real_servers.kafka_bootstrap_servers,
        "MONGODB_URL": real_servers.mongodb_url,
        "LAIFAXIN_CREDENTIAL_KEYS": f"k1:{generate_key()}",
        "LAIFAXIN_CREDENTIAL_ACTIVE_KEY_ID": "k1",
        "NOTIFY_SECRETS_KEYS": f"n1:{generate_key()}",
        "NOTIFY_SECRETS_ACTIVE_KEY_ID": "n1",
        "NOTIFY_VAPID_PRIVATE_KEY": vapid_private_raw(_vapid()),
        "NOTIFY_MONGODB_DATABASE": f"notify_{uuid.uuid4().hex[:10]}",
        "NOTIFY_JWT_SECRET": weak,
        "NOTIFY_HTTP_PORT": "0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "laifaxin_notify",
        "serve",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGTERM)
        await proc.communicate()
        pytest.fail("notify started in production with a weak NOTIFY_JWT_SECRET")
    text = err.decode(errors="replace")
    assert proc.returncode != 0
    assert "NOTIFY_JWT_SECRET is too weak" in text and "secrets.token_urlsafe" in text
    assert weak not in text


async def test_replayed_and_stale_wechat_callbacks_are_refused(
    service: dict[str, Any], wechat: WeChatServer
) -> None:
    http, _ev, me = user(service)
    callback = service["base_url"] + "/wechat/callback"
    made = await http.post("/v1/bindings/wechat/qrcode", headers=me)
    scanned = await wechat.scan(callback, CALLBACK_TOKEN, "oOWNER", ticket=made.json()["ticket"])
    assert scanned.status == 200 and scanned.text == "success"
    assert [b["target_id"] for b in (await http.get("/v1/bindings/wechat", headers=me)).json()] == ["oOWNER"]

    # the owner unlinks; an attacker who captured the signed push sends it again, byte for byte
    assert (await http.delete("/v1/bindings/wechat/oOWNER", headers=me)).status_code == 204
    async with httpx.AsyncClient(timeout=10) as raw:
        replayed = await raw.post(callback, params=scanned.params, content=scanned.body)
    assert replayed.status_code == 403
    assert (await http.get("/v1/bindings/wechat", headers=me)).json() == []

    # a correctly signed push whose timestamp is far from now (captured long ago, or made up ahead)
    assert (await http.post("/v1/bindings/wechat/qrcode", headers=me)).status_code == 201
    scene_body = subscribe_xml("oLATE", wechat.qrcodes[-1].scene)
    for skew in (-600, 600):
        stale = await push_callback(
            callback, CALLBACK_TOKEN, scene_body, timestamp=str(int(time.time()) + skew)
        )
        assert stale.status == 403, skew
    assert (await http.get("/v1/bindings/wechat", headers=me)).json() == []
    fresh = await push_callback(callback, CALLBACK_TOKEN, scene_body)
    assert fresh.status == 200
    assert [b["target_id"] for b in (await http.get("/v1/bindings/wechat", headers=me)).json()] == ["oLATE"]


async def test_a_webhook_whose_name_moves_inward_after_the_check_is_refused_when_it_connects(
    store: Store, make_notifier: Any, internal: InternalService
) -> None:
    """An Apprise ``json://`` webhook passes the check before the send (here: the check's allowlist lets the
    internal address through, as a DNS answer that changes between check and connect would), but the plugin's
    own connection (requests/urllib3, in a worker thread) is checked again at connect time and refused: nothing
    reaches the internal service and the binding is disabled."""
    sender = AppriseSender(keyring=KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0"), host_allowlist="127.0.0.0/8")
    sender.egress = EgressGuard("")  # what the connection sees: the strict rule
    try:
        notifier, _queue = make_notifier({"apprise": sender})
        ev = classified()
        url = f"json://{internal.host}:{internal.port}/hook"
        target_id = new_target_id()
        credential = sender.seal(url, tenant_id=ev.tenant_id, user_id=ev.user_id, target_id=target_id)
        await store.put_binding(
            Binding(
                ev.tenant_id, ev.user_id, "apprise", target_id, {"credential": credential, "scheme": "json"}
            )
        )
        assert [r for _, r in await notifier.handle_classified(ev)] == ["failed"]
        assert internal.connections == 0
        [binding] = await store.list_bindings(ev.tenant_id, ev.user_id)
        assert binding.active is False
        [row] = await store.history(ev.tenant_id, ev.user_id)
        assert row["last_error"] == "apprise: host_not_allowed" and internal.host not in json.dumps(
            row, default=str
        )
    finally:
        await sender.aclose()
