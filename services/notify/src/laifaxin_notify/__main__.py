"""``python -m laifaxin_notify serve`` (HTTP API + consumers), ``replay-dlq`` or ``reseal-secrets`` (operators).

Environment: ``KAFKA_BOOTSTRAP_SERVERS``, ``MONGODB_URL``, ``LAIFAXIN_TOPIC_PREFIX`` and the ``NOTIFY_*``
settings (see :class:`laifaxin_notify.settings.NotifySettings`).
"""

from __future__ import annotations

import argparse
import json
import sys

from .settings import NotifySettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m laifaxin_notify")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API and the Kafka consumers")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    replay = sub.add_parser("replay-dlq", help="re-queue dead-lettered delivery tasks to notify.retry.0")
    replay.add_argument("--limit", type=int, default=1000)
    replay.add_argument("--dry-run", action="store_true")
    sub.add_parser(
        "reseal-secrets", help="reseal stored Apprise URLs under the active key of NOTIFY_SECRETS_KEYS"
    )
    args = parser.parse_args(argv)
    settings = NotifySettings()
    if args.command == "serve":
        import uvicorn

        from .app import create_app

        uvicorn.run(
            create_app(settings),
            host=args.host or settings.http_host,
            port=args.port or settings.http_port,
            log_config=None,
        )
        return 0
    if args.command == "reseal-secrets":
        from . import reseal

        json.dump(reseal.run(settings), sys.stdout, indent=2)
        print()
        return 0
    from .replay import run

    result = run(settings, limit=args.limit, dry_run=args.dry_run)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
