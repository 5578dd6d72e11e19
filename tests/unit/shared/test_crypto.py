from __future__ import annotations

import base64

import pytest

from laifaxin_shared.crypto import (
    CredentialDecryptError,
    KeyRing,
    KeyRingError,
    UnknownKeyError,
    generate_key,
)
from laifaxin_shared.events import EncryptedCredential


def ring(*ids: str, active: str | None = None) -> KeyRing:
    spec = ",".join(f"{i}:{generate_key()}" for i in ids)
    return KeyRing.parse(spec, active or ids[-1])


def test_seal_and_open_round_trip() -> None:
    r = ring("k1")
    env = r.seal("abcd efgh ijkl mnop", tenant_id="t1", mailbox_id="m1")
    assert env.key_id == "k1"
    assert "abcd" not in env.model_dump_json()
    assert r.open(env, tenant_id="t1", mailbox_id="m1") == "abcd efgh ijkl mnop"


def test_each_seal_uses_a_fresh_nonce() -> None:
    r = ring("k1")
    a, b = (r.seal("same", tenant_id="t", mailbox_id="m") for _ in range(2))
    assert a.nonce != b.nonce and a.ciphertext != b.ciphertext


def test_unknown_key_id_fails() -> None:
    env = ring("k1").seal("pw", tenant_id="t", mailbox_id="m")
    with pytest.raises(UnknownKeyError, match="k1"):
        ring("k2").open(env, tenant_id="t", mailbox_id="m")


def test_wrong_key_under_same_id_fails() -> None:
    env = ring("k1").seal("pw", tenant_id="t", mailbox_id="m")
    with pytest.raises(CredentialDecryptError):
        ring("k1").open(env, tenant_id="t", mailbox_id="m")


@pytest.mark.parametrize(("tenant", "mailbox"), [("t2", "m"), ("t", "m2")])
def test_associated_data_binds_tenant_and_mailbox(tenant: str, mailbox: str) -> None:
    r = ring("k1")
    env = r.seal("pw", tenant_id="t", mailbox_id="m")
    with pytest.raises(CredentialDecryptError, match="failed authentication"):
        r.open(env, tenant_id=tenant, mailbox_id=mailbox)


def test_tampered_ciphertext_fails() -> None:
    r = ring("k1")
    env = r.seal("pw", tenant_id="t", mailbox_id="m")
    raw = bytearray(base64.urlsafe_b64decode(env.ciphertext + "=" * (-len(env.ciphertext) % 4)))
    raw[0] ^= 1
    bad = EncryptedCredential(
        key_id="k1", nonce=env.nonce, ciphertext=base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    )
    with pytest.raises(CredentialDecryptError):
        r.open(bad, tenant_id="t", mailbox_id="m")


def test_rotation_reseals_under_the_active_key() -> None:
    k_old, k_new = generate_key(), generate_key()
    old = KeyRing.parse(f"old:{k_old}", "old")
    env = old.seal("app-password", tenant_id="t", mailbox_id="m")
    both = KeyRing.parse(f"old:{k_old},new:{k_new}", "new")
    assert both.needs_reseal(env)
    rotated = both.reseal(env, tenant_id="t", mailbox_id="m")
    assert rotated.key_id == "new" and not both.needs_reseal(rotated)
    assert both.reseal(rotated, tenant_id="t", mailbox_id="m") is rotated
    only_new = KeyRing.parse(f"new:{k_new}", "new")
    assert only_new.open(rotated, tenant_id="t", mailbox_id="m") == "app-password"
    with pytest.raises(UnknownKeyError):
        only_new.open(env, tenant_id="t", mailbox_id="m")


@pytest.mark.parametrize(
    ("spec", "active", "match"),
    [
        ("", "a", "empty"),
        ("a:" + base64.b64encode(b"short").decode(), "a", "32 bytes"),
        ("a:not base64!!", "a", "base64"),
        (f"a:{generate_key()}", "b", "not in the ring"),
        ("nokey", "a", "key_id:base64key"),
    ],
)
def test_bad_key_rings_are_refused(spec: str, active: str, match: str) -> None:
    with pytest.raises(KeyRingError, match=match):
        KeyRing.parse(spec, active)


def test_errors_never_contain_the_key() -> None:
    key = generate_key()
    with pytest.raises(KeyRingError) as info:
        KeyRing.parse(f"a:{key}", "missing")
    assert key not in str(info.value)
