"""``laifaxin-mail`` sub-commands of the binding service (registered by :mod:`laifaxin_cli.main`).

- ``providers detect EMAIL [--offline] [--nameserver HOST[:PORT]] [--autoconfig-base-url URL]``: one JSON object
  (:class:`laifaxin_binding.detect.Detection`).
- ``providers list``: every catalog entry's id, name, kind and domains as a JSON array.
- ``providers show ID``: one catalog entry as JSON.
- ``errors explain --protocol imap|smtp [--provider ID] REPLY|-``: one JSON object with ``code``, ``message``,
  ``fix`` and their Chinese versions (``-`` reads the reply from stdin, as bytes, so GBK replies work).

Exit codes: 0 on success, 2 on bad input (argparse convention), 1 when the provider id is unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import dns.asyncresolver

from laifaxin_binding.detect import Detector
from laifaxin_shared.providers.catalog import get_provider, load_catalog
from laifaxin_shared.providers.errors import explain


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def _resolver(nameserver: str | None) -> dns.asyncresolver.Resolver | None:
    if nameserver is None:
        return None
    host, _, port = nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    if port:
        resolver.port = int(port)
    resolver.lifetime = 4.0
    return resolver


def _detect(args: argparse.Namespace) -> int:
    detector = Detector(resolver=_resolver(args.nameserver), autoconfig_base_url=args.autoconfig_base_url)
    try:
        detection = asyncio.run(detector.detect(args.email, offline=args.offline))
    except ValueError as exc:
        sys.stderr.write(f"laifaxin-mail: {exc}\n")
        return 2
    _print_json(detection.model_dump(mode="json"))
    return 0


def _list(args: argparse.Namespace) -> int:
    del args
    _print_json(
        [
            {"id": p.id, "name": p.name.model_dump(), "kind": p.kind, "domains": list(p.domains)}
            for p in load_catalog().providers
        ]
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        provider = get_provider(args.provider_id)
    except KeyError:
        sys.stderr.write(f"laifaxin-mail: unknown provider {args.provider_id!r}\n")
        return 1
    _print_json(provider.model_dump(mode="json"))
    return 0


def _explain(args: argparse.Namespace) -> int:
    reply: str | bytes = sys.stdin.buffer.read() if args.reply == "-" else args.reply
    if args.provider is not None:
        try:
            get_provider(args.provider)
        except KeyError:
            sys.stderr.write(f"laifaxin-mail: unknown provider {args.provider!r}\n")
            return 1
    _print_json(explain(args.protocol, reply, args.provider).to_dict())
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this service's sub-commands; each sets ``handler=callable(args) -> int``."""
    providers = subparsers.add_parser("providers", help="provider catalog and autodetection")
    providers_sub = providers.add_subparsers(dest="providers_command", required=True)

    detect = providers_sub.add_parser("detect", help="detect IMAP/SMTP settings for an email address (JSON)")
    detect.add_argument("email", help="the email address, e.g. name@163.com")
    detect.add_argument("--offline", action="store_true", help="catalog only: no DNS, no HTTP")
    detect.add_argument("--nameserver", help="DNS server HOST[:PORT] to query instead of the system resolver")
    detect.add_argument(
        "--autoconfig-base-url",
        help="fetch autoconfig from this base URL (with the real host in the Host header) instead of https://<host>",
    )
    detect.set_defaults(handler=_detect)

    list_parser = providers_sub.add_parser(
        "list", help="list catalog providers: id, name, kind, domains (JSON)"
    )
    list_parser.set_defaults(handler=_list)

    show = providers_sub.add_parser("show", help="print one catalog entry (JSON)")
    show.add_argument("provider_id", help="catalog id, e.g. netease_qiye")
    show.set_defaults(handler=_show)

    errors = subparsers.add_parser("errors", help="IMAP/SMTP error taxonomy")
    errors_sub = errors.add_subparsers(dest="errors_command", required=True)
    explain_parser = errors_sub.add_parser(
        "explain", help="explain a server reply: code, message, fix (JSON)"
    )
    explain_parser.add_argument("--protocol", choices=["imap", "smtp"], required=True)
    explain_parser.add_argument(
        "--provider", help="catalog id, to add that provider's instructions to the fix"
    )
    explain_parser.add_argument("reply", help="the server's reply text, or - to read it from stdin")
    explain_parser.set_defaults(handler=_explain)
