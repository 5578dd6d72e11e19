"""Channel rules without a network: WeChat fields and errcodes, push payloads and Retry-After, SMTP codes, JWT."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jwt
import pytest
from fastapi import HTTPException
from pydantic import SecretStr, ValidationError

from laifaxin_notify.auth import issue_token, verify_token
from laifaxin_notify.channels.email import _classify_code, build_message
from laifaxin_notify.channels.webpush import (
    MAX_PAYLOAD_BYTES,
    VAPID_LIFETIME_S,
    VAPID_RENEW_BEFORE_S,
    WebPushSender,
    load_vapid,
    payload,
    retry_after_seconds,
)
from laifaxin_notify.channels.wechat import classify_errcode, template_data
from laifaxin_notify.models import AlertContent, DeliveryTask
from laifaxin_notify.settings import NotifySettings


def task(**content: object) -> DeliveryTask:
    c = AlertContent(
        title="新询盘 New inquiry",
        sender="Zhang Wei\nSales Dept, Shenzhen LED Co., Ltd.",
        subject="回复: Quotation for LED panels 500 pcs FOB Shenzhen",
        snippet="Please quote",
        category="inquiry",
        url="https://app/mail/1",
        arrived_at=datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
    ).model_copy(update=content)
    return DeliveryTask(
        dedupe_key="a" * 64,
        tenant_id="t",
        user_id="u",
        channel="wechat",
        target_id="o",
        event_id="e",
        content=c,
    )


def test_wechat_fields_are_at_most_20_chars_without_newlines() -> None:
    data = template_data(task())
    for item in data.values():
        assert 0 < len(item["value"]) <= 20 and "\n" not in item["value"]


def test_wechat_fields_are_never_empty() -> None:
    data = template_data(task(sender="", subject="", arrived_at=None))
    assert all(item["value"] for item in data.values())


@pytest.mark.parametrize(
    ("errcode", "kind", "dead", "binding"),
    [
        (-1, "retry", False, None),
        (43004, "skipped", False, "disable"),
        (45009, "retry", False, None),
        (47003, "failed", True, None),
        (40037, "failed", True, None),
        (40164, "failed", True, None),
        (42001, "retry", False, None),
    ],
)
def test_wechat_errcodes(errcode: int, kind: str, dead: bool, binding: str | None) -> None:
    out = classify_errcode(errcode, "msg", quota_delay_s=3600)
    assert (out.kind, out.dead_letter, out.binding_action) == (kind, dead, binding)
    if errcode == 45009:
        assert out.retry_after_s == 3600 and out.alert


def test_push_payload_has_tag_and_stays_in_one_record() -> None:
    p = json.loads(payload(task()))
    assert p["tag"] == "a" * 64 and p["url"] == "https://app/mail/1" and "body" in p
    assert "body" not in json.loads(payload(task(), short=True))
    huge = payload(task(snippet="x" * 10_000))
    assert len(huge.encode()) <= MAX_PAYLOAD_BYTES


def test_retry_after_delta_seconds_and_http_date() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(None, default=7) == 7
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") <= 1


def test_push_statuses() -> None:
    assert WebPushSender._classify(410, None).binding_action == "delete"
    assert WebPushSender._classify(404, None).kind == "skipped"
    assert WebPushSender._classify(500, None).kind == "retry"
    assert WebPushSender._classify(403, None).dead_letter


def _vapid_claims(headers: dict[str, str], sender: WebPushSender) -> dict[str, object]:
    scheme, _, params = headers["Authorization"].partition(" ")
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert scheme == "vapid" and fields["k"] == sender.public_key
    claims: dict[str, object] = jwt.decode(
        fields["t"],
        sender.vapid.public_key,
        algorithms=["ES256"],
        options={"verify_aud": False, "verify_exp": False},
    )
    return claims


def test_vapid_jwt_is_signed_once_per_origin_and_renewed_before_exp() -> None:
    sender = WebPushSender(vapid=load_vapid(""), subject="mailto:ops@laifa.xin")
    now = 1_800_000_000.0
    first = sender.vapid_headers("https://fcm.googleapis.com/fcm/send/abc", now=now)
    assert sender.vapid_headers("https://fcm.googleapis.com/fcm/send/def", now=now + 60) == first
    claims = _vapid_claims(first, sender)
    assert claims == {
        "aud": "https://fcm.googleapis.com",
        "exp": int(now) + VAPID_LIFETIME_S,
        "sub": "mailto:ops@laifa.xin",
    }
    assert int(str(claims["exp"])) - now <= 24 * 3600  # RFC 8292 section 2
    other = sender.vapid_headers("https://updates.push.services.mozilla.com/wpush/v2/x", now=now)
    assert _vapid_claims(other, sender)["aud"] == "https://updates.push.services.mozilla.com"
    assert sender.vapid_signatures == 2
    late = now + VAPID_LIFETIME_S - VAPID_RENEW_BEFORE_S + 1  # less than the renewal margin left
    renewed = sender.vapid_headers("https://fcm.googleapis.com/fcm/send/abc", now=late)
    assert renewed != first and _vapid_claims(renewed, sender)["exp"] == int(late) + VAPID_LIFETIME_S
    assert sender.vapid_signatures == 3


def test_smtp_reply_classes() -> None:
    assert _classify_code(451, "try later").kind == "retry"
    assert _classify_code(550, "no such user").kind == "failed"


def test_alert_mail_has_sender_subject_category_and_link() -> None:
    msg = build_message(task(), "alerts@example.com", "owner@example.com")
    text = msg.get_content()
    assert "Category: inquiry" in text and "https://app/mail/1" in text and "Zhang Wei" in text
    assert msg["Message-ID"] == f"<{'a' * 64}@notify.laifaxin>"
    assert msg["Auto-Submitted"] == "auto-generated"


def settings(**kw: object) -> NotifySettings:
    return NotifySettings(jwt_secret=SecretStr("unit-test-jwt-secret-0123456789abcdef"), **kw)  # type: ignore[arg-type]


def test_jwt_round_trip_and_refusals() -> None:
    s = settings()
    p = verify_token(s, issue_token(s, "tenant-a", "u1"))
    assert (p.tenant_id, p.user_id) == ("tenant-a", "u1")
    other = settings(jwt_audience="other")
    with pytest.raises(HTTPException) as info:
        verify_token(other, issue_token(s, "tenant-a", "u1"))
    assert info.value.status_code == 401
    expired = issue_token(s, "t", "u", ttl_s=-10)
    with pytest.raises(HTTPException):
        verify_token(s, expired)
    no_tenant = jwt.encode(
        {"sub": "u", "aud": "laifaxin", "exp": 2**31}, "unit-test-jwt-secret-0123456789abcdef"
    )
    with pytest.raises(HTTPException):
        verify_token(s, no_tenant)
    forged = jwt.encode(
        {"sub": "u", "tenant_id": "t", "aud": "laifaxin", "exp": 2**31}, "another-secret-key-0123456789abcdef"
    )
    with pytest.raises(HTTPException) as info:
        verify_token(s, forged)
    assert forged not in str(info.value.detail)


def test_placeholder_jwt_secret_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="NOTIFY_JWT_SECRET"):
        NotifySettings(environment="production", credential_keys=SecretStr("k1:" + "A" * 44))  # type: ignore[arg-type]


def test_wechat_callback_signature() -> None:
    import hashlib

    from fastapi import HTTPException as HttpError

    from laifaxin_notify.app import _check_signature

    s = settings(wechat_callback_token=SecretStr("cb-token"))
    good = hashlib.sha1("".join(sorted(["cb-token", "1700000000", "n0nce"])).encode()).hexdigest()  # noqa: S324
    _check_signature(s, good, "1700000000", "n0nce")
    with pytest.raises(HttpError) as info:
        _check_signature(s, good, "1700000001", "n0nce")
    assert info.value.status_code == 403
