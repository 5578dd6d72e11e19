"""Apprise channel rules without a network: URL validation and redaction, sealing, errcode and status mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest

from laifaxin_notify.channels.apprise import (
    DINGTALK,
    FEISHU,
    LARK,
    ROBOT_BODY_BYTES,
    SCHEMES,
    WECOM,
    AppriseSender,
    AppriseUrlError,
    _feishu_code_of,
    _sending,
    alert_text,
    classify_apprise_failure,
    classify_dingtalk_errcode,
    classify_feishu_code,
    classify_wecom_errcode,
    cut_utf8,
    dingtalk_sign,
    feishu_sign,
    redact,
)
from laifaxin_notify.channels.base import Outcome
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


def decision(outcome: Outcome) -> tuple[str, bool, str | None, float | None, bool]:
    """What a robot answer decides: kind, dead letter, binding action, retry delay (s), operator alert."""
    return (outcome.kind, outcome.dead_letter, outcome.binding_action, outcome.retry_after_s, outcome.alert)


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
    assert decision(outcome)[:4] == (kind, dead, binding, retry_after)
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
    assert (s.dingtalk_api_base, s.feishu_api_base, s.lark_api_base) == (
        "https://oapi.dingtalk.com",
        "https://open.feishu.cn",
        "https://open.larksuite.com",
    )
    assert (s.dingtalk_rate_limit_delay_s, s.feishu_rate_limit_delay_s) == (600.0, 60.0)


# DingTalk and Feishu/Lark robots ---------------------------------------------------------------------------
DING_SECRET = "SEC0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "scheme", "token", "secret"),
    [
        (f"dingtalk://{DING_SECRET}@a1b2c3d4e5f6/", "dingtalk", "a1b2c3d4e5f6", DING_SECRET),
        (f"dingtalk://a1b2c3d4e5f6/?secret={DING_SECRET}", "dingtalk", "a1b2c3d4e5f6", DING_SECRET),
        ("dingtalk://a1b2c3d4e5f6/", "dingtalk", "a1b2c3d4e5f6", ""),
        ("feishu://Fs3cr3tKey99@b8f2a3c4-1111-2222", "feishu", "b8f2a3c4-1111-2222", "Fs3cr3tKey99"),
        (
            "feishu://b8f2a3c4-1111-2222?secret=Fs3cr3t%2BKey%2F9",
            "feishu",
            "b8f2a3c4-1111-2222",
            "Fs3cr3t+Key/9",
        ),
        ("lark://Ls3cr3tKey99@c9e1d2f3-4a5b", "lark", "c9e1d2f3-4a5b", "Ls3cr3tKey99"),
        ("https://open.larksuite.com/open-apis/bot/v2/hook/c9e1d2f3-4a5b", "lark", "c9e1d2f3-4a5b", ""),
    ],
)
async def test_robot_tokens_and_signing_secrets_are_parsed_and_hidden(
    sender: AppriseSender, url: str, scheme: str, token: str, secret: str
) -> None:
    target = await sender.inspect(url)
    assert (target.scheme, target.robot_token, target.robot_secret) == (scheme, token, secret)
    assert target.display == f"{scheme}://{SCHEMES[scheme]}/****"
    assert token not in repr(target) and (not secret or secret not in repr(target))
    assert {token, *([secret] if secret else [])} <= set(target.secrets(url))


def test_dingtalk_signature_matches_apprise_and_the_documented_recipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from apprise.plugins.dingtalk import NotifyDingTalk

    monkeypatch.setattr("apprise.plugins.dingtalk.time.time", lambda: 1_700_000_000.123)
    plugin = NotifyDingTalk(token="a1b2c3d4e5f6", secret=DING_SECRET)
    timestamp, quoted = plugin.get_signature()
    assert timestamp == "1700000000123"
    assert dingtalk_sign(1_700_000_000_123, DING_SECRET) == urllib.parse.unquote(quoted)
    # DingTalk's sample: HmacSHA256 keyed by the secret over "timestamp\nsecret", base64, then urlEncode once
    mac = hmac.new(DING_SECRET.encode(), f"1700000000123\n{DING_SECRET}".encode(), hashlib.sha256)
    assert dingtalk_sign(1_700_000_000_123, DING_SECRET) == base64.b64encode(mac.digest()).decode()


def test_feishu_signature_follows_the_documented_recipe() -> None:
    # Feishu's Python sample: hmac.new(f"{timestamp}\n{secret}".encode(), digestmod=sha256) over no message
    mac = hmac.new(b"1599360473\ndemo", digestmod=hashlib.sha256)
    assert feishu_sign(1_599_360_473, "demo") == base64.b64encode(mac.digest()).decode()
    assert feishu_sign(1_599_360_473, "demo") != feishu_sign(1_599_360_474, "demo")


@pytest.mark.parametrize(
    ("errcode", "msg", "kind", "dead", "binding", "retry_after", "alert"),
    [
        (0, "ok", "sent", False, None, None, False),
        (-1, "system busy", "retry", False, None, None, False),
        (130101, "send too fast, exceed 20 times per minute", "retry", False, None, 600.0, False),
        (410100, "发送速度太快而限流", "retry", False, None, 600.0, False),
        (310000, "keywords not in content", "failed", True, None, None, False),
        (310000, "sign not match", "failed", True, None, None, False),
        (300001, "token is not exist", "failed", True, "disable", None, False),
        (300005, "token is not exist", "failed", True, "disable", None, False),
        (400101, "access_token不存在", "failed", True, "disable", None, False),
        (400102, "机器人已停用", "failed", True, "disable", None, False),
        (400013, "群已被解散", "failed", True, "disable", None, False),
        (400105, "不支持的消息类型", "failed", True, None, None, True),
        (430102, "含有不合适的文本", "failed", True, None, None, False),
        (12345, "new", "failed", True, None, None, False),
    ],
)
def test_dingtalk_errcodes(
    errcode: int, msg: str, kind: str, dead: bool, binding: str | None, retry_after: float | None, alert: bool
) -> None:
    outcome = classify_dingtalk_errcode(errcode, msg)
    assert decision(outcome) == (kind, dead, binding, retry_after, alert)
    if errcode:
        assert outcome.detail == f"dingtalk robot errcode {errcode}: {msg}"


@pytest.mark.parametrize(
    ("code", "msg", "kind", "dead", "binding", "retry_after", "alert"),
    [
        (0, "success", "sent", False, None, None, False),
        (9499, "too many request", "retry", False, None, 60.0, False),
        (9499, "Bad Request", "failed", True, None, None, True),
        (11232, "frequency limited", "retry", False, None, 60.0, False),
        (19021, "sign match fail or timestamp is not within one hour", "failed", True, None, None, False),
        (19022, "Ip Not Allowed", "failed", True, None, None, False),
        (19024, "Key Words Not Found", "failed", True, None, None, False),
        (
            19001,
            "param invalid: incoming webhook access token invalid",
            "failed",
            True,
            "disable",
            None,
            False,
        ),
        (19007, "Bot Not Enabled", "failed", True, "disable", None, False),
        (-1, "unknown", "failed", True, None, None, False),
    ],
)
def test_feishu_codes(
    code: int, msg: str, kind: str, dead: bool, binding: str | None, retry_after: float | None, alert: bool
) -> None:
    outcome = classify_feishu_code(code, msg)
    assert decision(outcome) == (kind, dead, binding, retry_after, alert)


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        (
            {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"},
            (0, "success"),
        ),
        ({"StatusCode": 0, "StatusMessage": "success"}, (0, "success")),  # older replies
        (
            {"StatusCode": 0, "StatusMessage": "", "code": 9499, "msg": "too many request"},
            (9499, "too many request"),
        ),
        ({"data": {}}, None),
    ],
)
def test_feishu_answer_code_wins_over_the_legacy_status_code(
    answer: dict[str, Any], found: tuple[int, str] | None
) -> None:
    assert _feishu_code_of(answer) == found


async def test_robot_requests_fit_the_vendors_size_limits(sender: AppriseSender) -> None:
    text = '新询盘 "quoted" \\ ' + "请报价" * 4000  # JSON escapes and 3-byte characters
    for url, vendor in (
        (f"dingtalk://{DING_SECRET}@a1b2c3d4e5f6/", DINGTALK),
        ("feishu://Fs3cr3tKey99@b8f2a3c4-1111-2222", FEISHU),
        ("lark://c9e1d2f3-4a5b", LARK),
    ):
        target = await sender.inspect(url)
        req = vendor.request(target, text, 1_700_000_000.0)
        assert ROBOT_BODY_BYTES - 16 <= len(req.body) <= ROBOT_BODY_BYTES
        body = json.loads(req.body)
        content = body["text"]["content"] if vendor is DINGTALK else body["content"]["text"]
        assert content.startswith('新询盘 "quoted"') and content.endswith("…")
    wecom = await sender.inspect(f"wecombot://{KEY}")
    content = json.loads(WECOM.request(wecom, text, 0.0).body)["text"]["content"]
    assert len(content.encode()) <= 2048 and content.endswith("…")
    short = json.loads(DINGTALK.request(await sender.inspect("dingtalk://a1b2c3d4e5f6/"), "hi", 0.0).body)
    assert short == {"msgtype": "text", "text": {"content": "hi"}}
