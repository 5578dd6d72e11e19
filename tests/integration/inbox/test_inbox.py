"""The unified inbox end to end on the real servers: events on Kafka -> the inbox's read model on FerretDB ->
its HTTP API; message content read through sync's signed ``GET /v1/raw``."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx
import pytest

from laifaxin_shared.events.mail import ReplyMatch
from tests.integration.inbox.conftest import b64, eventually

pytestmark = pytest.mark.integration

PDF = os.urandom(150_000)  # an attachment bigger than one base64 decoding slice
HTML = (
    '<html><body><p onclick="steal()">Dear seller, please quote 500 pcs.</p>'
    "<script>alert('x')</script><img src=\"http://tracker.example/pixel.gif\">"
    '<img src="cid:logo@x"><a href="javascript:evil()">x</a><a href="https://ok.example/">ok</a>'
    "</body></html>"
)


def rich(message_id: str) -> bytes:
    return (
        f"From: Buyer <buyer@example.com>\r\nTo: sales@163.com\r\nSubject: Quote for LED panels\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Tue, 01 Dec 2026 08:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=OUT\r\n\r\n"
        "--OUT\r\nContent-Type: multipart/alternative; boundary=ALT\r\n\r\n"
        "--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear seller, please quote 500 pcs.\r\n"
        "--ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + HTML + "\r\n--ALT--\r\n"
        '--OUT\r\nContent-Type: application/pdf; name="spec sheet.pdf"\r\n'
        'Content-Disposition: attachment; filename="spec sheet.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64(PDF).replace("\n", "\r\n")
        + "--OUT--\r\n"
    ).encode()


def plain(message_id: str, subject: str, *, in_reply_to: str = "") -> bytes:
    irt = f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n" if in_reply_to else ""
    return (
        f"From: someone@example.com\r\nTo: sales@163.com\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
        f"{irt}Date: Tue, 01 Dec 2026 08:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Body of {subject}.\r\n"
    ).encode()


async def page(c: httpx.AsyncClient, base: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = await c.get(f"{base}/v1/inbox/messages", headers=headers, params=params)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_unified_inbox_end_to_end(inbox: dict[str, Any]) -> None:
    url, mail, token = inbox["url"], inbox["mail"], inbox["token"]
    a1, a2, b1 = token("tenant-a", "u1"), token("tenant-a", "u2"), token("tenant-b", "u1")

    # tenant-a/u1 owns mbx-a1 and mbx-a2; tenant-a/u2 owns mbx-a3; tenant-b/u1 (same user id) owns mbx-b1.
    m_rich = await mail.receive(
        rich("rich@buyer.example"), tenant="tenant-a", user="u1", mailbox="mbx-a1", minutes=1
    )
    m_reply = await mail.receive(
        plain("answer@buyer.example", "Re: LED", in_reply_to="camp-1@laifa.xin"),
        tenant="tenant-a",
        user="u1",
        mailbox="mbx-a1",
        minutes=2,
    )
    extra = [
        await mail.receive(
            plain(f"x{i}@buyer.example", f"note {i}"),
            tenant="tenant-a",
            user="u1",
            mailbox="mbx-a2",
            minutes=10 + i,
            folder="Junk" if i == 0 else "INBOX",
        )
        for i in range(5)
    ]
    other_user = await mail.receive(
        plain("u2@x.example", "for u2"), tenant="tenant-a", user="u2", mailbox="mbx-a3", minutes=3
    )
    other_tenant = await mail.receive(
        plain("b@x.example", "for b"), tenant="tenant-b", user="u1", mailbox="mbx-b1", minutes=4
    )
    # A reply in the system mailbox, matched to u1's campaign: it belongs to u1.
    sys_msg = await mail.receive(
        plain("sysreply@buyer.example", "Re: campaign", in_reply_to="camp-2@laifa.xin"),
        tenant="system",
        user="system",
        mailbox="mbx-system",
        minutes=5,
    )
    match = ReplyMatch(
        sent_message_id="camp-2@laifa.xin",
        sent_mailbox_id="mbx-system",
        owner_tenant_id="tenant-a",
        owner_user_id="u1",
        campaign_id="cmp-7",
        method="in_reply_to",
        confidence=1.0,
        system_mailbox=True,
    )
    await mail.classify(sys_msg, "inquiry", match=match, system=True)
    await mail.classify(m_rich, "inquiry")
    await mail.classify(
        m_reply,
        "to_reply",
        match=ReplyMatch(
            sent_message_id="camp-1@laifa.xin",
            sent_mailbox_id="mbx-a1",
            owner_tenant_id="tenant-a",
            owner_user_id="u1",
            campaign_id="cmp-1",
            method="in_reply_to",
            confidence=1.0,
        ),
    )
    await mail.classify(extra[1], "to_reply")
    await mail.classify(extra[2], "ooo")

    async with httpx.AsyncClient(timeout=30) as c:

        async def all_u1() -> Any:
            data = await page(c, url, a1, limit=100)
            ids = [m["id"] for m in data["items"]]
            cats = [m["category"] for m in data["items"] if m["category"]]
            return data if len(ids) == 8 and len(cats) == 5 else None

        data = await eventually(all_u1)
        subjects = [m["subject"] for m in data["items"]]
        assert subjects[0] == "note 4" and "Re: campaign" in subjects and "for u2" not in subjects
        times = [m["received_at"] for m in data["items"]]
        assert times == sorted(times, reverse=True)

        # pagination: pages of 3 cover the list once, in order
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            p = await page(c, url, a1, **params)
            seen += [m["id"] for m in p["items"]]
            cursor = p["next_cursor"]
            if not cursor:
                break
        assert seen == [m["id"] for m in data["items"]]

        # filters
        assert len((await page(c, url, a1, mailbox_id="mbx-a2"))["items"]) == 5
        assert [m["folder"] for m in (await page(c, url, a1, folder="Junk"))["items"]] == ["Junk"]
        assert {m["subject"] for m in (await page(c, url, a1, category="to_reply"))["items"]} == {
            "Re: LED",
            "note 1",
        }
        assert [m["subject"] for m in (await page(c, url, a1, campaign_id="cmp-7"))["items"]] == [
            "Re: campaign"
        ]
        by_sent = await page(c, url, a1, sent_message_id="camp-1@laifa.xin")
        assert [m["subject"] for m in by_sent["items"]] == ["Re: LED"]
        window = await page(c, url, a1, since="2026-12-01T08:01:30Z", until="2026-12-01T08:05:00Z")
        assert [m["subject"] for m in window["items"]] == ["Re: campaign", "Re: LED"]
        r = await c.get(f"{url}/v1/inbox/messages", headers=a1, params={"category": "nope"})
        assert r.status_code == 400

        # isolation: another user of the tenant, and the same user id in another tenant
        assert [m["subject"] for m in (await eventually(lambda: _items(c, url, a2)))] == ["for u2"]
        assert [m["subject"] for m in (await eventually(lambda: _items(c, url, b1)))] == ["for b"]
        rich_id = next(m["id"] for m in data["items"] if m["subject"] == "Quote for LED panels")
        for who in (a2, b1):
            assert (await c.get(f"{url}/v1/inbox/messages/{rich_id}", headers=who)).status_code == 404
            assert (
                await c.get(f"{url}/v1/inbox/messages/{rich_id}/attachments/0", headers=who)
            ).status_code == 404
        assert (await c.get(f"{url}/v1/inbox/messages")).status_code == 401
        del other_user, other_tenant

        # one message end to end: headers, text, sanitised HTML, the attachment byte-exact through sync
        r = await c.get(f"{url}/v1/inbox/messages/{rich_id}", headers=a1)
        assert r.status_code == 200, r.text
        msg = r.json()
        assert msg["content_error"] is None
        assert msg["from"]["email"] == "buyer@example.com" and msg["category"] == "inquiry"
        assert "please quote 500 pcs" in msg["text"]
        html = msg["html"]
        assert "please quote 500 pcs" in html
        for bad in ("<script", "alert(", "onclick", "tracker.example", "javascript:"):
            assert bad not in html, bad
        assert 'src="cid:logo@x"' in html and "https://ok.example/" in html
        assert msg["remote_images_blocked"] == 1
        assert [(a["filename"], a["content_type"]) for a in msg["attachments"]] == [
            ("spec sheet.pdf", "application/pdf")
        ]
        r = await c.get(f"{url}/v1/inbox/messages/{rich_id}/attachments/0", headers=a1)
        assert r.status_code == 200 and r.content == PDF
        assert "spec%20sheet.pdf" in r.headers["content-disposition"]
        assert (
            await c.get(f"{url}/v1/inbox/messages/{rich_id}/attachments/9", headers=a1)
        ).status_code == 404

        # To Reply empties itself: a reply (mail.sent naming it) moves the conversation out
        async def to_reply() -> list[str]:
            return [
                m["subject"] for m in (await page(c, url, a1, category="to_reply", handled="false"))["items"]
            ]

        assert sorted(await to_reply()) == ["Re: LED", "note 1"]
        counts = (await c.get(f"{url}/v1/inbox/counts", headers=a1)).json()
        assert counts["to_reply_open"] == 2 and counts["categories"]["to_reply"] == 2
        assert counts["categories"]["inquiry"] == 2
        await mail.sent(
            tenant="tenant-a",
            user="u1",
            mailbox="mbx-a1",
            in_reply_to="answer@buyer.example",
            references=["camp-1@laifa.xin", "answer@buyer.example"],
        )
        await eventually(lambda: _equals(to_reply(), ["note 1"]))
        assert (await c.get(f"{url}/v1/inbox/counts", headers=a1)).json()["to_reply_open"] == 1
        # the thread holds the received reply and the answer sent
        reply_id = next(m["id"] for m in data["items"] if m["subject"] == "Re: LED")
        thread = (await c.get(f"{url}/v1/inbox/messages/{reply_id}/thread", headers=a1)).json()
        assert thread["root"] == "camp-1@laifa.xin"
        assert [i["kind"] for i in thread["items"]] == ["received", "sent"]

        # handled by hand (PATCH), and back
        note1 = next(m["id"] for m in data["items"] if m["subject"] == "note 1")
        r = await c.patch(
            f"{url}/v1/inbox/messages/{note1}", headers=a1, json={"handled": True, "read": True}
        )
        assert r.status_code == 200 and r.json()["handled"] is True and r.json()["read"] is True
        assert await to_reply() == []
        assert [m["subject"] for m in (await page(c, url, a1, unread="false"))["items"]] == ["note 1"]
        await c.patch(f"{url}/v1/inbox/messages/{note1}", headers=a1, json={"handled": False})
        assert await to_reply() == ["note 1"]
        assert (
            await c.patch(f"{url}/v1/inbox/messages/{note1}", headers=a2, json={"handled": True})
        ).status_code == 404
        assert (await c.patch(f"{url}/v1/inbox/messages/{note1}", json={"handled": True})).status_code == 401


async def _items(c: httpx.AsyncClient, url: str, who: dict[str, str]) -> list[dict[str, Any]]:
    return list((await page(c, url, who))["items"])


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_live_updates_over_sse(inbox: dict[str, Any]) -> None:
    url, mail, token = inbox["url"], inbox["mail"], inbox["token"]
    a1 = token("tenant-a", "u1")
    # the consumers are assigned once a first message went through
    await mail.receive(
        plain("warm@x.example", "warm-up"), tenant="tenant-a", user="u1", mailbox="mbx-a1", minutes=0
    )
    async with httpx.AsyncClient(timeout=30) as c:
        await eventually(lambda: _items(c, url, a1))
        events: list[tuple[str, dict[str, Any]]] = []
        connected = asyncio.Event()

        async def listen() -> None:
            async with c.stream("GET", f"{url}/v1/inbox/events", headers=a1) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                name = ""
                async for line in resp.aiter_lines():
                    if line == ": connected":
                        connected.set()
                    elif line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        events.append((name, json.loads(line[6:])))
                        if len(events) == 2:
                            return

        task = asyncio.create_task(listen())
        async with asyncio.timeout(30):
            await connected.wait()
        ev = await mail.receive(
            plain("live@x.example", "live one"), tenant="tenant-a", user="u1", mailbox="mbx-a1", minutes=30
        )
        await mail.receive(
            plain("other@x.example", "not mine"), tenant="tenant-b", user="u1", mailbox="mbx-b1", minutes=31
        )
        await mail.classify(ev, "inquiry")
        async with asyncio.timeout(60):
            await task
        got = dict(events)  # two topics, consumed independently: either may come first
        assert set(got) == {"message", "classified"}
        assert got["message"]["subject"] == "live one" and got["classified"]["category"] == "inquiry"
        assert got["message"]["id"] == got["classified"]["id"]
        assert (await c.get(f"{url}/v1/inbox/events")).status_code == 401


async def test_sync_raw_route_needs_a_valid_grant(inbox: dict[str, Any]) -> None:
    from laifaxin_shared import content_token
    from tests.integration.inbox.conftest import CONTENT_SECRET

    ev = await inbox["mail"].receive(
        plain("g@x.example", "grant"), tenant="t", user="u", mailbox="mbx-g", minutes=1, publish=False
    )
    raw = f"{inbox['sync_url']}/v1/raw"
    async with httpx.AsyncClient(timeout=30) as c:
        good = content_token.sign(CONTENT_SECRET, ev.raw_ref)
        r = await c.get(raw, headers=good)
        assert r.status_code == 200 and b"Subject: grant" in r.content
        assert r.headers["content-type"] == "message/rfc822"
        forged = {**good, content_token.HEADER_REF: "sync:raw_messages/mbx-other:INBOX:1:1"}
        assert (await c.get(raw, headers=forged)).status_code == 401
        wrong_key = content_token.sign("another-secret-0123456789abcdef0123", ev.raw_ref)
        assert (await c.get(raw, headers=wrong_key)).status_code == 401
        assert (await c.get(raw)).status_code == 401
        missing = content_token.sign(CONTENT_SECRET, "sync:raw_messages/none:INBOX:1:1")
        assert (await c.get(raw, headers=missing)).status_code == 404
