from __future__ import annotations

import base64
from datetime import date, timedelta

import pytest

from laifaxin_shared.crypto import KeyRingError
from laifaxin_shared.replytoken import (
    Rejected,
    ReplyTokens,
    VerifiedToken,
    message_digest,
    token_from_address,
)

KEY1 = base64.b64encode(b"1" * 32).decode()
KEY2 = base64.b64encode(b"2" * 32).decode()
TODAY = date(2026, 12, 7)


def tokens(active: str = "k1", spec: str = f"k1:{KEY1},k2:{KEY2}") -> ReplyTokens:
    return ReplyTokens.parse(spec, active)


def test_sign_then_verify_names_the_message() -> None:
    t = tokens().sign("<Abc.123@Mail.Laifaxin.com>", today=TODAY)
    assert t.startswith("k1.") and len(t) <= 45 and t == t.lower()
    got = tokens().verify(t, today=TODAY + timedelta(days=30))
    assert isinstance(got, VerifiedToken)
    assert got.digest == message_digest("abc.123@mail.laifaxin.com") or got.digest == message_digest(
        "Abc.123@mail.laifaxin.com"
    )
    assert got.issued == TODAY


def test_address_round_trip_within_the_local_part_limit() -> None:
    addr = tokens().reply_address("m1@x.test", mailbox="replies@sys.laifaxin.test", today=TODAY)
    local = addr.rpartition("@")[0]
    assert len(local) <= 64
    token = token_from_address(addr)
    assert token is not None and isinstance(tokens().verify(token, today=TODAY), VerifiedToken)
    assert token_from_address("plain@sys.laifaxin.test") is None


def test_rotation_keeps_old_tokens_valid_while_the_key_stays_in_the_ring() -> None:
    old = tokens("k1").sign("m@x.test", today=TODAY)
    assert isinstance(tokens("k2").verify(old, today=TODAY), VerifiedToken)
    assert tokens(spec=f"k2:{KEY2}", active="k2").verify(old, today=TODAY) == Rejected("unknown_key")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"), "bad_signature"),
        (lambda t: t[:-3], "malformed"),
        (lambda t: "", "malformed"),
        (lambda t: "!" + t, "malformed"),
        (lambda t: "k9" + t[2:], "unknown_key"),
        (lambda t: t + "\x00" * 10_000, "malformed"),
    ],
)
def test_forged_or_tampered_tokens_are_rejected(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    t = tokens().sign("m@x.test", today=TODAY)
    assert tokens().verify(mutate(t), today=TODAY) == Rejected(reason)


def test_expired_and_future_tokens_are_rejected() -> None:
    t = tokens().sign("m@x.test", today=TODAY)
    assert tokens().verify(t, today=TODAY + timedelta(days=181)) == Rejected("expired")
    assert tokens().verify(t, today=TODAY - timedelta(days=5)) == Rejected("not_yet_valid")


def test_weak_or_malformed_keys_are_refused() -> None:
    with pytest.raises(KeyRingError):
        ReplyTokens.parse("k1:" + base64.b64encode(b"short").decode(), "k1")
    with pytest.raises(KeyRingError):
        ReplyTokens.parse(f"K_1:{KEY1}", "K_1")
    with pytest.raises(KeyRingError):
        ReplyTokens.parse(f"k1:{KEY1}", "k2")
