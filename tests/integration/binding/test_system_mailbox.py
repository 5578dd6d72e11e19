"""The system mailbox (mass-email replies) is bound at start from configuration and treated like any other."""

from __future__ import annotations

from typing import Any

import pytest

from laifaxin_binding.app import create_app
from laifaxin_binding.settings import BindingSettings
from laifaxin_shared.events import MailboxVerified
from laifaxin_shared.kafka import ensure_topics
from laifaxin_shared.topics import spec
from tests.conftest import MailAccount
from tests.support.infra import Servers

from .conftest import make_settings
from .kafka_read import read_topic

pytestmark = pytest.mark.integration


def system_settings(base: BindingSettings, account: MailAccount, password: str) -> BindingSettings:
    return base.model_copy(
        update={
            "system_mailbox_email": account.email,
            "system_mailbox_password": password,
            "system_mailbox_imap": f"{account.host}:{account.imaps_port}:ssl",
            "system_mailbox_smtp": f"{account.host}:{account.smtps_port}:ssl",
            "system_tenant_id": "laifaxin-system",
        }
    )


async def start_and_stop(settings: BindingSettings) -> list[dict[str, Any]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        docs = [d async for d in app.state.mongo[settings.mongodb_database].mailboxes.find({})]
    return docs


async def test_bound_at_start_once_and_rebound_when_the_password_changes(
    real_servers: Servers, topic_prefix: str, mongo_db: Any, mail_account: MailAccount, infra_module: Any
) -> None:
    from pathlib import Path

    from pydantic import SecretStr

    base = make_settings(real_servers, topic_prefix, mongo_db.name)
    await ensure_topics(
        base.kafka_bootstrap_servers,
        [spec("mailbox.verified"), spec("mailbox.sync_status")],
        prefix=topic_prefix,
        replication_factor=1,
    )
    settings = system_settings(base, mail_account, mail_account.password)
    settings = settings.model_copy(update={"system_mailbox_password": SecretStr(mail_account.password)})

    [doc] = await start_and_stop(settings)
    assert doc["is_system"] is True and doc["tenant_id"] == "laifaxin-system"
    [record] = await read_topic(base.kafka_bootstrap_servers, base.topic("mailbox.verified"), expect=1)
    event = MailboxVerified.model_validate_json(record.value)
    assert event.is_system and event.email == mail_account.email
    assert mail_account.password not in record.value.decode()

    # a restart with the same configuration binds nothing new and emits nothing
    assert [d["_id"] for d in await start_and_stop(settings)] == [doc["_id"]]
    assert (
        len(await read_topic(base.kafka_bootstrap_servers, base.topic("mailbox.verified"), expect=None)) == 1
    )

    # the operator rotates the app password: the next start re-verifies and emits mailbox.verified again
    new_password = mail_account.password + "-rotated"
    infra_module.add_user(mail_account.email, new_password, Path(real_servers.mail["passwd_file"]))
    import asyncio

    await asyncio.sleep(1.1)  # Dovecot re-reads its passwd-file at most once a second
    rotated = settings.model_copy(update={"system_mailbox_password": SecretStr(new_password)})
    [doc2] = await start_and_stop(rotated)
    assert doc2["_id"] == doc["_id"] and doc2["credential"] != doc["credential"]
    records = await read_topic(base.kafka_bootstrap_servers, base.topic("mailbox.verified"), expect=2)
    assert MailboxVerified.model_validate_json(records[-1].value).is_system
