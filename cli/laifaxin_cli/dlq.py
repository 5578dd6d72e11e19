"""``laifaxin-mail dlq list|replay TOPIC``: inspect and replay a dead-letter topic.

TOPIC is the registry name of the original topic (``mail.received``) or of its DLQ (``mail.received.dlq``);
the deployment's ``LAIFAXIN_TOPIC_PREFIX`` is applied. Kafka is ``--bootstrap`` or ``KAFKA_BOOTSTRAP_SERVERS``.
Each record is printed as one JSON line: the ``x-dlq-*`` error headers, the DLQ offset and a preview of the
value. ``replay`` re-publishes the records to their original topic once the fix is deployed; consumers are
idempotent, so replaying twice is harmless.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from laifaxin_shared.kafka import dlq_record_summary, read_dead_letters, record_headers, replay_dead_letters
from laifaxin_shared.topics import DLQ_SUFFIX


def _dlq_name(topic: str) -> str:
    prefix = os.environ.get("LAIFAXIN_TOPIC_PREFIX", "")
    name = topic if topic.endswith(DLQ_SUFFIX) else topic + DLQ_SUFFIX
    return name if name.startswith(prefix) else prefix + name


def _bootstrap(args: argparse.Namespace) -> str:
    value = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not value:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap HOST:PORT")
    return str(value)


def _list(args: argparse.Namespace) -> int:
    records = asyncio.run(read_dead_letters(_bootstrap(args), _dlq_name(args.topic)))
    for r in records:
        print(
            json.dumps(
                {**dlq_record_summary(r.value or b"", record_headers(r)), "dlq_offset": r.offset},
                ensure_ascii=False,
            )
        )
    return 0


def _replay(args: argparse.Namespace) -> int:
    done = asyncio.run(
        replay_dead_letters(
            _bootstrap(args), _dlq_name(args.topic), since_offset=args.since_offset, dry_run=args.dry_run
        )
    )
    for d in done:
        print(json.dumps({**d, "replayed": not args.dry_run}, ensure_ascii=False))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dlq list`` and ``dlq replay``."""
    dlq = subparsers.add_parser("dlq", help="inspect or replay a dead-letter topic")
    sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, handler, help_text in (
        ("list", _list, "print the records of TOPIC.dlq"),
        ("replay", _replay, "re-publish TOPIC.dlq's records to their topic"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("topic", help="registry topic name, e.g. mail.received (or mail.received.dlq)")
        p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
        if name == "replay":
            p.add_argument("--since-offset", type=int, default=0, help="skip DLQ records below this offset")
            p.add_argument("--dry-run", action="store_true", help="print what would be replayed")
        p.set_defaults(handler=handler)
