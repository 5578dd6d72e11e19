"""``laifaxin-mail replies match --sent SENT.jsonl PATH...``: match messages against sent mail, offline.

``SENT.jsonl`` holds ``mail.sent`` payloads, one JSON object per line. Messages are read like ``laifaxin-mail
classify`` reads them (.eml, directory, Maildir, mbox, ``-``), parsed by the shared MIME parser into the
``mail.received`` event sync would publish (in the tenant and mailbox of the first sent message, or the system
mailbox with ``--system``), classified, and matched through the service's code path
(:class:`~laifaxin_classifier.matching.pipeline.ReplyMatching` over a
:class:`~laifaxin_classifier.matching.registry.MemoryRegistry`). One JSON object per message on standard
output: ``{"path", "matched", "sent_message_id", "campaign_id", "recipient", "method", "confidence"}`` (plus
``key`` / ``index`` for Maildir and mbox). Exit 0, 1 when a path was unreadable, 2 for a bad sent file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mailbox
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from laifaxin_shared.events import MailReceived, MailSent
from laifaxin_shared.mime import QuarantineError, parse_message
from laifaxin_shared.replytoken import ReplyTokens

DEV_REPLY_TOKEN_KEYS = "dev:ZGV2LW9ubHktcmVwbHktdG9rZW4ta2V5LW5vdC1mb3ItcHJvZA=="  # noqa: S105  # the published development-only key send uses by default


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``replies match``."""
    replies = subparsers.add_parser("replies", help="reply matching: which sent message a reply answers")
    sub = replies.add_subparsers(dest="replies_command", required=True)
    p = sub.add_parser(
        "match",
        help="match messages against mail.sent payloads; one JSON line each",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sent", required=True, type=Path, help="mail.sent payloads, one JSON object per line")
    p.add_argument("paths", nargs="+", metavar="PATH", help=".eml file, directory, Maildir, mbox, or -")
    p.add_argument("--system", action="store_true", help="the messages arrived in the system mailbox")
    p.add_argument("--tenant", help="tenant of the receiving mailbox (default: the first sent message's)")
    p.add_argument("--mailbox", help="receiving mailbox_id (default: the first sent message's)")
    p.add_argument("--system-tenant", default="laifaxin-system", help="tenant of the system mailbox")
    p.set_defaults(handler=run_match)


def read_sent(path: Path) -> list[MailSent]:
    """The mail.sent events of a JSON-lines file (blank lines skipped).

    Raises:
        ValueError: a line is not a valid mail.sent payload (the message names the line).
    """
    out: list[MailSent] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(MailSent.model_validate_json(line))
        except ValidationError as exc:
            raise ValueError(f"{path}:{number}: not a mail.sent payload: {exc.errors()[0]['msg']}") from exc
    return out


def tokens_from_env() -> ReplyTokens:
    """The reply token key ring of ``LAIFAXIN_REPLY_TOKEN_KEYS`` / ``..._ACTIVE_KEY_ID`` (the dev key by default)."""
    return ReplyTokens.parse(
        os.environ.get("LAIFAXIN_REPLY_TOKEN_KEYS", DEV_REPLY_TOKEN_KEYS),
        os.environ.get("LAIFAXIN_REPLY_TOKEN_ACTIVE_KEY_ID", "dev"),
    )


def received_event(raw: bytes, *, tenant_id: str, mailbox_id: str, uid: int) -> MailReceived | None:
    """The mail.received event sync would publish for ``raw`` (None when the parser quarantines it)."""
    try:
        parsed = parse_message(raw)
    except QuarantineError:
        return None
    return parsed.to_event(
        tenant_id=tenant_id,
        user_id="local",
        mailbox_id=mailbox_id,
        folder="INBOX",
        uidvalidity=1,
        uid=uid,
        raw_ref="local",
    )


def run_match(args: argparse.Namespace) -> int:
    """Match every message under ``args.paths`` against ``args.sent``."""
    try:
        sent = read_sent(args.sent)
    except (OSError, ValueError) as exc:
        print(json.dumps({"path": str(args.sent), "error": str(exc)}), file=sys.stderr)
        return 2
    return asyncio.run(_run(args, sent))


async def _run(args: argparse.Namespace, sent: list[MailSent]) -> int:
    from ..classify import Classifier, to_mail_classified
    from ..cli import iter_messages
    from ..message import ClassifierInput
    from .matcher import Matcher
    from .pipeline import ReplyMatching
    from .registry import MemoryRegistry

    registry = MemoryRegistry()
    matching = ReplyMatching(
        registry, Matcher(registry, tokens_from_env(), system_tenant_id=args.system_tenant)
    )
    await matching.on_sent(sent)
    first = sent[0] if sent else None
    tenant = args.system_tenant if args.system else (args.tenant or (first.tenant_id if first else "local"))
    mailbox_id = args.mailbox or (first.mailbox_id if first else "local")
    classifier = Classifier()
    status = 0
    uid = 0
    for path in args.paths:
        try:
            for location, raw in iter_messages(path):
                uid += 1
                out: dict[str, Any] = {**location, "matched": False}
                ev = received_event(raw, tenant_id=tenant, mailbox_id=mailbox_id, uid=uid)
                if ev is not None:
                    classified = to_mail_classified(ev, classifier.classify(ClassifierInput.from_bytes(raw)))
                    result = (await matching.on_classified([(ev, classified)])).classified[0]
                    m = result.match
                    out.update(
                        matched=m is not None,
                        sent_message_id=m.sent_message_id if m else None,
                        campaign_id=m.campaign_id if m else None,
                        recipient=m.recipient if m else None,
                        method=m.method if m else None,
                        confidence=m.confidence if m else None,
                    )
                else:
                    out.update(error="unparseable")
                print(json.dumps(out, ensure_ascii=False), flush=False)
        except (OSError, mailbox.Error) as exc:
            print(json.dumps({"path": path, "error": f"{type(exc).__name__}: {exc}"}), file=sys.stderr)
            status = 1
    sys.stdout.flush()
    return status
