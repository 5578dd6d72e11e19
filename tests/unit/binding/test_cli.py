"""``laifaxin-mail providers detect`` and ``errors explain``: one JSON object each, through main(argv) and once
through the installed console script."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from laifaxin_cli.main import main
from tests.support.dns_server import LoopbackDNS
from tests.unit.binding.autoconfig_http import AutoconfigHTTP

ROOT = Path(__file__).resolve().parents[3]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_detect_offline_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(["providers", "detect", "someone@163.com", "--offline"], capsys)
    assert code == 0
    assert data["provider"] == "netease"
    assert data["imap"] == {"host": "imap.163.com", "port": 993, "security": "ssl"}
    assert data["smtp"] == {"host": "smtp.163.com", "port": 465, "security": "ssl"}
    assert data["username"] == "someone@163.com"
    assert data["password_type"] == "app_password"
    assert data["auth"] == "password"
    assert data["source"] == "catalog"
    assert data["needs_confirmation"] is False
    help_ = data["password_help"]
    assert isinstance(help_, dict) and "授权码" in help_["label"]["zh"]
    assert "imap_id_required" in {q["code"] for q in data["quirks"]}  # type: ignore[union-attr]


def test_detect_through_loopback_dns(
    capsys: pytest.CaptureFixture[str], dns_server: LoopbackDNS, http_server: AutoconfigHTTP
) -> None:
    dns_server.set_records({("acme.example", "MX"): ["10 qiye163mx01.mxmail.netease.com."]})
    code, data = _run(
        [
            "providers",
            "detect",
            "a@acme.example",
            "--nameserver",
            f"{dns_server.host}:{dns_server.port}",
            "--autoconfig-base-url",
            http_server.base_url,
        ],
        capsys,
    )
    assert code == 0
    assert (data["provider"], data["source"]) == ("netease_qiye", "mx")


def test_detect_bad_email(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers", "detect", "not-an-address", "--offline"]) == 2
    assert "not an email" in capsys.readouterr().err


def test_show_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(["providers", "show", "tencent_exmail"], capsys)
    assert code == 0 and data["id"] == "tencent_exmail"
    assert main(["providers", "show", "nope"]) == 1


def test_errors_explain_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(["errors", "explain", "--protocol", "imap", "ERR.LOGIN.IPDENY"], capsys)
    assert code == 0
    assert data["code"] == "ip_denied"
    assert data["message"] and data["fix"] and data["message_zh"] and data["fix_zh"]


def test_errors_explain_with_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(
        [
            "errors",
            "explain",
            "--protocol",
            "smtp",
            "--provider",
            "netease",
            "535 Error: authentication failed",
        ],
        capsys,
    )
    assert code == 0
    assert data["code"] == "auth_failed"
    assert "POP3/SMTP/IMAP" in str(data["fix"])


def test_errors_explain_stdin_gbk(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = "535 Error: 请使用授权码登录。".encode("gbk")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, data = _run(["errors", "explain", "--protocol", "smtp", "-"], capsys)
    assert code == 0
    assert data["code"] == "app_password_required"
    assert "请使用授权码登录" in str(data["server_text"])


def test_console_script_end_to_end() -> None:
    result = subprocess.run(
        ["uv", "run", "--quiet", "laifaxin-mail", "errors", "explain", "--protocol", "imap", "-"],
        input=b"NO [ALERT] Too many simultaneous connections. (Failure)",
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["code"] == "too_many_connections"


def test_list_providers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers", "list"]) == 0
    data = json.loads(capsys.readouterr().out)
    ids = {entry["id"] for entry in data}
    assert {"netease_qiye", "tencent_exmail", "qq", "outlook"} <= ids


def test_mailbox_token_mints_binding_tokens_within_the_maximum_lifetime(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mailbox token`` signs with BINDING_JWT_SECRET for binding's audience; a lifetime binding would refuse is
    not minted; ``--admin`` sets the role."""
    from laifaxin_binding.settings import BindingSettings
    from laifaxin_shared.auth import InvalidTokenError, TokenVerifier

    secret = "cli-test-jwt-secret-0123456789abcdef0123"
    monkeypatch.setenv("BINDING_JWT_SECRET", secret)
    assert main(["mailbox", "token", "--tenant", "acme", "--user", "u1", "--admin"]) == 0
    token = capsys.readouterr().out.strip()
    who = BindingSettings().token_verifier().decode(token)
    assert (who.tenant_id, who.user_id, who.is_admin) == ("acme", "u1", True)
    with pytest.raises(InvalidTokenError, match="InvalidAudienceError"):
        TokenVerifier(secret, "laifaxin-notify").decode(token)  # not a notify token
    assert main(["mailbox", "token", "--tenant", "acme", "--user", "u1", "--ttl", str(30 * 86400)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "BINDING_JWT_MAX_LIFETIME_SECONDS" in captured.err
