"""``laifaxin-mail mailbox add|list|verify|remove`` against the binding service served by uvicorn (a real
HTTP port) on the real Kafka, FerretDB, Dovecot and SMTP servers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from laifaxin_binding.app import create_app
from laifaxin_binding.auth import issue_token
from laifaxin_binding.settings import BindingSettings
from laifaxin_cli.main import main
from tests.conftest import MailAccount
from tests.support.loopback import served_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture
def served(binding_settings: BindingSettings) -> Iterator[str]:
    """The app on 127.0.0.1:<free port> in a thread; yields its base URL."""
    with served_in_thread(create_app(binding_settings)) as url:
        yield url


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = ""
) -> tuple[int, Any, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_cli_binds_lists_reverifies_and_removes(
    served: str,
    binding_settings: BindingSettings,
    mail_account: MailAccount,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAIFAXIN_API_URL", served)
    monkeypatch.setenv("LAIFAXIN_TOKEN", issue_token(binding_settings, "tenant-cli", "u_cli"))
    servers = [
        "--imap",
        f"{mail_account.host}:{mail_account.imaps_port}:ssl",
        "--smtp",
        f"{mail_account.host}:{mail_account.smtp_port}:starttls",
    ]

    code, data, err = run(
        capsys, monkeypatch, ["mailbox", "add", mail_account.email, *servers], "wrong-pass\n"
    )
    assert code == 1 and data["code"] == "auth_failed"
    assert "fix:" in err and "wrong-pass" not in err + json.dumps(data)

    code, data, _ = run(
        capsys,
        monkeypatch,
        ["mailbox", "add", mail_account.email, *servers, "--nickname", "cli"],
        mail_account.password + "\n",
    )
    assert code == 0, data
    mailbox_id = data["id"]
    assert data["status"] == "normal" and data["nickname"] == "cli"

    code, data, _ = run(capsys, monkeypatch, ["mailbox", "list"])
    assert code == 0 and [m["id"] for m in data["items"]] == [mailbox_id]

    code, data, _ = run(capsys, monkeypatch, ["mailbox", "verify", mailbox_id])
    assert code == 0 and data["status"] == "normal"

    code, data, _ = run(capsys, monkeypatch, ["mailbox", "remove", mailbox_id])
    assert code == 0 and data is None
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "verify", mailbox_id])
    assert code == 1 and data["code"] == "not_found"


def test_cli_without_a_token_gets_unauthorized(
    served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAIFAXIN_TOKEN", raising=False)
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "--api", served, "list"])
    assert code == 1 and data["code"] == "unauthorized"
