"""Rate limits under concurrency (security review: "rate limits bypassed by concurrency"), against the real
Dovecot, FerretDB and SMTP server.

Attempts used to be counted, then verified (seconds), then recorded: 100 simultaneous wrong-password binds of one
address, with limits of 5 failures per address and 60 attempts per tenant, sent 100 LOGINs to the server. Now
each attempt is reserved before the counts, so at most the limit reach the server; the same for one address
attacked from many tenants (the all-tenants limit), and for the tenant's mailbox limit. What reached Dovecot is
read from Dovecot's own log (``auth failed, N attempts ... user=<...>``).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from laifaxin_binding.app import create_app
from laifaxin_binding.auth import issue_token
from laifaxin_binding.settings import BindingSettings
from tests.conftest import MailAccount, add_account
from tests.integration.binding.conftest import Api, _wait_for_login
from tests.support.infra import Servers

pytestmark = pytest.mark.integration

FAILED = re.compile(r"auth failed, (\d+) attempts?.*?user=<([^>]*)>")
CONCURRENT = 100


def log_size(log: Path) -> int:
    return log.stat().st_size


def failed_logins(log: Path, account: MailAccount, offset: int) -> int:
    """LOGINs with a wrong password Dovecot logged for ``account`` (address or local part) after ``offset``."""
    local = account.email.partition("@")[0]
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    return sum(int(n) for n, user in FAILED.findall(text) if user in (account.email, local))


async def settled_failed_logins(log: Path, account: MailAccount, offset: int) -> int:
    """:func:`failed_logins` once it stopped changing for 3 s (Dovecot logs a session when it ends)."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < 3:
        now = failed_logins(log, account, offset)
        if now != last:
            last, since = now, time.monotonic()
        await asyncio.sleep(0.3)
    return last


@pytest.fixture
def new_mail_account(real_servers: Servers, infra_module: Any) -> Any:
    """Fresh accounts, waiting patiently for their first login (the shared Dovecot may be busy)."""

    def make() -> MailAccount:
        return add_account(real_servers, infra_module, wait=_wait_for_login)

    return make


@pytest.fixture
def dovecot_log(real_servers: Servers) -> Path:
    log = Path(real_servers.mail["state_dir"]) / "logs" / "dovecot.log"
    assert log.exists(), f"Dovecot's log is not at {log}"
    return log


@pytest.fixture
async def client(
    binding_settings: BindingSettings,
) -> AsyncIterator[tuple[httpx.AsyncClient, BindingSettings]]:
    settings = binding_settings.model_copy(
        update={
            "rate_max_failures_per_address": 5,
            "rate_max_failures_per_address_all_tenants": 10,
            "rate_max_attempts_per_tenant": 60,
            "max_connections_per_host": 100,
        }
    )
    app = create_app(settings, start_broker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://binding", timeout=120) as http:
            yield http, settings


def bind_body(account: MailAccount, password: str) -> dict[str, Any]:
    return {
        "email": account.email,
        "password": password,
        "imap": {"host": account.host, "port": account.imaps_port, "security": "ssl"},
        "smtp": {"host": account.host, "port": account.smtps_port, "security": "ssl"},
    }


async def logins_per_verification(
    http: httpx.AsyncClient, settings: BindingSettings, account: MailAccount, log: Path
) -> int:
    """How many wrong LOGINs one verification makes (username forms tried), measured on another address."""
    offset = log_size(log)
    token = issue_token(settings, f"calibrate-{uuid.uuid4().hex[:6]}", "u")
    answer = await http.post(
        "/v1/mailboxes", json=bind_body(account, "wrong"), headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 422 and answer.json()["code"] == "auth_failed", answer.text
    return await settled_failed_logins(log, account, offset)


async def test_100_simultaneous_guesses_reach_the_server_at_most_the_limit(
    client: tuple[httpx.AsyncClient, BindingSettings], new_mail_account: Any, dovecot_log: Path
) -> None:
    http, settings = client
    target: MailAccount = new_mail_account()
    per_verification = await logins_per_verification(http, settings, new_mail_account(), dovecot_log)
    assert per_verification >= 1
    offset = log_size(dovecot_log)
    headers = {"Authorization": f"Bearer {issue_token(settings, f'attacker-{uuid.uuid4().hex[:6]}', 'u')}"}
    answers = await asyncio.gather(
        *(
            http.post("/v1/mailboxes", json=bind_body(target, f"guess-{i}"), headers=headers)
            for i in range(CONCURRENT)
        )
    )
    codes = [a.json()["code"] for a in answers]
    verified = codes.count("auth_failed")
    assert verified + codes.count("verification_rate_limited") == CONCURRENT, codes
    assert 1 <= verified <= settings.rate_max_failures_per_address, codes
    reached = await settled_failed_logins(dovecot_log, target, offset)
    assert reached == verified * per_verification
    assert reached <= settings.rate_max_failures_per_address * per_verification
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1 and limited.json()["fix_zh"]


async def test_one_address_attacked_from_100_tenants_hits_the_all_tenants_limit(
    client: tuple[httpx.AsyncClient, BindingSettings], new_mail_account: Any, dovecot_log: Path
) -> None:
    http, settings = client
    target: MailAccount = new_mail_account()
    per_verification = await logins_per_verification(http, settings, new_mail_account(), dovecot_log)
    offset = log_size(dovecot_log)
    prefix = uuid.uuid4().hex[:6]

    async def guess(i: int) -> httpx.Response:
        token = issue_token(settings, f"t{prefix}-{i}", "u")
        return await http.post(
            "/v1/mailboxes",
            json=bind_body(target, f"guess-{i}"),
            headers={"Authorization": f"Bearer {token}"},
        )

    answers = await asyncio.gather(*(guess(i) for i in range(CONCURRENT)))
    codes = [a.json()["code"] for a in answers]
    verified = codes.count("auth_failed")
    assert 1 <= verified <= settings.rate_max_failures_per_address_all_tenants, codes
    reached = await settled_failed_logins(dovecot_log, target, offset)
    assert reached <= settings.rate_max_failures_per_address_all_tenants * per_verification


async def test_simultaneous_binds_cannot_pass_the_mailbox_limit(api: Api, new_mail_account: Any) -> None:
    """Six binds at once for a plan of two mailboxes (real Kafka: the app publishes mailbox.verified)."""
    limit = 2
    accounts: list[MailAccount] = [new_mail_account() for _ in range(6)]
    headers = api.auth(mailbox_limit=limit)
    answers = await asyncio.gather(
        *(api.client.post("/v1/mailboxes", json=bind_body(a, a.password), headers=headers) for a in accounts)
    )
    created = [a for a in answers if a.status_code == 201]
    assert 1 <= len(created) <= limit, [a.text for a in answers]
    assert all(a.json()["code"] == "mailbox_limit_reached" for a in answers if a.status_code != 201)
    listed = (await api.client.get("/v1/mailboxes", headers=headers)).json()["items"]
    assert sorted(m["id"] for m in listed) == sorted(a.json()["id"] for a in created)
