"""Reply matching through :class:`ReplyMatching`, the same cases against the in-memory registry and the one in
the real FerretDB (the contract both implement), plus what only the stored one does (reload, other replicas).

The real-mail DSN is read in place from ../shared/data/real-mail beside the repository, or from
``LAIFAXIN_REAL_MAIL`` (a git worktree has no such neighbour)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from laifaxin_classifier.classify import Classifier, to_mail_classified
from laifaxin_classifier.matching import matcher as matcher_module
from laifaxin_classifier.matching.cli import DEV_REPLY_TOKEN_KEYS, received_event
from laifaxin_classifier.matching.corpus import (
    SYSTEM_ADDRESS,
    SYSTEM_MAILBOX,
    SYSTEM_TENANT,
    Mailbox,
    bounce_rfc3464,
    reply_gmail,
    reply_outlook,
    reply_qq,
    sent_event,
)
from laifaxin_classifier.matching.matcher import Matcher
from laifaxin_classifier.matching.pipeline import Published, ReplyMatching, late_event_id
from laifaxin_classifier.matching.registry import MemoryRegistry, MongoRegistry, SentRegistry
from laifaxin_classifier.message import ClassifierInput
from laifaxin_shared.events import MailSent
from laifaxin_shared.replytoken import ReplyTokens
from tests.conftest import REAL_MAIL, require_corpus

pytestmark = pytest.mark.integration

TOKENS = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev")
ACME = Mailbox("tenant-acme", "u_acme", "mbx_acme", "sales@acme.example")
BETA = Mailbox("tenant-beta", "u_beta", "mbx_beta", "export@beta.example")
SYSTEM = Mailbox(SYSTEM_TENANT, "system", SYSTEM_MAILBOX, SYSTEM_ADDRESS, system=True)
NOW = datetime.now(UTC).replace(microsecond=0)
_CLASSIFIER = Classifier()


@pytest.fixture(params=["memory", "ferretdb"])
async def registry(request: pytest.FixtureRequest, mongo_db: Any) -> AsyncIterator[SentRegistry]:
    if request.param == "memory":
        yield MemoryRegistry()
    else:
        store = MongoRegistry(mongo_db)
        await store.load()
        yield store


def matching_for(registry: SentRegistry) -> ReplyMatching:
    return ReplyMatching(registry, Matcher(registry, TOKENS, system_tenant_id=SYSTEM_TENANT))


def sent(
    box: Mailbox, n: int, rcpt: str, subject: str = "Quotation for LED panels", **update: Any
) -> MailSent:
    owner = (ACME.tenant_id, ACME.user_id) if box.system else (box.tenant_id, box.user_id)
    mid = f"lfx.{uuid.UUID(int=n).hex[-12:]}.cmd-{n:05d}@mail.laifaxin.test"
    token = TOKENS.sign(mid) if box.system else None
    ev = sent_event(
        mailbox=box, owner=owner, rcpt=rcpt, subject=subject, when=NOW - timedelta(days=1), n=n, token=token
    )
    return ev.model_copy(update=update) if update else ev


_uid = iter(range(1, 1_000_000))


async def receive(matching: ReplyMatching, raw: bytes, box: Mailbox) -> Published:
    ev = received_event(raw, tenant_id=box.tenant_id, mailbox_id=box.mailbox_id, uid=next(_uid))
    assert ev is not None
    classified = to_mail_classified(ev, _CLASSIFIER.classify(ClassifierInput.from_event(ev)))
    return await matching.on_classified([(ev, classified)])


def token_address(ev: MailSent) -> str:
    local, _, domain = SYSTEM_ADDRESS.partition("@")
    return f"{local}+{ev.reply_token}@{domain}"


async def test_threading_headers_match_in_reply_to_then_references(registry: SentRegistry) -> None:
    m = matching_for(registry)
    a, b = sent(ACME, 1, "maria@buyer.example"), sent(ACME, 2, "maria@buyer.example", subject="Other")
    await m.on_sent([a, b])
    out = await receive(m, bytes(reply_gmail(a, "maria@buyer.example", ACME.address, NOW, "r1", True)), ACME)
    match = out.classified[0].match
    assert match is not None and match.method == "in_reply_to" and match.sent_message_id == a.message_id
    assert match.recipient == "maria@buyer.example" and match.campaign_id == a.campaign_id
    assert out.statuses[0].status == "replied" and out.statuses[0].tenant_id == ACME.tenant_id
    # References only (newest first): a reply further down the thread
    msg = reply_outlook(b, "maria@buyer.example", ACME.address, NOW, "r2", False)
    msg["References"] = f"<{a.message_id}> <{b.message_id}>"
    match = (await receive(m, bytes(msg), ACME)).classified[0].match
    assert match is not None and match.method == "references" and match.sent_message_id == b.message_id


async def test_the_providers_rewritten_message_id_matches(registry: SentRegistry) -> None:
    m = matching_for(registry)
    a = sent(ACME, 3, "jonas@firma.example", provider_message_id="SG2PR01MB1234.apcprd01.prod.outlook.com")
    await m.on_sent([a])
    msg = reply_gmail(a, "jonas@firma.example", ACME.address, NOW, "r3", False)
    msg["In-Reply-To"] = "<SG2PR01MB1234.apcprd01.prod.outlook.com>"
    match = (await receive(m, bytes(msg), ACME)).classified[0].match
    assert match is not None and match.sent_message_id == a.message_id and match.method == "in_reply_to"


async def test_a_reply_token_routes_a_system_mailbox_reply_to_the_campaign_owner(
    registry: SentRegistry,
) -> None:
    m = matching_for(registry)
    a = sent(SYSTEM, 4, "zhangwei@buyer.example.cn")
    await m.on_sent([a])
    out = await receive(
        m, bytes(reply_qq(a, "zhangwei@buyer.example.cn", token_address(a), NOW, "r4", False)), SYSTEM
    )
    c = out.classified[0]
    assert c.match is not None and c.match.method == "reply_token" and c.match.system_mailbox
    assert (c.tenant_id, c.user_id) == (ACME.tenant_id, ACME.user_id)  # the owner, not the system tenant
    assert c.system_mailbox
    assert out.statuses and out.statuses[0].tenant_id == ACME.tenant_id


async def test_forged_and_expired_tokens_are_ignored_and_counted(registry: SentRegistry) -> None:
    m = matching_for(registry)
    a = sent(SYSTEM, 5, "li.na@trade.example.cn", subject="Unique subject five")
    await m.on_sent([a])
    counter = matcher_module.TOKENS_REJECTED
    before = {r: counter.labels(r)._value.get() for r in ("bad_signature", "expired")}
    forged = reply_qq(
        a, "someone@spam.example", f"campaigns+dev.{'a' * 36}@mail.laifaxin.test", NOW, "r5", False
    )
    old_token = TOKENS.sign(a.message_id, today=date.today() - timedelta(days=365))
    expired = reply_qq(a, "other@spam.example", f"campaigns+{old_token}@mail.laifaxin.test", NOW, "r6", False)
    for msg in (forged, expired):
        out = await receive(m, bytes(msg), SYSTEM)
        c = out.classified[0]
        assert c.match is None and c.system_mailbox and c.tenant_id == SYSTEM_TENANT  # notify skips it
        assert not out.statuses
    assert counter.labels("bad_signature")._value.get() == before["bad_signature"] + 1
    assert counter.labels("expired")._value.get() == before["expired"] + 1


async def test_a_bounce_matches_by_its_embedded_message_id_and_sets_bounced_hard(
    registry: SentRegistry,
) -> None:
    m = matching_for(registry)
    a = sent(ACME, 6, "nobody@buyer.example")
    await m.on_sent([a])
    out = await receive(
        m, bytes(bounce_rfc3464(a, "nobody@buyer.example", ACME.address, NOW, "r7", False)), ACME
    )
    c = out.classified[0]
    assert c.category == "bounce" and c.match is not None and c.match.method == "dsn"
    assert c.match.sent_message_id == a.message_id and c.match.recipient == "nobody@buyer.example"
    assert out.statuses[0].status == "bounced_hard" and out.statuses[0].bounce is not None


async def test_a_real_dsn_matches_the_sent_message_whose_message_id_it_embeds(registry: SentRegistry) -> None:
    path = (
        require_corpus(Path(os.environ.get("LAIFAXIN_REAL_MAIL", REAL_MAIL)))
        / "sisimai"
        / "maildir"
        / "bsd"
        / "rfc3464-01.eml"
    )
    raw = path.read_bytes()
    m = matching_for(registry)
    a = sent(
        ACME, 7, "userunknown@bouncehammer.jp", message_id="E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org"
    )
    decoy = sent(ACME, 8, "userunknown@bouncehammer.jp", subject="Decoy")
    await m.on_sent([decoy, a])
    out = await receive(m, raw, ACME)
    c = out.classified[0]
    assert c.category == "bounce"
    assert c.match is not None and c.match.method == "dsn" and c.match.sent_message_id == a.message_id


async def test_the_heuristic_matches_a_recent_recipient_under_the_sent_subject_only(
    registry: SentRegistry,
) -> None:
    m = matching_for(registry)
    a = sent(BETA, 9, "anna@import.example.de", subject="Price list for stainless steel fasteners")
    await m.on_sent([a])
    match = (
        (await receive(m, bytes(reply_qq(a, "anna@import.example.de", BETA.address, NOW, "r8", False)), BETA))
        .classified[0]
        .match
    )
    assert match is not None and match.method == "heuristic" and match.confidence < 0.9
    # a colleague under the same subject, and a forward by the recipient: no match
    colleague = reply_qq(a, "boss@import.example.de", BETA.address, NOW, "r9", False)
    assert (await receive(m, bytes(colleague), BETA)).classified[0].match is None
    forward = reply_qq(a, "anna@import.example.de", BETA.address, NOW, "r10", False)
    forward.replace_header("Subject", f"Fwd: {a.subject}")
    assert (await receive(m, bytes(forward), BETA)).classified[0].match is None


async def test_a_tenants_sent_mail_never_matches_another_tenants_replies(registry: SentRegistry) -> None:
    m = matching_for(registry)
    a = sent(ACME, 10, "tom@gmail.com", subject="Invitation: Canton Fair booth 12.1 C23")
    await m.on_sent([a])
    # tom answers acme's mail, threaded and under its subject, but into beta's mailbox
    for threaded in (True, False):
        msg = reply_gmail(a, "tom@gmail.com", BETA.address, NOW, f"r11{threaded}", threaded)
        assert (await receive(m, bytes(msg), BETA)).classified[0].match is None
    # and the system mailbox does not see tenant mail either
    msg = reply_gmail(a, "tom@gmail.com", SYSTEM.address, NOW, "r12", True)
    assert (await receive(m, bytes(msg), SYSTEM)).classified[0].match is None


async def test_a_late_mail_sent_matches_once(registry: SentRegistry) -> None:
    m = matching_for(registry)
    a = sent(SYSTEM, 11, "yuki@outlook.com", subject="Late subject")
    reply = bytes(reply_gmail(a, "yuki@outlook.com", token_address(a), NOW, "r13", True))
    first = await receive(m, reply, SYSTEM)
    assert first.classified[0].match is None and not first.statuses
    late = await m.on_sent([a])
    assert len(late.classified) == 1 and len(late.statuses) == 1
    c = late.classified[0]
    assert c.match is not None and c.match.sent_message_id == a.message_id
    assert c.tenant_id == ACME.tenant_id and c.event_id == late_event_id(c.ref.natural_key())
    assert c.event_id != first.classified[0].event_id
    again = await m.on_sent([a])  # redelivered mail.sent: nothing new
    assert again.classified == [] and again.statuses == []


async def test_the_stored_registry_survives_a_restart_and_sees_another_replicas_sends(mongo_db: Any) -> None:
    one = MongoRegistry(mongo_db)
    a = sent(ACME, 12, "carlos@buyer.example")
    assert [r.message_id for r in await one.add([MatchingRecord(a)])] == [a.message_id]
    assert await one.add([MatchingRecord(a)]) == []  # a redelivery is no error and nothing new
    two = MongoRegistry(mongo_db)  # another replica, index empty: finds it by _id in FerretDB
    m = matching_for(two)
    match = (
        (
            await receive(
                m, bytes(reply_gmail(a, "carlos@buyer.example", ACME.address, NOW, "r14", True)), ACME
            )
        )
        .classified[0]
        .match
    )
    assert match is not None and match.sent_message_id == a.message_id
    three = MongoRegistry(mongo_db)
    assert await three.load() == 1  # a restart loads the index (heuristic lookups need it)
    got = await three.sent_to(
        "t:tenant-acme", ACME.mailbox_id, "carlos@buyer.example", since=NOW - timedelta(days=30), until=NOW
    )
    assert [r.message_id for r in got] == [a.message_id]


def MatchingRecord(ev: MailSent) -> Any:  # reads like the record type it builds
    from laifaxin_classifier.matching.records import SentRecord

    return SentRecord.from_event(ev)


async def test_a_late_mail_sent_matches_a_reply_another_replica_kept_waiting(mongo_db: Any) -> None:
    a = sent(SYSTEM, 13, "wang.fang@126.com", subject="Cross replica")
    reply = bytes(reply_qq(a, "wang.fang@126.com", token_address(a), NOW, "r15", False))
    one = matching_for(MongoRegistry(mongo_db))
    assert (await receive(one, reply, SYSTEM)).classified[0].match is None
    two = matching_for(MongoRegistry(mongo_db))  # index empty: the waiting message is found by _id
    late = await two.on_sent([a])
    assert [c.match.sent_message_id for c in late.classified if c.match] == [a.message_id]
    three = MongoRegistry(mongo_db)
    await three.load()
    assert await matching_for(three).on_sent([a]) == Published()  # claimed once, also after a restart
