"""Entry point of ``laifaxin-mail``: one console script whose sub-commands call the services' domain code."""

from __future__ import annotations

import argparse
import sys

from laifaxin_binding import cli as binding_cli
from laifaxin_classifier import cli as classifier_cli
from laifaxin_cli import dlq
from laifaxin_send import cli as send_cli


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each service registers its sub-commands here."""
    parser = argparse.ArgumentParser(prog="laifaxin-mail", description="Laifaxin mail platform operator CLI")
    subparsers = parser.add_subparsers(dest="command", required=True)
    binding_cli.register(subparsers)
    classifier_cli.register(subparsers)
    dlq.register(subparsers)
    send_cli.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return int(handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
