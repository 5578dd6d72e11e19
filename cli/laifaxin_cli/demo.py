"""``make demo``: the whole platform on real servers, as a user would drive it.

Starts (or reuses) the real local servers, the loopback WeChat and Web Push services, and the four services as
separate processes; creates a mailbox on the local Dovecot; binds it through binding's HTTP API with a bearer
JWT; binds WeChat, email and browser push alerts through notify's API; delivers a corpus into the mailbox as new
mail (IMAP APPEND); shows a live progress line; and ends with a table per category, alerts per channel,
anything quarantined with its reason, and arrival-to-alert latency percentiles. The last line of output is one
JSON object (see :func:`summary`). Everything it started is stopped before it exits.

The corpus is the sample the repository ships (``demo_corpus/``), or ``DEMO_MAIL=path``: a folder of messages
(searched recursively: ``.eml``, ``.txt``, ``.msg``), a Maildir, or an mbox file.

Exit status: 0 when every message was classified, quarantined with its reason, or recognised as a duplicate
of one already received (none lost), and every expected alert arrived; 1 otherwise; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import hashlib
import json
import mailbox
import os
import re
import secrets
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from laifaxin_shared.events import MailClassified, MailReceived
from laifaxin_shared.imap import client_tls_context, connect_imap
from laifaxin_shared.kafka import ensure_topics
from laifaxin_shared.mime import QuarantineError, parse_message

from .stack import ROOT, Stack, StackConfig

CORPUS = Path(__file__).resolve().parent / "demo_corpus"
MESSAGE_SUFFIXES = {".eml", ".txt", ".msg"}
TENANT = "tenant-demo"
USER = "user-demo"
ALERT_CATEGORIES = ("to_reply", "inquiry")
APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")


def load_corpus(path: Path) -> list[tuple[str, bytes]]:
    """(name, raw bytes) of every message under ``path``: a folder, a Maildir, or an mbox file."""
    if path.is_file():
        return [(f"{path.name}#{i}", m.as_bytes()) for i, m in enumerate(mailbox.mbox(path))]
    if (path / "cur").is_dir() and (path / "new").is_dir():
        return [(f"maildir/{k}", m.as_bytes()) for k, m in mailbox.Maildir(path, create=False).items()]
    out = []
    for p in sorted(path.rglob("*")):
        if (
            p.is_file()
            and p.suffix.lower() in MESSAGE_SUFFIXES
            and not p.name.upper().startswith(("README", "LICENSE"))
        ):
            out.append((str(p.relative_to(path)), p.read_bytes()))
    return out


def duplicate_count(corpus: list[tuple[str, bytes]]) -> int:
    """Messages that repeat an earlier one's identity (Message-ID, else the SHA-256 of the raw bytes).

    Sync indexes and publishes a message once per mailbox (issue 4: duplicates across folders and retries are
    recognised by Message-ID), so these are expected to be absorbed, not lost. Unparseable files are not
    counted here: they are quarantined.
    """
    seen: set[str] = set()
    dupes = 0
    for _name, raw in corpus:
        try:
            parsed = parse_message(raw)
        except QuarantineError:
            continue
        key = parsed.message_id or parsed.content_hash
        dupes += key in seen
        seen.add(key)
    return dupes


def dedupe_key(event_id: str, user_id: str, channel: str, target_id: str) -> str:
    """notify's delivery key (SHA-256 of ``event_id|user_id|channel|target_id``), to attribute each alert."""
    return hashlib.sha256(f"{event_id}|{user_id}|{channel}|{target_id}".encode()).hexdigest()


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[k], 1)


@dataclass
class Observed:
    """What the demo saw on Kafka and at the loopback services."""

    received: dict[str, MailReceived] = field(default_factory=dict)  # by MessageRef.natural_key()
    classified: dict[str, MailClassified] = field(default_factory=dict)
    quarantined: list[dict[str, str]] = field(default_factory=list)
    alerts: dict[str, dict[str, float]] = field(
        default_factory=lambda: {"wechat": {}, "email": {}, "push": {}}
    )


