"""``laifaxin-mail mailbox add you@outlook.com``: the CLI sees that the provider signs in with OAuth, prints the
address to open, and waits for the binding; the user's browser (driven here through the real Hydra's login and
consent pages) ends at the binding service's own callback, served by uvicorn on a real port."""

from __future__ import annotations

import threading

import httpx
import pytest
from pydantic import SecretStr

from laifaxin_binding.auth import issue_token
from laifaxin_binding.settings import BindingSettings
from tests.conftest import MailAccount
from tests.integration.binding.test_cli_mailbox import run, served  # noqa: F401  (fixture)
from tests.integration.binding.test_oauth_sign_in import SCOPES, hydra  # noqa: F401  (fixture)
from tests.support.oauth import Hydra

pytestmark = pytest.mark.integration


def test_cli_add_signs_in_with_microsoft_and_waits_for_the_binding(
    served: str,  # noqa: F811
    binding_settings: BindingSettings,
    mail_account: MailAccount,
    hydra: Hydra,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = served
    redirect = f"{url}/v1/oauth/callback"
    client = hydra.create_client(redirect, scopes=SCOPES, name="Laifaxin CLI test")
    binding_settings.oauth_redirect_uris = redirect
    binding_settings.oauth_microsoft_client_id = client.client_id
    binding_settings.oauth_microsoft_client_secret = SecretStr(client.client_secret)
    binding_settings.oauth_microsoft_authority = hydra.issuer
    binding_settings.oauth_microsoft_authorize_params = "response_mode=query"
    landed: list[httpx.Response] = []

    def browser(address: str) -> bool:
        def user() -> None:
            final = hydra.sign_in(address, mail_account.email)
            landed.append(httpx.get(final, timeout=60))  # the browser arrives at binding's callback

        threading.Thread(target=user, daemon=True).start()
        return True

    monkeypatch.setattr("laifaxin_binding.cli.webbrowser.open", browser)
    monkeypatch.setenv("LAIFAXIN_API_URL", url)
    monkeypatch.setenv("LAIFAXIN_TOKEN", issue_token(binding_settings, "tenant-cli", "u_cli"))
    argv = [
        "mailbox",
        "add",
        mail_account.email,
        "--provider",
        "outlook",
        "--imap",
        f"{mail_account.host}:{mail_account.imaps_port}:ssl",
        "--smtp",
        f"{mail_account.host}:{mail_account.smtp_port}:starttls",
        "--poll",
        "0.5",
    ]
    capsys.readouterr()  # the app's start-up logs
    code, data, err = run(capsys, monkeypatch, argv)
    assert code == 0, err
    assert data["email"] == mail_account.email and data["auth"] == "oauth2" and data["status"] == "normal"
    assert "signs in with Microsoft" in err and f"{hydra.public}/oauth2/auth?" in err
    assert landed and landed[0].status_code == 200 and "Mailbox bound" in landed[0].text


def test_cli_refuses_password_prompt_for_outlook_without_setup(
    served: str,  # noqa: F811
    binding_settings: BindingSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the operator's Microsoft registration the CLI says so (no password is asked)."""
    url = served
    monkeypatch.setenv("LAIFAXIN_API_URL", url)
    monkeypatch.setenv("LAIFAXIN_TOKEN", issue_token(binding_settings, "tenant-cli", "u_cli"))
    capsys.readouterr()
    code, data, _ = run(capsys, monkeypatch, ["mailbox", "add", "someone@outlook.com", "--no-browser"])
    assert code == 1 and data["code"] == "oauth_not_configured"
    assert "BINDING_OAUTH_MICROSOFT_CLIENT_ID" in data["fix"]
