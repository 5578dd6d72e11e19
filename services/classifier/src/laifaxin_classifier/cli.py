"""``laifaxin-mail`` sub-commands of the classifier service (registered by :mod:`laifaxin_cli.main`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this service's sub-commands; each sets ``handler=callable(args) -> int``."""
