"""``laifaxin-mail classify``: .eml, directory, Maildir, mbox and stdin, one JSON line per message."""

from __future__ import annotations

import io
import json
import mailbox
import sys
from pathlib import Path

import pytest

from laifaxin_cli.main import main

from .conftest import make_eml
from .test_message import DSN

INQUIRY = make_eml("Please send your best price for 500 pcs and the MOQ.")
OOO = make_eml("I am out of the office until 2 December.", subject="Automatic reply: LED panels")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]]]:
    code = main(["classify", *args])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def test_single_eml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.eml"
    f.write_bytes(INQUIRY)
    code, lines = run(capsys, str(f))
    assert code == 0
    assert lines == [
        {**lines[0], "path": str(f), "category": "inquiry"},
    ]
    assert set(lines[0]) == {"path", "category", "confidence", "reasons", "language"}


def test_directory_of_eml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "1.eml").write_bytes(INQUIRY)
    (tmp_path / "2.eml").write_bytes(DSN)
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    code, lines = run(capsys, str(tmp_path))
    assert code == 0
    assert [line["category"] for line in lines] == ["inquiry", "bounce"]


def test_maildir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = mailbox.Maildir(tmp_path / "Maildir", create=True)
    md.add(OOO)
    md.add(DSN)
    code, lines = run(capsys, str(tmp_path / "Maildir"), "--details")
    assert code == 0
    assert sorted(str(line["category"]) for line in lines) == ["bounce", "ooo"]
    assert all("key" in line and "snippet" in line for line in lines)


def test_mbox_with_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    box = mailbox.mbox(tmp_path / "inbox.mbox", create=True)
    box.add(INQUIRY)
    box.add(OOO)
    box.flush()
    code, lines = run(capsys, str(tmp_path / "inbox.mbox"))
    assert code == 0
    assert [(line["index"], line["category"]) for line in lines] == [(0, "inquiry"), (1, "ooo")]


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(OOO)))
    code, lines = run(capsys, "-")
    assert code == 0 and lines[0]["path"] == "-" and lines[0]["category"] == "ooo"


def test_missing_path_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", str(tmp_path / "nope.eml")]) == 1
    assert "FileNotFoundError" in capsys.readouterr().err
