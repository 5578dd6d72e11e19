"""The Apprise channel through the real pipeline (real MongoDB-wire server) against loopback targets that follow
the documented contracts: WeCom, DingTalk and Feishu/Lark robots (codes in HTTP 200 bodies, signatures checked
when the robot has a secret) and a generic webhook that Apprise's own ``json://`` and ``form://`` plugins post to.

How the targets are reached: the chat robots are sent by our own sender, whose API bases are settings
(``NOTIFY_WECOM_BOT_API_BASE``, ``NOTIFY_DINGTALK_API_BASE``, ``NOTIFY_FEISHU_API_BASE``,
``NOTIFY_LARK_API_BASE``, like ``NOTIFY_WECHAT_API_BASE``); ``json://`` / ``form://`` URLs name their host, so
Apprise posts to the loopback server with no patching. Apprise's provider plugins with hard-coded hosts
(Telegram, Slack) are exercised here only as far as parsing (tests/unit/notify).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from laifaxin_notify.channels.apprise import AppriseSender, new_target_id
from laifaxin_notify.pipeline import DLQ_TOPIC, RETRY_TOPIC
from laifaxin_notify.store import Binding, Store
from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.events import MailClassified
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from tests.integration.notify.conftest import classified
from tests.support.webhook_server import WebhookServer

pytestmark = pytest.mark.integration

KEY = "693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"
HOOK_SECRET = "hook-s3cr3t-path-token"
DING_TOKEN = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5"
DING_SECRET = "SEC7a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
DING_OPEN = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # a robot without signing (keyword or IP security)
FEISHU_TOKEN = "b8f2a3c4-5d6e-4f70-8a9b-0c1d2e3f4a5b"
FEISHU_SECRET = "Fs3cr3tSignKeyQ1w2e3r4t5"
LARK_TOKEN = "c9e1d2f3-4a5b-4c6d-8e7f-9a0b1c2d3e4f"


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookServer]:
    async with WebhookServer(
        robot_keys={KEY},
        dingtalk_robots={DING_TOKEN: DING_SECRET, DING_OPEN: None},
        feishu_bots={FEISHU_TOKEN: FEISHU_SECRET, LARK_TOKEN: None},
    ) as server:
        yield server


def make_sender(hooks: WebhookServer, **kw: Any) -> AppriseSender:
    kw.setdefault("host_allowlist", "127.0.0.0/8")
    for name in ("wecom_base_url", "dingtalk_base_url", "feishu_base_url", "lark_base_url"):
        kw.setdefault(name, hooks.base_url)
    return AppriseSender(keyring=KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0"), timeout_s=5, **kw)


@pytest.fixture
async def sender(hooks: WebhookServer) -> AsyncIterator[AppriseSender]:
    s = make_sender(hooks)
    yield s
    await s.aclose()


async def bind_apprise(store: Store, sender: AppriseSender, ev: MailClassified, url: str) -> Binding:
    """What the API stores: the URL sealed for this binding, with its redacted form."""
    target_id = new_target_id()
    credential = sender.seal(url, tenant_id=ev.tenant_id, user_id=ev.user_id, target_id=target_id)
    scheme = url.partition("://")[0]
    data = {"credential": credential, "scheme": scheme, "display": f"{scheme}://****", "label": ""}
    b = Binding(ev.tenant_id, ev.user_id, "apprise", target_id, data)
    await store.put_binding(b)
    return b


async def everything_observable(
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    mongo_db: Any,
    queued: list[tuple[str, Any]],
) -> str:
    """All a secret could leak into: log records, the process's stdout/stderr, the stored delivery records and
    bindings, and the tasks queued to retry/DLQ topics, as one text."""
    out, err = capfd.readouterr()
    records = [d async for d in mongo_db["deliveries"].find({})]
    bindings = [d async for d in mongo_db["bindings"].find({})]
    return "\n".join(
        [caplog.text, out, err, json.dumps(records, default=str), json.dumps(bindings, default=str)]
        + [task.model_dump_json() for _, task in queued]
    )


def hook_url(hooks: WebhookServer, scheme: str = "json", name: str = "team") -> str:
    return f"{scheme}://{hooks.base_url.removeprefix('http://')}/hooks/{name}?-token={HOOK_SECRET}"


async def test_wecom_robot_alert_once_and_redelivery_sends_nothing(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, f"wecombot://{KEY}")

    [(task, result)] = await notifier.handle_classified(ev)
    assert result == "sent" and task.channel == "apprise"
    [msg] = hooks.robot_messages
    assert msg.key == KEY and msg.msgtype == "text"
    assert ev.subject in msg.content and task.content.url in msg.content
    assert [r for _, r in await notifier.handle_classified(ev)] == ["duplicate"]  # redelivered event
    assert [r for _, r in await notifier.handle_batch([ev])] == ["duplicate"]  # ... through the batch path
    assert hooks.robot_requests == 1 and queue.items == []

    batch_ev = classified(1, user_id="user-batch")
    await bind_apprise(store, sender, batch_ev, f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}")
    assert [r for _, r in await notifier.handle_batch([batch_ev, batch_ev])] == ["sent"]
    assert [r for _, r in await notifier.handle_batch([batch_ev])] == ["duplicate"]
    assert hooks.robot_requests == 2
    history = await store.history(ev.tenant_id, ev.user_id, event_id=str(ev.event_id))
    assert [(h["channel"], h["status"], h["attempts"]) for h in history] == [("apprise", "sent", 1)]


async def test_wecom_errcode_in_http_200_goes_to_the_retry_topic_then_succeeds(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, f"wecombot://{KEY}")
    hooks.script_errcodes(-1)  # system busy, answered as HTTP 200 {"errcode": -1}

    [(_, result)] = await notifier.handle_classified(ev)
    assert result == "retry" and hooks.robot_messages == []
    [(topic, queued)] = queue.items
    assert topic == RETRY_TOPIC.format(level=0) and queued.attempt == 1
    assert "errcode -1" in queued.last_error
    [row] = await store.history(ev.tenant_id, ev.user_id)
    assert row["status"] == "retrying"

    assert await notifier.deliver(queued) == "sent"
    assert await notifier.deliver(queued) == "duplicate"  # the retry record redelivered
    assert len(hooks.robot_messages) == 1 and hooks.robot_requests == 2
    [row] = await store.history(ev.tenant_id, ev.user_id)
    assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_wecom_rate_limit_waits_for_the_robot_window(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})  # ladder 0.05 s, 0.1 s, 0.2 s
    ev = classified()
    await bind_apprise(store, sender, ev, f"wecombot://{KEY}")
    hooks.script_errcodes(45009)
    before = datetime.now(UTC)
    assert [r for _, r in await notifier.handle_classified(ev)] == ["retry"]
    [(topic, queued)] = queue.items
    assert topic == RETRY_TOPIC.format(level=2)  # the level that can hold a one-minute wait
    assert queued.due_at is not None and (queued.due_at - before).total_seconds() >= 59


async def test_invalid_webhook_is_permanent_dead_letter_and_disables_the_binding(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    gone = "0000aaaa-dead-beef-0000-removedrobot"  # a robot removed from its group: 93000
    b = await bind_apprise(store, sender, ev, f"wecombot://{gone}")

    assert [r for _, r in await notifier.handle_classified(ev)] == ["failed"]
    [(topic, dead)] = queue.items
    assert topic == DLQ_TOPIC and "93000" in dead.last_error
    assert gone not in dead.model_dump_json()
    binding = await store.get_binding(ev.tenant_id, ev.user_id, "apprise", b.target_id)
    assert binding is not None and binding.active is False
    assert await notifier.handle_classified(classified(1)) == []  # disabled: nothing more is sent
    assert hooks.robot_requests == 1


async def test_retries_exhausted_go_to_the_dead_letter_topic(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, f"wecombot://{KEY}")
    hooks.script_errcodes(-1, -1, -1, -1)
    assert [r for _, r in await notifier.handle_classified(ev)] == ["retry"]
    results = []
    for _ in range(3):
        _, task = queue.items[-1]
        results.append(await notifier.deliver(task))
    assert results == ["retry", "retry", "failed"]
    assert [t for t, _ in queue.items] == [RETRY_TOPIC.format(level=n) for n in range(3)] + [DLQ_TOPIC]
    assert queue.items[-1][1].attempt == 4 and hooks.robot_messages == []


async def test_json_and_form_webhooks_through_apprise(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, _ = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, hook_url(hooks, "json", "team"))
    await bind_apprise(store, sender, ev, hook_url(hooks, "form", "ops"))

    assert sorted(r for _, r in await notifier.handle_classified(ev)) == ["sent", "sent"]
    assert [r for _, r in await notifier.handle_classified(ev)] == ["duplicate", "duplicate"]
    [team] = hooks.accepted_hooks("team")
    assert team.content_type == "application/json" and team.query == {"token": HOOK_SECRET}
    assert team.json["title"] == "新询盘 New inquiry" and ev.subject in team.json["message"]
    [ops] = hooks.accepted_hooks("ops")
    assert ops.form["title"] == "新询盘 New inquiry" and ev.subject in ops.form["message"]
    assert len(hooks.hook_requests) == 2


async def test_webhook_status_decides_retry_or_dead_letter(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, hook_url(hooks))
    hooks.script_statuses(503, 404)
    assert [r for _, r in await notifier.handle_classified(ev)] == ["retry"]
    [(topic, queued)] = queue.items
    assert topic == RETRY_TOPIC.format(level=0) and queued.last_error == "apprise json: http 503"
    assert await notifier.deliver(queued) == "failed"  # 404: the user's URL is wrong
    assert queue.items[-1][0] == DLQ_TOPIC and queue.items[-1][1].last_error == "apprise json: http 404"
    assert hooks.accepted_hooks() == []


async def test_private_webhook_host_is_refused_at_send_time(
    store: Store, hooks: WebhookServer, make_notifier: Any
) -> None:
    strict = make_sender(hooks, host_allowlist="")  # the operator allowlisted nothing
    try:
        notifier, queue = make_notifier({"apprise": strict})
        ev = classified()
        b = await bind_apprise(store, strict, ev, hook_url(hooks))
        assert [r for _, r in await notifier.handle_classified(ev)] == ["failed"]
        assert hooks.hook_requests == [] and queue.items == []
        binding = await store.get_binding(ev.tenant_id, ev.user_id, "apprise", b.target_id)
        assert binding is not None and binding.active is False
    finally:
        await strict.aclose()


async def test_blocking_sends_run_in_bounded_threads_off_the_event_loop(
    store: Store, hooks: WebhookServer, make_notifier: Any
) -> None:
    bounded = make_sender(hooks, concurrency=2)
    hooks.latency_s = 0.3
    try:
        notifier, _ = make_notifier({"apprise": bounded})
        ev = classified()
        for i in range(6):  # six webhooks of one user: one event, six sends at once
            await bind_apprise(store, bounded, ev, hook_url(hooks, name=f"h{i}"))
        await bounded.inspect(hook_url(hooks))  # Apprise loads its plugins once, in a thread
        gaps: list[float] = []
        done = asyncio.Event()

        async def heartbeat() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        beat = asyncio.create_task(heartbeat())
        results = await notifier.handle_classified(ev)
        done.set()
        await beat
    finally:
        await bounded.aclose()
    assert [r for _, r in results] == ["sent"] * 6
    assert len({r.path for r in hooks.accepted_hooks()}) == 6
    assert hooks.max_in_flight == 2  # NOTIFY_APPRISE_CONCURRENCY threads, no more
    # A send run on the event loop would stall it 0.3 s each (1.8 s in all); a loaded machine adds short
    # pauses of its own, so the loop's total stalled time is what is bounded, not its longest pause.
    stalled = sum(g for g in gaps if g > 0.05)
    assert stalled < 0.6, f"the event loop stalled for {stalled:.3f}s in all (longest {max(gaps):.3f}s)"


async def test_secret_never_in_logs_records_or_queued_tasks(
    store: Store,
    hooks: WebhookServer,
    sender: AppriseSender,
    make_notifier: Any,
    mongo_db: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    unreachable = make_sender(hooks, wecom_base_url="http://127.0.0.1:9")  # nothing listens: retried
    gone = "0000aaaa-dead-beef-0000-removedrobot"
    try:
        notifier, queue = make_notifier({"apprise": sender})
        ev = classified()
        await bind_apprise(store, sender, ev, f"wecombot://{KEY}")
        await bind_apprise(store, sender, ev, f"wecombot://{gone}")
        await bind_apprise(store, sender, ev, hook_url(hooks))
        hooks.script_statuses(404)
        await notifier.handle_classified(ev)
        broken, q2 = make_notifier({"apprise": unreachable})
        await broken.handle_classified(classified(1))
        assert any("transport: ClientConnectorError" in t.last_error for _, t in q2.items)
    finally:
        await unreachable.aclose()
    seen = await everything_observable(caplog, capfd, mongo_db, queue.items + q2.items)
    bindings = [d async for d in mongo_db["bindings"].find({})]
    for secret in (KEY, gone, HOOK_SECRET):
        assert secret not in seen
    assert "/cgi-bin/webhook/send" not in caplog.text  # the robots' aiohttp calls log no request lines
    # urllib3's DEBUG request lines (Apprise's requests) are masked when it logs them; after schemathesis ran in
    # the same session it logs none, and the secret checks above hold either way.
    request_lines = '"POST /' in caplog.text or '"GET /' in caplog.text
    assert not request_lines or "?token=**** HTTP/1.1" in caplog.text
    assert len(hooks.robot_messages) == 1 and len(bindings) == 3


# DingTalk and Feishu/Lark robots: our own sender, the code in the answer body decides ------------------------
async def test_dingtalk_signed_robot_alert_once(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, f"dingtalk://{DING_SECRET}@{DING_TOKEN}/13800138000")

    [(task, result)] = await notifier.handle_classified(ev)
    assert result == "sent"
    [msg] = hooks.messages("dingtalk")
    assert (msg.key, msg.msgtype, msg.signed, msg.at_mobiles) == (DING_TOKEN, "text", True, ["13800138000"])
    assert ev.subject in msg.content and task.content.url in msg.content
    [query] = hooks.robot_queries  # the signature the loopback robot checked: ms timestamp, HMAC-SHA256
    assert abs(int(query["timestamp"]) / 1000 - time.time()) < 60 and query["sign"]
    assert [r for _, r in await notifier.handle_classified(ev)] == ["duplicate"]
    assert hooks.robot_calls == {"dingtalk": 1} and queue.items == []


@pytest.mark.parametrize(
    "url",
    [f"dingtalk://SECwrong0123456789abcdef@{DING_TOKEN}/", f"dingtalk://{DING_TOKEN}/"],
    ids=["wrong-secret", "unsigned"],
)
async def test_dingtalk_signature_mismatch_is_a_configuration_dead_letter(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any, url: str
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    b = await bind_apprise(store, sender, ev, url)
    assert [r for _, r in await notifier.handle_classified(ev)] == ["failed"]  # HTTP 200 {"errcode":310000}
    [(topic, dead)] = queue.items
    assert topic == DLQ_TOPIC and dead.last_error.startswith("dingtalk robot errcode 310000: sign not match")
    binding = await store.get_binding(ev.tenant_id, ev.user_id, "apprise", b.target_id)
    assert binding is not None and binding.active  # the user fixes the robot's settings; nothing to re-add
    assert hooks.messages("dingtalk") == []


async def test_dingtalk_scripted_configuration_code_and_busy(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, f"dingtalk://{DING_OPEN}/")
    hooks.script_codes("dingtalk", -1, 310000)  # busy, then "keywords not in content"
    assert [r for _, r in await notifier.handle_classified(ev)] == ["retry"]
    [(topic, queued)] = queue.items
    assert topic == RETRY_TOPIC.format(level=0) and "errcode -1" in queued.last_error
    assert await notifier.deliver(queued) == "failed"
    assert queue.items[-1][0] == DLQ_TOPIC and "keywords not in content" in queue.items[-1][1].last_error
    assert hooks.messages("dingtalk") == [] and hooks.robot_calls["dingtalk"] == 2


async def test_dingtalk_rate_limit_waits_for_the_throttle(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})  # ladder 0.05 s, 0.1 s, 0.2 s
    hooks.dingtalk_rate_limit_per_minute = 1
    first, second = classified(0), classified(1, user_id="user-b")  # one robot, two users
    for ev in (first, second):
        await bind_apprise(store, sender, ev, f"dingtalk://{DING_OPEN}/")
    assert [r for _, r in await notifier.handle_classified(first)] == ["sent"]
    before = datetime.now(UTC)
    assert [r for _, r in await notifier.handle_classified(second)] == ["retry"]  # errcode 130101
    [(topic, queued)] = queue.items
    assert topic == RETRY_TOPIC.format(level=2) and "errcode 130101" in queued.last_error
    assert queued.due_at is not None and (queued.due_at - before).total_seconds() >= 599  # 10 min throttle
    assert len(hooks.messages("dingtalk")) == 1


async def test_dingtalk_unknown_token_disables_the_binding(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    gone = "ffee0011ddcc2233bbaa4455"  # a robot removed from its group: "token is not exist"
    b = await bind_apprise(store, sender, ev, f"dingtalk://{gone}/")
    assert [r for _, r in await notifier.handle_classified(ev)] == ["failed"]
    [(topic, dead)] = queue.items
    assert topic == DLQ_TOPIC and "errcode 300001" in dead.last_error and gone not in dead.model_dump_json()
    binding = await store.get_binding(ev.tenant_id, ev.user_id, "apprise", b.target_id)
    assert binding is not None and binding.active is False
    assert await notifier.handle_classified(classified(1)) == []
    assert hooks.robot_calls == {"dingtalk": 1}


async def test_feishu_signed_and_lark_legacy_answers_are_sent(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, f"feishu://{FEISHU_TOKEN}?secret={FEISHU_SECRET}")
    await bind_apprise(store, sender, ev, f"lark://{LARK_TOKEN}")
    hooks.feishu_legacy_answers = True  # {"StatusCode":0,"StatusMessage":"success"} only

    assert sorted(r for _, r in await notifier.handle_classified(ev)) == ["sent", "sent"]
    by_token = {m.key: m for m in hooks.messages("feishu")}
    assert by_token[FEISHU_TOKEN].signed and not by_token[LARK_TOKEN].signed
    assert all(ev.subject in m.content for m in by_token.values())
    assert [r for _, r in await notifier.handle_classified(ev)] == ["duplicate", "duplicate"]
    assert hooks.robot_calls == {"feishu": 2} and queue.items == []


async def test_feishu_configuration_codes_dead_letter_and_keep_the_binding(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    b = await bind_apprise(store, sender, ev, f"feishu://WrongSecret123@{FEISHU_TOKEN}")
    assert [r for _, r in await notifier.handle_classified(ev)] == ["failed"]  # HTTP 200 {"code":19021}
    [(topic, dead)] = queue.items
    assert topic == DLQ_TOPIC and dead.last_error.startswith("feishu bot code 19021: sign match fail")

    lark_ev = classified(1, user_id="user-lark")
    await bind_apprise(store, sender, lark_ev, f"lark://{LARK_TOKEN}")
    hooks.script_codes("feishu", 19024)  # "Key Words Not Found"
    assert [r for _, r in await notifier.handle_classified(lark_ev)] == ["failed"]
    assert queue.items[-1][0] == DLQ_TOPIC and "lark bot code 19024" in queue.items[-1][1].last_error
    binding = await store.get_binding(ev.tenant_id, ev.user_id, "apprise", b.target_id)
    assert binding is not None and binding.active and hooks.messages("feishu") == []


async def test_feishu_rate_limit_answered_with_http_400_goes_to_a_retry_topic(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    hooks.feishu_rate_limit_per_minute = 1
    first, second = classified(0), classified(1, user_id="user-b")  # one robot, two users
    for ev in (first, second):
        await bind_apprise(store, sender, ev, f"feishu://{FEISHU_SECRET}@{FEISHU_TOKEN}")
    assert [r for _, r in await notifier.handle_classified(first)] == ["sent"]
    before = datetime.now(UTC)
    assert [r for _, r in await notifier.handle_classified(second)] == ["retry"]  # 400 {"code":9499,...}
    [(topic, queued)] = queue.items
    assert (
        topic == RETRY_TOPIC.format(level=2) and queued.last_error == "feishu bot code 9499: too many request"
    )
    assert queued.due_at is not None and (queued.due_at - before).total_seconds() >= 59
    hooks.feishu_rate_limit_per_minute = 100
    assert await notifier.deliver(queued) == "sent"
    assert len(hooks.messages("feishu")) == 2


async def test_feishu_invalid_webhook_disables_the_binding(
    store: Store, hooks: WebhookServer, sender: AppriseSender, make_notifier: Any
) -> None:
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    gone = "00000000-dead-4bee-8f00-removedbot01"
    b = await bind_apprise(store, sender, ev, f"feishu://{gone}")
    assert [r for _, r in await notifier.handle_classified(ev)] == ["failed"]  # {"code":19001}
    [(topic, dead)] = queue.items
    assert topic == DLQ_TOPIC and "code 19001" in dead.last_error and gone not in dead.model_dump_json()
    binding = await store.get_binding(ev.tenant_id, ev.user_id, "apprise", b.target_id)
    assert binding is not None and binding.active is False


async def test_robot_tokens_secrets_and_signatures_never_in_logs(
    store: Store,
    hooks: WebhookServer,
    sender: AppriseSender,
    make_notifier: Any,
    mongo_db: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    gone = "ffee0011ddcc2233bbaa4455"
    notifier, queue = make_notifier({"apprise": sender})
    ev = classified()
    await bind_apprise(store, sender, ev, f"dingtalk://{DING_SECRET}@{DING_TOKEN}/")
    await bind_apprise(store, sender, ev, f"dingtalk://SECwrong0123456789abcdef@{DING_TOKEN}/")
    await bind_apprise(store, sender, ev, f"dingtalk://{gone}/")
    await bind_apprise(store, sender, ev, f"feishu://{FEISHU_SECRET}@{FEISHU_TOKEN}")
    await bind_apprise(store, sender, ev, f"feishu://WrongSecret123@{FEISHU_TOKEN}")
    results = sorted(r for _, r in await notifier.handle_classified(ev))
    assert results == ["failed", "failed", "failed", "sent", "sent"]
    seen = await everything_observable(caplog, capfd, mongo_db, queue.items)
    signs = [q["sign"] for q in hooks.robot_queries if "sign" in q]
    assert len(signs) == 2
    for secret in (
        DING_TOKEN,
        DING_SECRET,
        gone,
        FEISHU_TOKEN,
        FEISHU_SECRET,
        "SECwrong0123456789abcdef",
        *signs,
    ):
        assert secret not in seen
        assert urllib.parse.quote(secret, safe="") not in seen
    assert "robot/send" not in caplog.text and "/bot/v2/hook/" not in caplog.text  # aiohttp logs no requests
    assert any("code 19021" in t.last_error for _, t in queue.items)  # answers became details, masked
