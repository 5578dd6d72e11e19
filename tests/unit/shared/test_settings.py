from __future__ import annotations

import pytest
from pydantic import ValidationError

from laifaxin_shared.crypto import generate_key
from laifaxin_shared.settings import ServiceSettings


def test_defaults_work_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    s = ServiceSettings()
    assert s.environment == "development"
    assert s.kafka_bootstrap_servers == "127.0.0.1:19092"


def test_standard_env_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("MONGODB_URL", "mongodb://user:pw@db:27017/")
    s = ServiceSettings()
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert "pw" not in repr(s) and "pw" not in str(s.model_dump())


def test_production_refuses_the_placeholder_key_ring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAIFAXIN_ENVIRONMENT", "production")
    monkeypatch.delenv("LAIFAXIN_CREDENTIAL_KEYS", raising=False)
    with pytest.raises(ValidationError, match="LAIFAXIN_CREDENTIAL_KEYS is a placeholder"):
        ServiceSettings()


@pytest.mark.parametrize("value", ["change-me", "", "changethis"])
def test_production_refuses_placeholders(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LAIFAXIN_ENVIRONMENT", "production")
    monkeypatch.setenv("LAIFAXIN_CREDENTIAL_KEYS", value)
    with pytest.raises(ValidationError):
        ServiceSettings()


def test_production_accepts_a_real_key_ring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAIFAXIN_ENVIRONMENT", "production")
    monkeypatch.setenv("LAIFAXIN_CREDENTIAL_KEYS", f"k2026:{generate_key()}")
    monkeypatch.setenv("LAIFAXIN_CREDENTIAL_ACTIVE_KEY_ID", "k2026")
    assert ServiceSettings().credential_active_key_id == "k2026"


def test_topic_prefix() -> None:
    assert ServiceSettings(topic_prefix="t1.").topic("mail.received") == "t1.mail.received"
