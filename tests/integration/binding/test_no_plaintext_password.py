"""After binding, editing with a bad password, re-verifying and a failed create, the plaintext passwords (and
their base64 AUTH forms) appear nowhere: not in Kafka records, not in MongoDB documents, not in log lines
(captured at DEBUG, third-party loggers included), not in HTTP responses."""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import pytest
from bson import json_util

from tests.conftest import MailAccount
from tests.integration.binding.conftest import MAILBOX_TOPICS, Api
from tests.integration.binding.kafka_read import read_topic
from tests.integration.binding.test_api import body

pytestmark = pytest.mark.integration


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode(), base64.b64encode(b"\0" + raw).decode()[:-4]]


async def test_no_plaintext_password_in_kafka_mongo_logs_or_responses(
    api: Api, new_mail_account: Any
) -> None:
    account: MailAccount = new_mail_account()
    other: MailAccount = new_mail_account()
    wrong = "Wrong-Secret-" + account.password[-6:]
    root = logging.getLogger()
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(root.handlers[0].formatter)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    responses: list[str] = []
    try:
        # Dovecot delays every login from an IP+user after a failure, so the failures come last.

        created = await api.client.post("/v1/mailboxes", json=body(account), headers=api.auth())
        assert created.status_code == 201, created.text
        mailbox_id = created.json()["id"]
        reverified = await api.client.post(f"/v1/mailboxes/{mailbox_id}/verify", headers=api.auth())
        assert reverified.status_code == 200
        renamed = await api.client.patch(
            f"/v1/mailboxes/{mailbox_id}", json={"nickname": "n"}, headers=api.auth()
        )
        bad_edit = await api.client.patch(
            f"/v1/mailboxes/{mailbox_id}", json={"password": wrong}, headers=api.auth()
        )
        assert bad_edit.status_code == 422
        failed = await api.client.post("/v1/mailboxes", json=body(other, wrong), headers=api.auth())
        assert failed.status_code == 422
        listed = await api.client.get("/v1/mailboxes", headers=api.auth())
        responses = [r.text for r in (created, reverified, renamed, bad_edit, failed, listed)]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    records: list[bytes] = []
    for name in MAILBOX_TOPICS:
        for record in await read_topic(api.settings.kafka_bootstrap_servers, api.settings.topic(name)):
            records.append(record.value + b"|" + b"".join(v for _k, v in record.headers or ()))
    assert len(records) >= 3  # verified (create), verified (re-verify), updated

    documents: list[str] = []
    for collection in await api.db.list_collection_names():
        documents.extend([json_util.dumps(doc) async for doc in api.db[collection].find({})])
    assert any(account.email in d for d in documents)

    logs = captured.getvalue()
    assert "mailbox verification" in logs  # the capture saw the verifier's lines

    haystacks = {
        "kafka": b"\n".join(records).decode("utf-8", "replace"),
        "mongo": "\n".join(documents),
        "logs": logs,
        "responses": "\n".join(responses),
    }
    assert account.email in haystacks["kafka"] and account.email in haystacks["logs"] + haystacks["responses"]
    for where, text in haystacks.items():
        for secret in (account.password, other.password, wrong):
            for form in forms(secret):
                assert form not in text, f"a form of a password appears in {where}"
    assert json.loads(responses[0])["status"] == "normal"
