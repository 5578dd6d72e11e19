from __future__ import annotations

import json
import logging

import pytest

from laifaxin_shared.logging import REDACTED, configure_logging, get_logger, redact, redact_text


def test_secret_keys_are_redacted_at_any_depth() -> None:
    out = redact({"user": "a", "password": "hunter2", "nested": {"api_key": "k", "list": [{"token": "t"}]}})
    assert out == {
        "user": "a",
        "password": REDACTED,
        "nested": {"api_key": REDACTED, "list": [{"token": REDACTED}]},
    }


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("login failed password=hunter2 for a@b.c", "hunter2"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def", "eyJhbGciOiJIUzI1NiJ9"),
        ("mongodb://admin:s3cr3t@db:27017/", "s3cr3t"),
        ('app_password: "abcd efgh"', "abcd efgh"),
    ],
)
def test_inline_secrets_are_masked(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_log_lines_are_json_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-svc", "INFO", json=True)
    get_logger("t").info("imap login", user="a@b.c", password="hunter2", detail="retry with password=hunter2")
    logging.getLogger("aiokafka.x").warning("stdlib line token=abc123")
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert lines[0]["service"] == "test-svc" and lines[0]["event"] == "imap login"
    assert lines[0]["password"] == REDACTED
    joined = json.dumps(lines)
    assert "hunter2" not in joined and "abc123" not in joined
