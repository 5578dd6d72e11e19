"""``laifaxin-mail`` sub-commands of the classifier service (registered by :mod:`laifaxin_cli.main`).

``laifaxin-mail classify PATH...`` runs the service's code path (:meth:`ClassifierInput.from_bytes` then
:meth:`Classifier.classify`) on files: an .eml file, a directory of .eml files, a Maildir (``cur/`` and
``new/``, read with :class:`mailbox.Maildir`), an mbox file (:class:`mailbox.mbox`), or ``-`` for one message
on standard input. One JSON object per message on standard output.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MBOX_SNIFF = b"From "


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this service's sub-commands; each sets ``handler=callable(args) -> int``."""
    p = subparsers.add_parser(
        "classify",
        help="classify messages (.eml, directory, Maildir, mbox, or - for stdin); one JSON line each",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help=".eml file, directory, Maildir, mbox, or -")
    p.add_argument(
        "--details", action="store_true", help="also print flags, bounce, ooo_return_date, snippet"
    )
    p.set_defaults(handler=run_classify)
    from .matching import cli as matching_cli

    matching_cli.register(subparsers)


def iter_messages(path: str) -> Iterator[tuple[dict[str, Any], bytes]]:
    """``(location, raw bytes)`` for every message under ``path``.

    ``location`` has ``path`` and, for mbox, the message ``index`` (0-based). Raises ``FileNotFoundError``
    for a missing path.
    """
    if path == "-":
        yield {"path": "-"}, sys.stdin.buffer.read()
        return
    p = Path(path)
    if p.is_dir():
        if (p / "cur").is_dir() or (p / "new").is_dir():
            md = mailbox.Maildir(p, factory=None, create=False)
            for key in sorted(md.iterkeys()):
                yield {"path": str(p), "key": key}, md.get_bytes(key)
            return
        for f in sorted(x for x in p.iterdir() if x.is_file() and x.suffix.lower() == ".eml"):
            yield {"path": str(f)}, f.read_bytes()
        return
    if not p.exists():
        raise FileNotFoundError(path)
    with p.open("rb") as fh:
        head = fh.read(len(MBOX_SNIFF))
    if head == MBOX_SNIFF:
        box = mailbox.mbox(p, factory=None, create=False)
        for index, key in enumerate(box.iterkeys()):
            yield {"path": str(p), "index": index}, box.get_bytes(key)
        return
    yield {"path": str(p)}, p.read_bytes()


def run_classify(args: argparse.Namespace) -> int:
    """Classify every message under ``args.paths``; exit 0, or 1 if a path was missing or unreadable."""
    from .classify import Classifier, make_snippet
    from .message import ClassifierInput

    classifier = Classifier()
    status = 0
    for path in args.paths:
        try:
            for location, raw in iter_messages(path):
                c = classifier.classify(ClassifierInput.from_bytes(raw))
                out: dict[str, Any] = {
                    **location,
                    "category": c.category,
                    "confidence": c.confidence,
                    "reasons": c.reasons,
                    "language": c.language,
                }
                if args.details:
                    out["flags"] = c.flags.model_dump()
                    out["bounce"] = c.bounce.model_dump() if c.bounce else None
                    out["ooo_return_date"] = c.ooo_return_date.isoformat() if c.ooo_return_date else None
                    out["snippet"] = make_snippet(c.reply_text)
                print(json.dumps(out, ensure_ascii=False), flush=False)
        except (OSError, mailbox.Error) as exc:
            print(json.dumps({"path": path, "error": f"{type(exc).__name__}: {exc}"}), file=sys.stderr)
            status = 1
    sys.stdout.flush()
    return status