async def watch_topics(bootstrap: str, prefix: str, seen: Observed, stop: asyncio.Event) -> None:
    """Follow mail.received, mail.classified and mail.received.dlq from the beginning."""
    topics = [prefix + "mail.received", prefix + "mail.classified", prefix + "mail.received.dlq"]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    if tp.topic.endswith("mail.received"):
                        ev = MailReceived.model_validate_json(r.value)
                        seen.received[ev.ref.natural_key()] = ev
                    elif tp.topic.endswith("mail.classified"):
                        c = MailClassified.model_validate_json(r.value)
                        seen.classified[c.ref.natural_key()] = c
                    else:
                        headers = {k: v.decode(errors="replace") for k, v in r.headers}
                        seen.quarantined.append(headers)
    finally:
        await consumer.stop()


def alert_emails(index: Path, since: float) -> list[tuple[str, float]]:
    """(dedupe key, received time) of every alert email the local SMTP server accepted since ``since``, in
    arrival order; notify's alert emails carry ``Message-ID: <dedupe key@notify.laifaxin>``."""
    out: list[tuple[str, float]] = []
    if not index.exists():
        return out
    for line in index.read_text().splitlines():
        rec = json.loads(line)
        if rec["received_at"] < since:
            continue
        msg = email.message_from_bytes(Path(rec["file"]).read_bytes(), policy=email.policy.default)
        mid = str(msg.get("Message-ID", "")).strip("<>")
        if mid.endswith("@notify.laifaxin"):
            out.append((mid.split("@", 1)[0], rec["received_at"]))
    return out


async def run(corpus_path: Path | None, timeout_s: float) -> dict[str, Any]:
    """Run the demo; returns the summary (also printed)."""
    from tests.support.infra import servers  # the same server discovery as tests and benchmarks
    from tests.support.push_service import PushService
    from tests.support.wechat_server import WeChatServer

    corpus = load_corpus(corpus_path or CORPUS)
    if not corpus:
        raise SystemExit(f"no messages found in {corpus_path or CORPUS}")
    run_id = uuid.uuid4().hex[:8]
    log_dir = ROOT / "deploy" / "local" / "state" / "demo" / run_id
    say(f"corpus: {len(corpus)} messages from {corpus_path or CORPUS}")
    with servers() as srv:
        prefix = f"demo{run_id}."
        await ensure_topics(srv.kafka_bootstrap_servers, prefix=prefix, replication_factor=1)
        appid, app_secret = "wxdemo" + run_id, "demo-secret-" + run_id
        async with WeChatServer(apps={appid: app_secret}) as wechat, PushService() as push:
            relay_user, relay_pw = await make_account(srv.mail, f"alerts-{run_id}")
            config = StackConfig(
                kafka_bootstrap_servers=srv.kafka_bootstrap_servers,
                mongodb_url=srv.mongodb_url,
                mail=srv.mail,
                topic_prefix=prefix,
                db_prefix=f"demo{run_id}_",
                log_dir=log_dir,
                wechat_api_base=wechat.base_url,
                wechat_appid=appid,
                wechat_secret=app_secret,
                smtp_relay_user=relay_user,
                smtp_relay_password=relay_pw,
                extra_env={
                    "notify": {
                        "NOTIFY_DIGEST_THRESHOLD_PER_MINUTE": "100000",
                        "NOTIFY_RATE_LIMIT_PER_HOUR": "100000",
                    }
                },
            )
            stack = Stack(config)
            try:
                say("starting binding, sync, classifier and notify as separate processes ...")
                await stack.start()
                return await drive(stack, srv.mail, corpus, wechat, push, timeout_s, run_id)
            finally:
                stack.stop()
                say(f"stopped the services; their logs are in {log_dir}")


