"""The second line of defence behind Kafka's ACLs: a forged ``mailbox.verified`` that points a real sealed password
at another IMAP server does not get the password there.

The envelope's v2 associated data binds it to the servers and logins binding verified; sync opens it with the
endpoint it is about to connect to, so the redirected event fails to decrypt, sync reports
``credential_mismatch`` on ``mailbox.sync_status`` and never connects to the other server.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from laifaxin_shared.events import MailboxVerified
from laifaxin_shared.events.base import ServerEndpoint, utc_now
from laifaxin_shared.wire import serialize
from tests.conftest import MailAccount
from tests.integration.sync.conftest import Env
from tests.support.imap_responder import ImapResponder

pytestmark = pytest.mark.integration


async def test_forged_verified_event_pointing_the_envelope_elsewhere_is_refused(
    sync_env: Env, mail_account: MailAccount
) -> None:
    tls = Path(sync_env.servers.ca_file).parent
    # The attacker's server: accepts any login and records every command (a LOGIN would carry the password).
    async with ImapResponder(str(tls / "server.pem"), str(tls / "server.key"), lambda _u, _p: None) as evil:
        await sync_env.start_worker()
        mailbox_id = await sync_env.register(mail_account)  # sealed like binding seals it (v2)
        await sync_env.wait_for(
            lambda: any(s.mailbox_id == mailbox_id and s.state == "ok" for s in sync_env.statuses),
            what="the genuine mailbox syncing",
        )
        # What an attacker with produce rights on mailbox.verified does: replay the genuine event (its real
        # envelope) with the IMAP server changed to theirs.
        genuine = await _stored_event(sync_env, mailbox_id)
        forged = genuine.model_copy(
            update={
                "event_id": uuid.uuid4(),
                "occurred_at": utc_now(),
                "imap": ServerEndpoint(host="127.0.0.1", port=evil.port, security="ssl"),
            }
        )
        assert forged.credential == genuine.credential and forged.credential.aad == "v2"
        await sync_env.send_raw("mailbox.verified", serialize(forged), mailbox_id.encode())

        await sync_env.wait_for(
            lambda: any(
                s.mailbox_id == mailbox_id and s.error_code == "credential_mismatch"
                for s in sync_env.statuses
            ),
            what="credential_mismatch status",
        )
        status = next(
            s
            for s in sync_env.statuses
            if s.mailbox_id == mailbox_id and s.error_code == "credential_mismatch"
        )
        assert status.state == "error"
        assert "could not be opened for this mailbox's current servers and login" in status.message
        assert "Verify the mailbox again" in status.fix and status.message_zh and status.fix_zh
        assert mail_account.password not in status.model_dump_json()

        # The genuine settings come back (binding re-emits them): sync recovers with the same envelope.
        restored = genuine.model_copy(update={"event_id": uuid.uuid4(), "occurred_at": utc_now()})
        mark = len(sync_env.statuses)
        await sync_env.send_raw("mailbox.verified", serialize(restored), mailbox_id.encode())
        await sync_env.wait_for(
            lambda: any(s.mailbox_id == mailbox_id and s.state == "ok" for s in sync_env.statuses[mark:]),
            what="recovery with the genuine settings",
        )
    assert "LOGIN" not in evil.commands and evil.usernames == []
    assert evil.commands == []  # not even a connection that got as far as a command


async def _stored_event(env: Env, mailbox_id: str) -> MailboxVerified:
    """The ``mailbox.verified`` sync stored for ``mailbox_id`` (its config document, as an event)."""
    from laifaxin_shared.mongo import make_mongo_client

    client = make_mongo_client(env.servers.mongodb_url)
    try:
        doc = await client[env.db_name]["mailboxes"].find_one({"_id": mailbox_id})
    finally:
        await client.close()
    assert doc is not None
    return MailboxVerified.model_validate({**doc, "mailbox_id": mailbox_id})
