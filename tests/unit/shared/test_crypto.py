from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from laifaxin_shared.crypto import (
    CredentialContext,
    CredentialDecryptError,
    CredentialV1RefusedError,
    KeyRing,
    KeyRingError,
    ServerLogin,
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


# --- v2 associated data: bound to the servers and logins -----------------------------------------------------

MAILBOX = {
    "tenant_id": "t1",
    "_id": "m1",
    "username": "sales@163.com",
    "smtp_username": None,
    "imap": {"host": "imap.163.com", "port": 993, "security": "ssl"},
    "smtp": {"host": "smtp.163.com", "port": 465, "security": "ssl"},
}


def test_v2_round_trip_and_envelope_says_v2() -> None:
    r = ring("k1")
    ctx = CredentialContext.of(MAILBOX)
    env = r.seal_mailbox("app password", ctx)
    assert env.aad == "v2" and "app password" not in env.model_dump_json()
    assert r.open_mailbox(env, ctx) == "app password"
    # the same servers written differently (case, trailing dot) are the same servers
    same = CredentialContext.of({**MAILBOX, "imap": {**MAILBOX["imap"], "host": "IMAP.163.com."}})
    assert r.open_mailbox(env, same) == "app password"
    # the event form (mailbox_id instead of _id, smtp_username equal to username) is the same context
    event_form = {k: v for k, v in MAILBOX.items() if k != "_id"} | {"mailbox_id": "m1", "smtp_username": ""}
    assert r.open_mailbox(env, CredentialContext.of(event_form)) == "app password"


@pytest.mark.parametrize(
    "change",
    [
        {"imap": {"host": "imap.attacker.example", "port": 993, "security": "ssl"}},
        {"imap": {"host": "imap.163.com", "port": 1993, "security": "ssl"}},
        {"imap": {"host": "imap.163.com", "port": 993, "security": "starttls"}},
        {"smtp": {"host": "smtp.attacker.example", "port": 465, "security": "ssl"}},
        {"smtp": {"host": "smtp.163.com", "port": 587, "security": "ssl"}},
        {"username": "other@163.com"},
        {"smtp_username": "other@163.com"},
        {"tenant_id": "t2"},
        {"_id": "m2"},
    ],
    ids=lambda c: ",".join(c),
)
def test_v2_refuses_other_servers_logins_mailboxes(change: dict[str, object]) -> None:
    r = ring("k1")
    env = r.seal_mailbox("pw", CredentialContext.of(MAILBOX))
    with pytest.raises(CredentialDecryptError, match="sealed for other servers"):
        r.open_mailbox(env, CredentialContext.of({**MAILBOX, **change}))


def test_v2_envelope_does_not_open_as_v1_and_v1_label_does_not_help() -> None:
    r = ring("k1")
    ctx = CredentialContext.of(MAILBOX)
    env = r.seal_mailbox("pw", ctx)
    with pytest.raises(CredentialDecryptError):
        r.open(env, tenant_id="t1", mailbox_id="m1")
    relabelled = env.model_copy(update={"aad": "v1"})  # a forged event claiming v1 to skip the server binding
    with pytest.raises(CredentialDecryptError):
        r.open_mailbox(relabelled, ctx)


def test_associated_data_is_unambiguous() -> None:
    a = CredentialContext("t", "m", ServerLogin("h", 1, "ssl", 'u","x'), ServerLogin("h", 1, "ssl", "u"))
    b = CredentialContext("t", "m", ServerLogin("h", 1, "ssl", "u"), ServerLogin("h", 1, "ssl", 'x","u'))
    assert a.associated_data() != b.associated_data()
    assert a.associated_data().startswith(b"laifaxin:cred:v2:")
    assert replace(a, tenant_id="t:m").associated_data() != replace(a, mailbox_id="m:t").associated_data()


def test_v1_mailbox_envelopes_open_during_the_migration_then_are_refused() -> None:
    key = generate_key()
    legacy = KeyRing.parse(f"k1:{key}", "k1").seal("pw", tenant_id="t1", mailbox_id="m1")  # sealed before v2
    assert legacy.aad == "v1"
    ctx = CredentialContext.of(MAILBOX)
    migrating = KeyRing.parse(f"k1:{key}", "k1")
    assert migrating.accept_v1 and migrating.open_mailbox(legacy, ctx) == "pw"
    assert migrating.mailbox_needs_reseal(legacy)
    strict = KeyRing.parse(f"k1:{key}", "k1", accept_v1=False)
    with pytest.raises(CredentialV1RefusedError, match="credentials rotate"):
        strict.open_mailbox(legacy, ctx)
    # the rotation reads binding's own store: it reseals v1 to v2 even with v1 refused
    fresh = strict.reseal_mailbox(legacy, ctx)
    assert fresh.aad == "v2" and not strict.mailbox_needs_reseal(fresh)
    assert strict.open_mailbox(fresh, ctx) == "pw"
    assert strict.reseal_mailbox(fresh, ctx) is fresh


def test_key_rotation_of_v2_envelopes() -> None:
    old_key, new_key = generate_key(), generate_key()
    ctx = CredentialContext.of(MAILBOX)
    env = KeyRing.parse(f"old:{old_key}", "old").seal_mailbox("pw", ctx)
    both = KeyRing.parse(f"old:{old_key},new:{new_key}", "new")
    assert both.mailbox_needs_reseal(env)
    rotated = both.reseal_mailbox(env, ctx)
    assert rotated.key_id == "new" and rotated.aad == "v2"
    assert KeyRing.parse(f"new:{new_key}", "new").open_mailbox(rotated, ctx) == "pw"


def test_envelope_without_aad_field_is_v1() -> None:
    env = ring("k1").seal("pw", tenant_id="t", mailbox_id="m").model_dump()
    del env["aad"]
    assert EncryptedCredential.model_validate(env).aad == "v1"