async def make_account(mail: dict[str, Any], local: str) -> tuple[str, str]:
    """A new account on the local Dovecot + SMTP server (the passwd-file is re-read within a second)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "laifaxin_local_infra", ROOT / "deploy" / "local" / "infra.py"
    )
    assert spec and spec.loader
    infra = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = infra
    spec.loader.exec_module(infra)
    address, password = f"{local}@{mail['mail_domain']}", "app-" + secrets.token_urlsafe(12)
    infra.add_user(address, password, Path(mail["passwd_file"]))
    await asyncio.sleep(1.1)
    return address, password


async def drive(
    stack: Stack,
    mail: dict[str, Any],
    corpus: list[tuple[str, bytes]],
    wechat: Any,
    push: Any,
    timeout_s: float,
    run_id: str,
) -> dict[str, Any]:
    cfg = stack.config
    owner, owner_pw = await make_account(mail, f"sales-{run_id}")
    alert_to = f"owner-{run_id}@laifaxin.example"  # any recipient: the local relay records what it accepts
    headers = {"Authorization": f"Bearer {cfg.token(TENANT, USER)}"}
    async with httpx.AsyncClient(timeout=60) as http:
        say(f"binding {owner} through POST {stack.binding_url}/v1/mailboxes ...")
        r = await http.post(
            f"{stack.binding_url}/v1/mailboxes",
            headers=headers,
            json={
                "email": owner,
                "password": owner_pw,
                "nickname": "Demo sales mailbox",
                "imap": {"host": mail["imap_host"], "port": mail["imaps_port"], "security": "ssl"},
                "smtp": {"host": mail["smtp_host"], "port": mail["smtps_port"], "security": "ssl"},
            },
        )
        if r.status_code != 201:
            raise RuntimeError(f"binding refused the mailbox: {r.status_code} {r.text}")
        mailbox_id = r.json()["id"]
        openid = "o" + secrets.token_hex(13)
        subscription = push.subscribe()
        for method, path, body in [
            (
                "PUT",
                "/v1/preferences",
                {"categories": list(ALERT_CATEGORIES), "channels": ["wechat", "email", "webpush"]},
            ),
            ("PUT", "/v1/bindings/wechat", {"openid": openid}),
            ("PUT", "/v1/bindings/email", {"address": alert_to}),
            ("POST", "/v1/bindings/webpush", subscription),
        ]:
            resp = await http.request(method, stack.notify_url + path, headers=headers, json=body)
            if resp.status_code >= 300:
                raise RuntimeError(f"notify {method} {path}: {resp.status_code} {resp.text}")
        bindings = (await http.get(stack.notify_url + "/v1/bindings", headers=headers)).json()
        targets = {b["channel"]: b["target_id"] for b in bindings}
        say("waiting for sync to baseline the mailbox ...")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            mb = (await http.get(f"{stack.binding_url}/v1/mailboxes/{mailbox_id}", headers=headers)).json()
            if mb.get("last_synced_at"):
                break
            await asyncio.sleep(0.3)
        else:
            raise RuntimeError(f"sync never reported the mailbox: {mb}")

        seen = Observed()
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_topics(cfg.kafka_bootstrap_servers, cfg.topic_prefix, seen, stop))
        appended: dict[int, float] = {}
        started = time.time()
        ctx = client_tls_context(mail["ca_file"])
        imap = await connect_imap(mail["imap_host"], mail["imaps_port"], "ssl", ssl_context=ctx)
        await imap.login(owner, owner_pw)
        say(f"delivering {len(corpus)} messages into INBOX as new mail (IMAP APPEND) ...")
        for _name, raw in corpus:
            t = time.time()
            resp = await imap.append(raw, mailbox="INBOX")
            found = APPENDUID.search(b" ".join(x for x in resp.lines if isinstance(x, bytes | bytearray)))
            if resp.result == "OK" and found:
                appended[int(found.group(2))] = t
        await imap.logout()

        duplicates = duplicate_count(corpus)
        expected_alerts: set[str] = set()
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            dlq = len(seen.quarantined)
            expected_alerts = {k for k, c in seen.classified.items() if c.category in ALERT_CATEGORIES}
            wanted = {
                ch: {
                    dedupe_key(str(seen.classified[k].event_id), USER, ch, targets[ch]): k
                    for k in expected_alerts
                }
                for ch in ("wechat", "email", "webpush")
                if ch in targets
            }
            for m in wechat.sent:
                if m.client_msg_id in wanted.get("wechat", {}):
                    seen.alerts["wechat"].setdefault(m.client_msg_id, m.at)
            for p in push.received:
                tag = p.json().get("tag")
                if tag in wanted.get("webpush", {}):
                    seen.alerts["push"].setdefault(tag, getattr(p, "at", time.time()))
            for key, at in alert_emails(Path(mail["smtp_received_index"]), started):
                if key in wanted.get("email", {}):
                    seen.alerts["email"].setdefault(key, at)
            done_msgs = len(seen.received) + dlq + duplicates >= len(corpus) and len(seen.classified) >= len(
                seen.received
            )
            done_alerts = all(
                len(seen.alerts[k]) >= len(expected_alerts) for k in ("wechat", "email", "push")
            )
            line = (
                f"appended {len(appended)}/{len(corpus)}  received {len(seen.received)}  "
                f"classified {len(seen.classified)}  quarantined {dlq}  duplicates {duplicates}  alerts wechat {len(seen.alerts['wechat'])}"
                f" email {len(seen.alerts['email'])} push {len(seen.alerts['push'])} / {len(expected_alerts)}"
            )
            if line != last:
                progress(line)
                last = line
            if done_msgs and done_alerts:
                break
            await asyncio.sleep(0.25)
        progress(last, final=True)
        stop.set()
        await watcher

    latencies = []
    by_key: dict[tuple[str, str], int] = {}
    for ch, keys in (("wechat", "wechat"), ("email", "email"), ("push", "webpush")):
        for k in expected_alerts:
            c = seen.classified[k]
            by_key[(ch, dedupe_key(str(c.event_id), USER, keys, targets[keys]))] = c.ref.uid
    for ch, got in seen.alerts.items():
        for key, at in got.items():
            alert_uid = by_key.get((ch, key))
            if alert_uid is not None and alert_uid in appended:
                latencies.append((at - appended[alert_uid]) * 1000)
    return summary(corpus, seen, latencies, duplicates)


def summary(
    corpus: list[tuple[str, bytes]], seen: Observed, latencies_ms: list[float], duplicates: int
) -> dict[str, Any]:
    """Print the tables and return the final JSON object."""
    by_category = Counter(c.category for c in seen.classified.values())
    print("\ncategory        messages", file=sys.stderr)
    for cat in ("to_reply", "inquiry", "ooo", "rejection", "bounce", "notification"):
        print(f"  {cat:14s}{by_category.get(cat, 0):8d}", file=sys.stderr)
    print("\nalerts          delivered", file=sys.stderr)
    for ch, got in seen.alerts.items():
        print(f"  {ch:14s}{len(got):9d}", file=sys.stderr)
    if seen.quarantined:
        print(
            "\nquarantined (sync could not parse; stored with the reason and sent to mail.received.dlq)",
            file=sys.stderr,
        )
        for q in seen.quarantined[:20]:
            print(f"  {q.get('x-dlq-error', '?')[:110]}", file=sys.stderr)
        if len(seen.quarantined) > 20:
            print(f"  ... and {len(seen.quarantined) - 20} more", file=sys.stderr)
    result = {
        "messages_in": len(corpus),
        "received": len(seen.received),
        "classified": len(seen.classified),
        "by_category": dict(sorted(by_category.items())),
        "alerts": {k: len(v) for k, v in seen.alerts.items()},
        "quarantined": len(seen.quarantined),
        "duplicates": duplicates,
        "latency_ms": {"p50": percentile(latencies_ms, 50), "p99": percentile(latencies_ms, 99)},
    }
    return result


def say(text: str) -> None:
    print(f"[demo] {text}", file=sys.stderr, flush=True)


def progress(line: str, final: bool = False) -> None:
    if sys.stderr.isatty():
        print(f"\r[demo] {line}\033[K", end="\n" if final else "", file=sys.stderr, flush=True)
    elif not final:
        print(f"[demo] {line}", file=sys.stderr, flush=True)


async def _cancellable(work: Any) -> Any:
    """Run ``work`` so that SIGTERM/SIGINT cancel it: its ``finally`` blocks then stop what it started."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole platform on a mail corpus")
    parser.add_argument(
        "corpus",
        nargs="?",
        type=Path,
        default=os.environ.get("DEMO_MAIL") or None,
        help="folder of messages, Maildir or mbox (default: the shipped sample; env DEMO_MAIL)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("DEMO_TIMEOUT", "300")),
        help="seconds to wait for mail to flow through (default 300)",
    )
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(_cancellable(run(args.corpus, args.timeout)))
    except asyncio.CancelledError:
        say("interrupted; everything the demo started was stopped")
        return 130
    lost = result["messages_in"] - result["received"] - result["quarantined"] - result["duplicates"]
    expected = sum(result["by_category"].get(c, 0) for c in ALERT_CATEGORIES)
    ok = (
        lost == 0
        and result["classified"] == result["received"]
        and all(n == expected for n in result["alerts"].values())
    )
    if lost:
        say(f"{lost} message(s) neither received, quarantined nor recognised as a duplicate")
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
