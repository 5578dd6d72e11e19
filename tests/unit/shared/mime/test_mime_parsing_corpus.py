"""Every message of the shared real-mail corpus and of CPython's email test data goes through parse_message.

Each one gives a ParsedMessage or a QuarantineError with a reason; nothing else escapes. The files are read
where they are (../shared/data/real-mail, the stdlib's test/test_email/data), never copied into the repo.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from laifaxin_shared.events.mail import MailReceived
from laifaxin_shared.mime import ParsedMessage, QuarantineError, parse_message
from laifaxin_shared.mime import message as message_module
from tests.conftest import REAL_MAIL, require_corpus

CPYTHON_EMAIL_DATA = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"

# Fragments that are bodies only (email_reply_parser fixtures, a digest body, images and sounds in the
# stdlib data): quarantine is the right answer for them.
NOT_MESSAGES = {"email_reply_parser", "msg_19.txt"}
NOT_MAIL_SUFFIXES = {".bmp", ".exr", ".gif", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".ras", ".sgi", ".tiff",
                     ".webp", ".xbm", ".aifc", ".aiff", ".au", ".wav"}  # fmt: skip


def corpus(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.name not in {"LICENSE", "LICENSE.txt", "README.md"}
    )


def expected_to_parse(path: Path) -> bool:
    return not (NOT_MESSAGES & {path.name, path.parent.name} or path.suffix in NOT_MAIL_SUFFIXES)


def outcome(path: Path) -> ParsedMessage | QuarantineError:
    try:
        return parse_message(path.read_bytes())
    except QuarantineError as exc:
        return exc


def event_for(parsed: ParsedMessage) -> MailReceived:
    return parsed.to_event(
        tenant_id="t1",
        user_id="u1",
        mailbox_id="mbx_1",
        folder="INBOX",
        uidvalidity=1,
        uid=1,
        raw_ref="sync:raw_messages/mbx_1:INBOX:1:1",
    )


@pytest.mark.parametrize("root", [REAL_MAIL, CPYTHON_EMAIL_DATA], ids=["real-mail", "cpython-email-data"])
def test_every_corpus_file_parses_or_is_quarantined_with_a_reason(root: Path) -> None:
    files = corpus(require_corpus(root))
    unexpected: list[str] = []
    parsed_count = 0
    for path in files:
        result = outcome(path)
        if isinstance(result, QuarantineError):
            assert result.reason and str(result), path
            if expected_to_parse(path):
                unexpected.append(f"{path.relative_to(root)}: {result}")
            continue
        parsed_count += 1
        assert result.size_bytes == path.stat().st_size
        assert len(result.content_hash) == 64
        event_for(result)  # every parsed message makes a valid event (length caps, UTC dates, addresses)
        if not expected_to_parse(path):
            unexpected.append(f"{path.relative_to(root)}: parsed, but it is not a message")
    assert unexpected == []
    assert parsed_count > 0


def test_real_bounces_carry_report_type_and_delivery_status() -> None:
    bsd = require_corpus(REAL_MAIL / "sisimai" / "maildir" / "bsd")
    reports = [r for r in (outcome(p) for p in sorted(bsd.glob("*.eml"))) if isinstance(r, ParsedMessage)]
    with_status = [r for r in reports if r.report_type == "delivery-status"]
    assert len(with_status) > 100
    assert sum(1 for r in with_status if r.delivery_status and "Status:" in r.delivery_status) > 0.9 * len(
        with_status
    )


def test_real_auto_replies_expose_auto_submitted() -> None:
    replies = sorted(require_corpus(REAL_MAIL / "sisimai" / "maildir" / "bsd").glob("rfc3834-*.eml"))
    assert replies
    parsed = [outcome(p) for p in replies]
    assert all(isinstance(p, ParsedMessage) for p in parsed)
    assert any("auto-submitted" in p.headers for p in parsed if isinstance(p, ParsedMessage))


@pytest.mark.parametrize("root", [REAL_MAIL, CPYTHON_EMAIL_DATA], ids=["real-mail", "cpython-email-data"])
def test_single_part_shortcut_gives_what_the_whole_parse_gives(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_structure`` parses only the header block of a single-part message; on every corpus file the result
    (fields, text, defects, quarantine reason) equals the feed parser's over the whole message."""
    files = [p for p in corpus(require_corpus(root)) if p.suffix not in NOT_MAIL_SUFFIXES]
    shortcut = [outcome(p) for p in files]
    monkeypatch.setattr(message_module, "_structure", message_module._PARSER.parsebytes)
    whole = [outcome(p) for p in files]
    differing = [
        str(path.relative_to(root))
        for path, a, b in zip(files, shortcut, whole, strict=True)
        if (a.model_dump() if isinstance(a, ParsedMessage) else (a.reason, a.detail))
        != (b.model_dump() if isinstance(b, ParsedMessage) else (b.reason, b.detail))
    ]
    assert differing == []
