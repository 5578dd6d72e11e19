"""``make demo``: the whole platform on real servers, as a user would drive it.

Starts (or reuses) the real local servers, the loopback WeChat and Web Push services, and the four services as
separate processes, binding the platform's system mailbox from configuration (``BINDING_SYSTEM_MAILBOX_*``);
creates a mailbox on the local Dovecot; binds it through binding's HTTP API with a bearer JWT; binds WeChat,
email and browser push alerts through notify's API; sends a small campaign from the system mailbox and from the
bound mailbox (:func:`laifaxin_cli.demo_replies.send_campaign`: SMTP submission plus ``mail.sent``); delivers
the answers real clients would send (Gmail, Outlook, QQ Mail, NetEase, Foxmail; with and without threading
headers; auto-replies; a bounce; one stray message with a forged reply token into the system mailbox) and then
the corpus, as new mail (IMAP APPEND); shows a live progress line; and ends with a table per category, alerts
per channel, reply matching (matched by method, alerts by owner, contact statuses), anything quarantined with
its reason, and arrival-to-alert latency percentiles. The last line of output is one JSON object (see
:func:`summary`; ``messages_in`` counts the answers and the corpus). Everything it started is stopped before it
exits.

The corpus is the sample the repository ships (``demo_corpus/``), or ``DEMO_MAIL=path``: a folder of messages
(searched recursively: ``.eml``, ``.txt``, ``.msg``), a Maildir, or an mbox file. ``DEMO_SERVICES=pods`` runs the
four services as the pods of the ``local`` Kubernetes overlay on Podman (``make demo-pods`` builds the images
first) instead of as processes.

Exit status: 0 when every message was classified, quarantined with its reason, or recognised as a duplicate
of one already received (none lost), and every expected alert arrived; 1 otherwise; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mailbox
import os
import secrets
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from laifaxin_shared.mime import QuarantineError, parse_message

from .demo_replies import Sender, answers, send_campaign, stray
from .stack import ROOT

CORPUS = Path(__file__).resolve().parent / "demo_corpus"
SUBJECTS_BY_LABEL = {
    "system": "LED 面板报价 / LED panel prices",
    "own": "New catalogue 2027: solar street lights",
}
MESSAGE_SUFFIXES = {".eml", ".txt", ".msg"}
TENANT = "tenant-demo"
SYSTEM_TENANT = "laifaxin-system"
RECIPIENTS = 10
ALERT_CATEGORIES = ("to_reply", "inquiry")


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


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[k], 1)


async def make_account(mail: dict[str, Any], local: str) -> Any:
    """A new account on the local Dovecot + SMTP server (the passwd-file is re-read within a second)."""
    import importlib.util

    from tests.support.platform import LocalAccount

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
    return LocalAccount(
        address, password, str(mail["imap_host"]), int(mail["imaps_port"]), int(mail["smtps_port"])
    )


async def run(corpus_path: Path | None, timeout_s: float) -> dict[str, Any]:
    """Run the demo; returns the summary (also printed)."""
    from tests.support.infra import servers  # the same server discovery as tests and benchmarks
    from tests.support.platform import running_platform

    corpus = load_corpus(corpus_path or CORPUS)
    if not corpus:
        raise SystemExit(f"no messages found in {corpus_path or CORPUS}")
    run_id = uuid.uuid4().hex[:8]
    log_dir = ROOT / "deploy" / "local" / "state" / "demo" / run_id
    say(f"corpus: {len(corpus)} messages from {corpus_path or CORPUS}")
    with servers() as srv:
        relay = await make_account(srv.mail, f"alerts-{run_id}")
        owner = await make_account(srv.mail, f"sales-{run_id}")
        system = await make_account(srv.mail, f"campaigns-{run_id}")
        host = srv.mail["imap_host"]
        if os.environ.get("DEMO_SERVICES") == "pods":
            say(
                "starting binding, sync, classifier and notify as pods (podman kube play of the local overlay) ..."
            )
        else:
            say("starting binding, sync, classifier and notify as separate processes ...")
        async with running_platform(
            extra_env={
                "binding": {
                    "BINDING_SYSTEM_MAILBOX_EMAIL": system.email,
                    "BINDING_SYSTEM_MAILBOX_PASSWORD": system.password,
                    "BINDING_SYSTEM_MAILBOX_IMAP": f"{host}:{system.imaps_port}:ssl",
                    "BINDING_SYSTEM_MAILBOX_SMTP": f"{host}:{system.smtps_port}:ssl",
                }
            },
            kafka_bootstrap_servers=srv.kafka_bootstrap_servers,
            mongodb_url=srv.mongodb_url,
            mail=srv.mail,
            log_dir=log_dir,
            relay=relay,
            categories=list(ALERT_CATEGORIES),
            tenant_id=TENANT,
            services=os.environ.get("DEMO_SERVICES") or "processes",
        ) as platform:
            try:
                return await drive(platform, owner, system, corpus, timeout_s)
            finally:
                say(f"stopping the services; their logs are in {log_dir}")


async def system_mailbox_id(platform: Any, timeout_s: float = 90) -> str:
    """The id of the system mailbox binding bound at start, once sync has baselined it."""
    token = platform.stack.config.token(SYSTEM_TENANT, "system")
    deadline = time.monotonic() + timeout_s
    boxes: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = await platform.http.get(
            platform.stack.binding_url + "/v1/mailboxes", headers={"Authorization": f"Bearer {token}"}
        )
        boxes = r.json() if r.status_code == 200 else []
        boxes = boxes.get("items", boxes) if isinstance(boxes, dict) else boxes
        ready = [b for b in boxes if b.get("last_synced_at")]
        if ready:
            return str(ready[0]["id"])
        await asyncio.sleep(0.3)
    raise RuntimeError(f"the system mailbox was not bound and synced: {boxes}")


async def drive(
    platform: Any, owner: Any, system: Any, corpus: list[tuple[str, bytes]], timeout_s: float
) -> dict[str, Any]:
    say(f"binding {owner.email} through POST {platform.stack.binding_url}/v1/mailboxes (bearer JWT) ...")
    own_id = await platform.bind_mailbox(owner)
    system_id = await system_mailbox_id(platform)
    platform.mailboxes[system_id] = system
    say(f"system mailbox {system.email} bound by binding from BINDING_SYSTEM_MAILBOX_* ({system_id})")
    say(
        "alerts bound through notify's API: WeChat by QR-code scan, alert email confirmed, browser push subscription"
    )
    cfg = platform.stack.config
    replies: list[tuple[str, bytes]] = []
    for sender, label in ((Sender(system, system_id, True), "system"), (Sender(owner, own_id, False), "own")):
        recipients = [
            f"buyer{i}.{label}@{domain}"
            for i, domain in enumerate(["qq.com", "163.com", "gmail.com", "outlook.com", "example.de"] * 2)
        ][:RECIPIENTS]
        sent = await send_campaign(
            sender,
            owner=(platform.tenant_id, platform.user_id),
            recipients=recipients,
            subject=SUBJECTS_BY_LABEL[label],
            campaign_id=f"cmp-demo-{label}",
            kafka_bootstrap_servers=cfg.kafka_bootstrap_servers,
            topic_prefix=cfg.topic_prefix,
            ca_file=str(platform.mail["ca_file"]),
        )
        say(
            f"campaign sent from the {label} mailbox {sender.account.email}: {len(sent)} messages (SMTP + mail.sent)"
        )
        replies += [(f"{label}-answer-{i}", raw) for i, raw in enumerate(answers(sent, sender))]
        if sender.system:
            replies.append(("system-stray", stray(sender)))
    everything = replies + corpus
    say(
        f"delivering {len(replies)} answers and {len(corpus)} corpus messages into INBOX as new mail (IMAP APPEND) ..."
    )
    duplicates = duplicate_count(everything)

    async def deliver() -> None:
        await platform.append(system, [raw for name, raw in replies if name.startswith("system")])
        await platform.append(owner, [raw for name, raw in replies if name.startswith("own")])
        await platform.append(owner, [raw for _name, raw in corpus])

    async with asyncio.TaskGroup() as tasks:  # the APPENDs run while the progress line follows the mail
        appending = tasks.create_task(deliver())
        await _follow(platform, everything, duplicates, appending, timeout_s)
    return summary(everything, platform, duplicates)


async def _follow(
    platform: Any,
    corpus: list[tuple[str, bytes]],
    duplicates: int,
    appending: asyncio.Task[None],
    timeout_s: float,
) -> None:
    """Show the progress line until every message is accounted for and alerted, or ``timeout_s``."""
    seen = platform.seen
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        got = platform.delivered()
        alerts = {ch: len(set(platform.keys(ch)) & set(got[ch])) for ch in ("wechat", "email", "webpush")}
        expected = len(platform.alerting())
        line = (
            f"appended {len(platform.appended)}/{len(corpus)}  received {len(seen.received)}  "
            f"classified {len(seen.classified)}  quarantined {len(seen.quarantined)}  duplicates {duplicates}"
            f"  alerts wechat {alerts['wechat']} email {alerts['email']} push {alerts['webpush']} / {expected}"
        )
        if line != last:
            progress(line)
            last = line
        accounted = len(seen.received) + len(seen.quarantined) + duplicates >= len(corpus)
        if appending.done() and accounted and platform.complete(len(seen.received)):
            break
        await asyncio.sleep(0.25)
    progress(last, final=True)


def summary(corpus: list[tuple[str, bytes]], platform: Any, duplicates: int) -> dict[str, Any]:
    """Print the tables and return the final JSON object."""
    seen = platform.seen
    by_category = Counter(c.category for c in seen.classified.values())
    got = platform.delivered()
    alerts = {
        name: len(set(platform.keys(ch)) & set(got[ch]))
        for name, ch in (("wechat", "wechat"), ("email", "email"), ("push", "webpush"))
    }
    print("\ncategory        messages", file=sys.stderr)
    for cat in ("to_reply", "inquiry", "ooo", "rejection", "bounce", "notification"):
        print(f"  {cat:14s}{by_category.get(cat, 0):8d}", file=sys.stderr)
    print("\nalerts          delivered", file=sys.stderr)
    for ch, n in alerts.items():
        print(f"  {ch:14s}{n:9d}", file=sys.stderr)
    if seen.quarantined:
        print(
            "\nquarantined (sync could not parse; stored with the reason and sent to mail.received.dlq)",
            file=sys.stderr,
        )
        for q in seen.quarantined[:20]:
            print(f"  {q.get('x-dlq-error', '?')[:110]}", file=sys.stderr)
        if len(seen.quarantined) > 20:
            print(f"  ... and {len(seen.quarantined) - 20} more", file=sys.stderr)
    matched = [c for c in seen.classified.values() if c.match is not None]
    by_method = Counter(c.match.method for c in matched if c.match is not None)
    wechat_keys = platform.keys("wechat")
    alerted = {wechat_keys[k] for k in got["wechat"] if k in wechat_keys}
    by_owner = Counter(f"{seen.classified[k].tenant_id}/{seen.classified[k].user_id}" for k in alerted)
    system_unmatched = sum(1 for c in seen.classified.values() if c.system_mailbox and c.match is None)
    statuses = Counter(s.status for s in seen.statuses.values())
    print("\nreply matching  messages", file=sys.stderr)
    for method, n in sorted(by_method.items()):
        print(f"  {method:14s}{n:8d}", file=sys.stderr)
    print(f"  {'unmatched':14s}{len(seen.classified) - len(matched):8d}", file=sys.stderr)
    print(f"  system mailbox, unmatched (alerted to nobody): {system_unmatched}", file=sys.stderr)
    print("\ncontact status  recipients", file=sys.stderr)
    for status, n in sorted(statuses.items()):
        print(f"  {status:14s}{n:10d}", file=sys.stderr)
    latencies = platform.latencies_ms()
    return {
        "messages_in": len(corpus),
        "received": len(seen.received),
        "classified": len(seen.classified),
        "by_category": dict(sorted(by_category.items())),
        "alerts": alerts,
        "quarantined": len(seen.quarantined),
        "duplicates": duplicates,
        "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99)},
        "matched": len(matched),
        "unmatched": len(seen.classified) - len(matched),
        "matches_by_method": dict(sorted(by_method.items())),
        "alerts_by_owner": dict(sorted(by_owner.items())),
        "contact_statuses": dict(sorted(statuses.items())),
        "alerts_expected": len(platform.alerting()),
    }


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
    expected = result[
        "alerts_expected"
    ]  # the user's messages of an alerting category (system strays: nobody's)
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
