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


def test_kafka_defaults_to_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    from laifaxin_shared.kafka import broker_security, client_options

    for name in (
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CA_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    s = ServiceSettings(kafka_bootstrap_servers="k1:9092,k2:9092")
    assert client_options(s) == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert broker_security(s) is None


def test_kafka_sasl_ssl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from faststream.security import SASLScram512

    from laifaxin_shared.kafka import broker_security, client_options

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "sync")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-pw-123")
    s = ServiceSettings()
    assert s.kafka_security_protocol == "SASL_SSL" and s.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert "kafka-pw-123" not in repr(s) and "kafka-pw-123" not in str(s.model_dump())
    options = client_options("k:9093")  # a bootstrap string takes the environment's security settings
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "sync" and options["sasl_plain_password"] == "kafka-pw-123"
    assert options["ssl_context"].check_hostname
    security = broker_security(s)
    assert isinstance(security, SASLScram512) and security.use_ssl and security.ssl_context is not None


def test_kafka_sasl_needs_user_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        ServiceSettings(kafka_security_protocol="SASL_SSL")


def test_production_refuses_plain_sasl_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAIFAXIN_ENVIRONMENT", "production")
    monkeypatch.setenv("LAIFAXIN_CREDENTIAL_KEYS", f"k2026:{generate_key()}")
    monkeypatch.setenv("LAIFAXIN_CREDENTIAL_ACTIVE_KEY_ID", "k2026")
    with pytest.raises(ValidationError, match="in clear"):
        ServiceSettings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="u",
            kafka_sasl_password="long-enough-pw",
        )
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD is a placeholder"):
        ServiceSettings(
            kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="change-me"
        )
