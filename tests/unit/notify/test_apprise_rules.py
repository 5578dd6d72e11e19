"""Apprise channel rules without a network: URL validation and redaction, sealing, errcode and status mapping."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest

from laifaxin_notify.channels.apprise import (
    SCHEMES,
    AppriseSender,
    AppriseUrlError,
    _sending,
    alert_text,
    classify_apprise_failure,
    classify_wecom_errcode,
    cut_utf8,
    redact,
)
from laifaxin_notify.models import AlertContent
from laifaxin_notify.settings import NotifySettings
from laifaxin_notify.store import Binding
from laifaxin_shared.crypto import CredentialDecryptError, KeyRing
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


@pytest.fixture
async def sender() -> AsyncIterator[AppriseSender]:
    s = AppriseSender(keyring=KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0"), host_allowlist="127.0.0.0/8")
    yield s
    await s.aclose()


@pytest.mark.parametrize(
    ("url", "scheme", "display"),
    [
        (f"wecombot://{KEY}", "wecombot", "wecombot://qyapi.weixin.qq.com/****"),
        (
            f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}",
            "wecombot",
            "wecombot://qyapi.weixin.qq.com/****",
        ),
        ("dingtalk://a1b2c3d4e5f6/", "dingtalk", "dingtalk://oapi.dingtalk.com/****"),
        ("feishu://a1b2c3d4e5f6/", "feishu", "feishu://open.feishu.cn/****"),
        ("lark://a1b2c3d4e5f6", "lark", "lark://open.larksuite.com/****"),
        ("tgram://123456789:AABBccddEEffgghh/12345", "tgram", "tgram://api.telegram.org/****"),
        (
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#alerts",
            "slack",
            "slack://hooks.slack.com/****",
        ),
        ("json://user:pw@127.0.0.1:8080/hook/s3cr3t", "json", "json://127.0.0.1:8080/****"),
        ("form://127.0.0.1/a/b?-token=s3cr3t", "form", "form://127.0.0.1/****"),
    ],
)
async def test_supported_urls_are_parsed_and_redacted(
    sender: AppriseSender, url: str, scheme: str, display: str
) -> None:
    target = await sender.inspect(url)
    assert (target.scheme, target.display) == (scheme, display)
    assert KEY not in repr(target) and "s3cr3t" not in repr(target)
    if scheme == "wecombot":
        assert target.wecom_key == KEY


@pytest.mark.parametrize(
    "url", ["xml://example.com/", "mailto://a:b@gmail.com", "https://example.com/x", "nope"]
)
async def test_unsupported_scheme_lists_the_supported_ones(sender: AppriseSender, url: str) -> None:
    with pytest.raises(AppriseUrlError) as err:
        await sender.inspect(url)
    assert err.value.code == "unsupported_apprise_scheme"
    for scheme in SCHEMES:
        assert f"{scheme}://" in str(err.value)
    assert url not in str(err.value)


@pytest.mark.parametrize("url", ["tgram://not-a-token", "wecombot://", "wecombot://bad key!", "x" * 3000, ""])
async def test_malformed_urls_are_refused_without_echo(sender: AppriseSender, url: str) -> None:
    with pytest.raises(AppriseUrlError) as err:
        await sender.inspect(url)
    assert err.value.code in ("invalid_apprise_url", "unsupported_apprise_scheme")
    secret = url.partition("://")[2]
    assert not secret or secret not in str(err.value)


@pytest.mark.parametrize(
    "url",
    ["json://10.0.0.8/hook", "jsons://169.254.169.254/latest", "form://[::1]:8080/x", "json://0.0.0.0/"],
)
async def test_generic_webhooks_to_private_addresses_are_refused(sender: AppriseSender, url: str) -> None:
    with pytest.raises(AppriseUrlError) as err:
        await sender.inspect(url)
    assert err.value.code == "host_not_allowed"


async def test_loopback_needs_the_allowlist() -> None:
    strict = AppriseSender(keyring=KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0"))
    try:
        with pytest.raises(AppriseUrlError):
            await strict.inspect("json://127.0.0.1:9/hook")
        assert (await strict.inspect(f"wecombot://{KEY}")).scheme == "wecombot"  # a provider's fixed host
    finally:
        await strict.aclose()


def test_sealed_url_opens_only_for_its_binding(sender: AppriseSender) -> None:
    url = f"wecombot://{KEY}"
    data = {"credential": sender.seal(url, tenant_id="t1", user_id="u1", target_id="b1")}
    assert KEY not in json.dumps(data)
    assert sender.open(Binding("t1", "u1", "apprise", "b1", data)) == url
    for other in (
        Binding("t2", "u1", "apprise", "b1", data),
        Binding("t1", "u2", "apprise", "b1", data),
        Binding("t1", "u1", "apprise", "b2", data),
    ):
        with pytest.raises(CredentialDecryptError) as err:
            sender.open(other)
        assert KEY not in str(err.value)


@pytest.mark.parametrize(
    ("errcode", "kind", "dead", "binding", "retry_after"),
    [
        (0, "sent", False, None, None),
        (-1, "retry", False, None, None),
        (45009, "retry", False, None, 60.0),
        (93000, "failed", True, "disable", None),
        (40008, "failed", True, None, None),
        (44004, "failed", True, None, None),
        (12345, "failed", True, None, None),
    ],
)
def test_wecom_errcodes(
    errcode: int, kind: str, dead: bool, binding: str | None, retry_after: float | None
) -> None:
    outcome = classify_wecom_errcode(errcode, "msg")
    assert (outcome.kind, outcome.dead_letter, outcome.binding_action, outcome.retry_after_s) == (
        kind,
        dead,
        binding,
        retry_after,
    )
    if errcode:
        assert str(errcode) in outcome.detail


@pytest.mark.parametrize(
    ("messages", "kind", "dead"),
    [
        (["Failed to send JSON POST notification: Service Unavailable, error=503."], "retry", False),
        (["Failed to send JSON POST notification: Too Many Requests, error=429."], "retry", False),
        (["Failed to send Form POST notification: Not Found, error=404."], "failed", True),
        (["Lark notification failed: 400 - bad"], "failed", True),
        (["A Connection error occurred sending JSON notification to 127.0.0.1."], "retry", False),
        ([], "retry", False),
    ],
)
def test_apprise_failures_by_status(messages: list[str], kind: str, dead: bool) -> None:
    outcome = classify_apprise_failure(messages, "json")
    assert (outcome.kind, outcome.dead_letter) == (kind, dead)
    assert "127.0.0.1" not in outcome.detail


def test_redaction_never_shows_path_query_or_user() -> None:
    assert redact("json", "hooks.example.com", 8443) == "json://hooks.example.com:8443/****"
    assert redact("dingtalk", "TOKEN", None) == "dingtalk://oapi.dingtalk.com/****"


def test_text_fits_wecom_bytes() -> None:
    title, body = alert_text(
        AlertContent(
            title="新询盘", sender="张伟", subject="报价", snippet="请报价" * 600, url="https://app/m/1"
        )
    )
    assert title == "新询盘" and body.startswith("张伟: 报价\n请报价")
    cut = cut_utf8(f"{title}\n{body}", 2048)
    assert len(cut.encode()) <= 2048 and cut.endswith("…")
    assert cut_utf8("short", 2048) == "short"


def test_apprise_logger_is_detached_from_the_service_logs(sender: AppriseSender) -> None:
    logger = logging.getLogger("apprise")
    assert logger.propagate is False and logger.level == logging.WARNING
    record = logger.makeRecord("apprise", logging.ERROR, __file__, 1, "Could not load %s", (KEY,), None)
    assert logger.filter(record) is False  # captured and dropped: no handler ever sees it


async def test_http_client_lines_are_masked_while_a_url_is_sent(sender: AppriseSender) -> None:
    url = "json://user:pa55word@127.0.0.1:8080/hooks/s3cr3t-path?-token=s3cr3t-query"
    target = await sender.inspect(url)
    secrets = target.secrets(url)
    assert {"pa55word", "/hooks/s3cr3t-path", "s3cr3t-query"} <= set(secrets) and "127.0.0.1" not in secrets
    http_logger = logging.getLogger("urllib3.connectionpool")
    line = '%s://%s:%s "%s %s %s" %s %s'
    args = ("http", "127.0.0.1", 8080, "POST", "/hooks/s3cr3t-path?token=s3cr3t-query", "HTTP/1.1", 200, 2)
    record = http_logger.makeRecord(http_logger.name, logging.DEBUG, __file__, 1, line, args, None)
    token = _sending.set(secrets)
    try:
        assert http_logger.filter(record)
    finally:
        _sending.reset(token)
    assert "s3cr3t" not in record.getMessage() and "127.0.0.1:8080" in record.getMessage()
    untouched = http_logger.makeRecord(http_logger.name, logging.DEBUG, __file__, 1, line, args, None)
    assert http_logger.filter(untouched) and "s3cr3t-query" in untouched.getMessage()  # not while sending


def test_settings_defaults() -> None:
    s = NotifySettings(environment="test")
    assert s.apprise_enabled and s.wecom_bot_api_base == "https://qyapi.weixin.qq.com"
    assert s.apprise_max_urls_per_user == 10 and s.host_allowlist == ""
