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


# --- protocol payloads, encodings and keys -------------------------------------------------------------------

PW = 'p"w\\d-Secret9'
"""A password with both characters IMAP quoting escapes (RFC 3501 4.3)."""
QUOTED = PW.replace("\\", "\\\\").replace('"', '\\"')
AIOIMAPLIB_LINE = "Sending : %s" % (f'A001 LOGIN user@x.cn "{QUOTED}"\r\n'.encode(),)  # noqa: UP031  # as aioimaplib logs it


@pytest.mark.parametrize(
    ("text", "leaks"),
    [
        # IMAP LOGIN, quoted (as aioimaplib sends it) and as aioimaplib logs it (a bytes repr)
        (f'A001 LOGIN user@x.cn "{QUOTED}"\r\n', ["Secret9", QUOTED]),
        (AIOIMAPLIB_LINE, ["Secret9"]),
        # IMAP LOGIN with literals (RFC 3501 4.3, LITERAL+ RFC 7888)
        ("A1 LOGIN user {9}\r\npassword9\r\n", ["password9"]),
        ("A1 LOGIN {4+}\r\nuser {9+}\r\npassword9\r\nA2 SELECT INBOX", ["password9"]),
        ("b'A1 LOGIN user {9}\\r\\npassword9\\r\\n'", ["password9"]),
        # SASL: IMAP AUTHENTICATE PLAIN with an initial response (RFC 4959), and its continuation line
        ("A1 AUTHENTICATE PLAIN AHVzZXIAaHVudGVyMjI=\r\n", ["AHVzZXIAaHVudGVyMjI="]),
        ("Sending : b'AHVzZXIAaHVudGVyMjI=\\r\\n'", ["AHVzZXIAaHVudGVyMjI="]),
        (
            "A1 AUTHENTICATE XOAUTH2 dXNlcj11AWF1dGg9QmVhcmVyIHlhMjkuYQEB",
            ["dXNlcj11AWF1dGg9QmVhcmVyIHlhMjkuYQEB"],
        ),
        # SMTP (RFC 4954) and POP3 (RFC 1939, RFC 5034)
        ("AUTH PLAIN AHVzZXIAaHVudGVyMjI=", ["AHVzZXIAaHVudGVyMjI="]),
        ("AUTH LOGIN dXNlcg==\r\n334 UGFzc3dvcmQ6\r\naHVudGVyMjI=\r\n", ["aHVudGVyMjI="]),
        ("PASS hunter22 with space\r\nSTAT", ["hunter22", "with space"]),
        # URL-encoded pairs, JSON pairs with escaped quotes, other key names
        ("body=user%3Da%26password%3Dhunter22%26x%3D1", ["hunter22"]),
        ("state=%7B%22token%22%3A%22tok-123456%22%7D", ["tok-123456"]),
        ('{"password": "a\\"hunter22"}', ["hunter22"]),
        ("pwd=hunter22 next", ["hunter22"]),
        ("encoding_aes_key=abcdefghijk1234567890 ok", ["abcdefghijk1234567890"]),
        ("secret: s3cr3t-value", ["s3cr3t-value"]),
        ("authorization=Basic dXNlcjpodW50ZXIy", ["dXNlcjpodW50ZXIy"]),
    ],
)
def test_protocol_payloads_are_masked(text: str, leaks: list[str]) -> None:
    out = redact_text(text)
    assert REDACTED in out
    for leak in leaks:
        assert leak not in out, out


@pytest.mark.parametrize(
    "text",
    [
        "a1 NO LOGIN Login error or password error",  # a server's reply keeps its words
        "A2 OK [READ-WRITE] SELECT completed",
        "* CAPABILITY IMAP4rev1 AUTH=PLAIN LITERAL+",
        "mailbox bound mbx_01JD5X6Q8ZK3",
    ],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "key", ["pwd", "auth", "encoding_aes_key", "secret", "token", "authorization", "smtp_auth"]
)
def test_secret_key_names(key: str) -> None:
    assert redact({key: "value", "user": "u"}) == {key: REDACTED, "user": "u"}


def test_bytes_values_are_redacted() -> None:
    line = b'A001 LOGIN user "hunter22"\r\n'
    out = redact({"sent": line, "list": [b"password=hunter22"], "plain": b"\x00\x01 no secret"})
    assert "hunter22" not in str(out)
    assert out["plain"] == b"\x00\x01 no secret"


def test_known_secrets_in_every_form() -> None:
    text = f"raw {PW} quoted {QUOTED} repr {QUOTED.replace(chr(92), chr(92) * 2)} url p%22w%5Cd-Secret9"
    out = redact_text(text, [PW])
    assert "Secret9" not in out


def test_protocol_library_loggers_are_filtered_for_every_handler() -> None:
    """aioimaplib's own logger carries the filter, so even a handler we did not configure sees masked text."""
    logger = logging.getLogger("aioimaplib.aioimaplib")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep(logging.DEBUG)
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("Sending : %s", f'A1 LOGIN u "{QUOTED}"\r\n'.encode())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert seen and "Secret9" not in seen[0] and "LOGIN [REDACTED]" in seen[0]


def test_errors_redact_uses_the_same_secret_forms() -> None:
    from laifaxin_shared.providers.errors import redact as redact_reply

    assert (
        redact_reply(f'A1 NO [AUTHENTICATIONFAILED] "{QUOTED}"', [PW]) == 'A1 NO [AUTHENTICATIONFAILED] "***"'
    )
