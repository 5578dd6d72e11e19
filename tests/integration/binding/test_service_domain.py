"""The domain functions without HTTP or Kafka (events collected in a list), on the real FerretDB and mail
servers: the per-tenant verification rate limit, and create/delete publishing through the given callable."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from laifaxin_binding import errors
from laifaxin_binding.models import MailboxCreate, ServerIn
from laifaxin_binding.service import Limits, MailboxService, Principal
from laifaxin_binding.store import AttemptLog, MailboxStore
from laifaxin_binding.verify import Verifier
from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.events import Envelope, MailboxRemoved, MailboxVerified
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from tests.conftest import MailAccount

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(mongo_db: Any, verifier: Verifier) -> tuple[MailboxService, list[Envelope]]:
    published: list[Envelope] = []

    async def publish(event: Envelope) -> None:
        published.append(event)

    store = MailboxStore(mongo_db)
    await store.init()
    svc = MailboxService(
        store=store,
        attempts=AttemptLog(mongo_db, timedelta(minutes=15)),
        verifier=verifier,
        keyring=KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0"),
        publish=publish,
        limits=Limits(attempts_per_tenant=2, failures_per_address=5),
    )
    return svc, published


def create_body(
    account: MailAccount, email: str | None = None, imap_port: int | None = None
) -> MailboxCreate:
    return MailboxCreate(
        email=email or account.email,
        password=SecretStr(account.password),
        imap=ServerIn(host=account.host, port=imap_port or account.imaps_port, security="ssl"),
        smtp=ServerIn(host=account.host, port=account.smtps_port, security="ssl"),
    )


async def test_verifications_are_rate_limited_per_tenant(
    service: tuple[MailboxService, list[Envelope]], shared_account: MailAccount
) -> None:
    svc, published = service
    who = Principal("tenant-rl", "u_1")
    for i in range(2):  # two attempts on two addresses, refused fast on IMAP port 1
        with pytest.raises(errors.BindingError) as info:
            await svc.create(who, create_body(shared_account, f"x{i}@laifaxin.test", imap_port=1))
        assert info.value.code == "connection_refused"
    with pytest.raises(errors.BindingError) as info:
        await svc.create(who, create_body(shared_account))
    assert info.value.status == 429 and info.value.extra["scope"] == "tenant"
    assert published == []
    # Another tenant is not affected.
    created = await svc.create(Principal("tenant-other", "u_2"), create_body(shared_account))
    assert created.status == "normal"


async def test_create_and_delete_publish_through_the_callable(
    service: tuple[MailboxService, list[Envelope]], shared_account: MailAccount
) -> None:
    svc, published = service
    who = Principal("tenant-d", "u_1")
    created = await svc.create(who, create_body(shared_account))
    await svc.delete(who, created.id)
    assert [type(e) for e in published] == [MailboxVerified, MailboxRemoved]
    assert all(e.tenant_id == "tenant-d" for e in published)
    with pytest.raises(errors.BindingError) as info:
        await svc.delete(who, created.id)
    assert info.value.code == "not_found"


async def test_netease_enterprise_events_carry_the_backup_pair_sealed_for_it(
    service: tuple[MailboxService, list[Envelope]],
) -> None:
    """A NetEase Enterprise mailbox on the recommended hwhz pair: mailbox.verified carries the catalog's backup
    pair (imap/smtp.qiye.163.com) with the password sealed for it; it opens only for the backup servers."""
    from datetime import UTC, datetime

    from laifaxin_shared.crypto import CredentialContext, CredentialError

    svc, _ = service
    ring = svc.keyring
    doc: dict[str, Any] = {
        "_id": "mbx_qiye1",
        "tenant_id": "t1",
        "user_id": "u1",
        "email": "sales@example-corp.com",
        "nickname": "",
        "provider_id": "netease_qiye",
        "username": "sales@example-corp.com",
        "imap": {"host": "hwhzimap.qiye.163.com", "port": 993, "security": "ssl"},
        "smtp": {"host": "hwhzsmtp.qiye.163.com", "port": 465, "security": "ssl"},
        "imap_id_required": False,
        "sync": {"enabled": True, "interval_seconds": 300, "initial_window_days": 30},
        "created_at": datetime.now(UTC),
    }
    doc["credential"] = ring.seal_mailbox("Auth Code 2026", CredentialContext.of(doc)).model_dump()
    event = svc._verified_event(doc)
    assert event.backup is not None
    assert (event.backup.imap.host, event.backup.smtp.host) == ("imap.qiye.163.com", "smtp.qiye.163.com")
    backup_doc = {**doc, "imap": event.backup.imap.model_dump(), "smtp": event.backup.smtp.model_dump()}
    assert ring.open_mailbox(event.backup.credential, CredentialContext.of(backup_doc)) == "Auth Code 2026"
    with pytest.raises(CredentialError):  # not for the recommended pair
        ring.open_mailbox(event.backup.credential, CredentialContext.of(doc))
    # already on the backup pair, or another provider: no backup pair
    assert (
        svc._verified_event({**backup_doc, "credential": event.backup.credential.model_dump()}).backup is None
    )
    custom = {**doc, "provider_id": "custom"}
    assert svc._verified_event(custom).backup is None
