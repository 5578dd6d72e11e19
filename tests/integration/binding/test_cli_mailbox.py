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


def test_cli_edit_changes_what_the_api_can_with_the_same_verification(
    served: str,
    binding_settings: BindingSettings,
    mail_account: MailAccount,
    infra_module: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    from tests.conftest import wait_until_login_works

    monkeypatch.setenv("LAIFAXIN_API_URL", served)
    monkeypatch.setenv("LAIFAXIN_TOKEN", issue_token(binding_settings, "tenant-cli-edit", "u_cli"))
    imaps = f"{mail_account.host}:{mail_account.imaps_port}:ssl"
    servers = ["--imap", imaps, "--smtp", f"{mail_account.host}:{mail_account.smtp_port}:starttls"]
    code, data, _ = run(
        capsys, monkeypatch, ["mailbox", "add", mail_account.email, *servers], mail_account.password + "\n"
    )
    assert code == 0, data
    mid = data["id"]

    # settings that need no verification
    code, data, _ = run(
        capsys,
        monkeypatch,
        ["mailbox", "edit", mid, "--nickname", "Sales", "--interval", "600", "--sync", "off"],
    )
    assert code == 0, data
    assert data["nickname"] == "Sales" and data["sync"]["interval_seconds"] == 600
    assert data["sync"]["enabled"] is False and data["sync"]["initial_window_days"] == 30
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "edit", mid, "--sync", "on"])
    assert code == 0 and data["sync"] == {"enabled": True, "interval_seconds": 600, "initial_window_days": 30}
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "edit", mid, "--expires", "2027-05-21"])
    assert code == 0 and data["credential_expires_at"].startswith("2027-05-20T16:00:00")

    # the API's own refusals come through with their code and fix
    code, data, err = run(capsys, monkeypatch, ["mailbox", "edit", mid, "--interval", "60"])
    assert code == 1 and data["code"] == "sync_interval_too_short" and "fix:" in err
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "edit", mid])
    assert code == 2

    # a new authorization code: a wrong one changes nothing, the right one verifies and is saved
    new_password = "new code " + mail_account.password[-6:]
    infra_module.add_user(mail_account.email, new_password, Path(mail_account.servers.mail["passwd_file"]))
    wait_until_login_works(MailAccount(mail_account.email, new_password, mail_account.servers))
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "edit", mid, "--password"], "wrong-one\n")
    assert code == 1 and data["code"] == "auth_failed" and "wrong-one" not in json.dumps(data)
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "edit", mid, "--password"], new_password + "\n")
    assert code == 0 and data["status"] == "normal"

    # another server needs the password again (never sent to a new place without it), then verifies
    starttls = ["--imap", f"{mail_account.host}:{mail_account.imap_port}:starttls"]
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "edit", mid, *starttls])
    assert code == 1 and data["code"] == "password_required"
    code, data, _ = run(
        capsys, monkeypatch, ["mailbox", "edit", mid, *starttls, "--password"], new_password + "\n"
    )
    assert code == 0 and data["imap"]["port"] == mail_account.imap_port
    assert data["imap"]["security"] == "starttls"
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "verify", mid])
    assert code == 0 and data["status"] == "normal"
