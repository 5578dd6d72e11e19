"""Service settings from the environment (pydantic-settings).

Infrastructure endpoints use their standard unprefixed names, shared by every service (``KAFKA_BOOTSTRAP_SERVERS``,
``MONGODB_URL``, ``LAIFAXIN_ENVIRONMENT``, ``LAIFAXIN_CREDENTIAL_KEYS`` ...). A service's own settings carry its
prefix (``BINDING_``, ``SYNC_``, ``CLASSIFIER_``, ``NOTIFY_``): subclass :class:`ServiceSettings` and set
``model_config = SettingsConfigDict(env_prefix="SYNC_")``.

Secrets are :class:`pydantic.SecretStr` (never printed) and placeholders such as ``change-me`` are refused outside
``development`` and ``test`` (full-stack-fastapi-template's rule): a production pod with a forgotten secret fails
at start with the name of the variable to set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
"""Kafka's ``security.protocol`` values (Kafka documentation, "Security": listeners and client configuration)."""
KafkaSaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
"""SASL mechanisms the services speak: SCRAM (RFC 5802/7677, the password never crosses the wire) or PLAIN
(RFC 4616, only over TLS)."""

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "changethis", "secret", "dev", "placeholder"})
"""Values that mean "nobody set this secret"."""

DEV_CREDENTIAL_KEYS = "dev-0:ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="
"""A fixed development key ring (32 bytes). Refused outside development and test."""


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class KafkaSettings(BaseSettings):
    """How every Kafka client of the platform reaches the cluster: bootstrap servers and security.

    Read on their own by tools that need only Kafka (``laifaxin-mail dlq``); every :class:`ServiceSettings` has
    them too. ``SASL_SSL`` with ``SCRAM-SHA-512`` is what production runs (Strimzi ``KafkaUser`` per service);
    ``PLAINTEXT`` is for a loopback development broker.

    Raises:
        pydantic.ValidationError: SASL without a user name or password; ``SASL_PLAINTEXT`` with the ``PLAIN``
            mechanism outside development/test (the password would cross the network in clear).
    """

    model_config = SettingsConfigDict(env_prefix="LAIFAXIN_", extra="ignore", populate_by_name=True)

    environment: Environment = Field(
        default="development",
        validation_alias=_alias("environment", "LAIFAXIN_ENVIRONMENT"),
        description="development, test or production; production refuses placeholder secrets.",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=_alias("kafka_bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="PLAINTEXT",
        validation_alias=_alias("kafka_security_protocol", "KAFKA_SECURITY_PROTOCOL"),
        description="Kafka security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (production: SASL_SSL).",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(
        default="SCRAM-SHA-512",
        validation_alias=_alias("kafka_sasl_mechanism", "KAFKA_SASL_MECHANISM"),
        description="SASL mechanism with SASL_*: SCRAM-SHA-512 (default), SCRAM-SHA-256 or PLAIN (TLS only).",
    )
    kafka_sasl_username: str = Field(
        default="",
        validation_alias=_alias("kafka_sasl_username", "KAFKA_SASL_USERNAME"),
        description="SASL user name (the service's KafkaUser); required with SASL_*.",
    )
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=_alias("kafka_sasl_password", "KAFKA_SASL_PASSWORD"),
        description="SASL password; required with SASL_*.",
    )
    kafka_ssl_ca_file: str = Field(
        default="",
        validation_alias=_alias("kafka_ssl_ca_file", "KAFKA_SSL_CA_FILE"),
        description="PEM file of the CA(s) that sign the brokers' certificates, with SSL/SASL_SSL (empty: the "
        "system trust store). The broker's host name is always verified.",
    )

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def kafka_uses_sasl(self) -> bool:
        """Whether the clients authenticate with SASL."""
        return self.kafka_security_protocol.startswith("SASL_")

    @property
    def kafka_uses_tls(self) -> bool:
        """Whether the connections to the brokers are TLS."""
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _check_kafka_security(self) -> KafkaSettings:
        if self.kafka_uses_sasl and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        if (
            self.environment not in ("development", "test")
            and self.kafka_security_protocol == "SASL_PLAINTEXT"
            and self.kafka_sasl_mechanism == "PLAIN"
        ):
            raise ValueError(
                "KAFKA_SASL_MECHANISM=PLAIN over SASL_PLAINTEXT sends the password in clear; use SASL_SSL or SCRAM"
            )
        return self


class ServiceSettings(KafkaSettings):
    """Settings every service has. Subclass per service with its own ``env_prefix``.

    Raises:
        pydantic.ValidationError: a value is malformed, or a secret is still a placeholder outside
            development/test.
    """

    model_config = SettingsConfigDict(env_prefix="LAIFAXIN_", extra="ignore", populate_by_name=True)

    service_name: str = Field(default="laifaxin", description="Name used in logs, client ids and metrics.")
    topic_prefix: str = Field(
        default="",
        validation_alias=_alias("topic_prefix", "LAIFAXIN_TOPIC_PREFIX"),
        description="Prepended to every topic name (isolates tests and tenants of a shared cluster).",
    )
    mongodb_url: SecretStr = Field(
        default=SecretStr("mongodb://127.0.0.1:27117/"),
        validation_alias=_alias("mongodb_url", "MONGODB_URL"),
        description="MongoDB connection string (may hold a password, hence secret).",
    )
    mongodb_database: str = Field(default="laifaxin", description="This service's own database.")
    credential_keys: SecretStr = Field(
        default=SecretStr(DEV_CREDENTIAL_KEYS),
        validation_alias=_alias("credential_keys", "LAIFAXIN_CREDENTIAL_KEYS"),
        description="Key ring for mailbox credentials: 'key_id:base64key' pairs, comma-separated; 32-byte keys.",
    )
    credential_active_key_id: str = Field(
        default="dev-0",
        validation_alias=_alias("credential_active_key_id", "LAIFAXIN_CREDENTIAL_ACTIVE_KEY_ID"),
        description="Key id that seals new credentials; the others only open old ones.",
    )
    credential_accept_v1: bool = Field(
        default=True,
        validation_alias=_alias("credential_accept_v1", "LAIFAXIN_CREDENTIAL_ACCEPT_V1"),
        description="Still open mailbox credentials sealed with v1 associated data (tenant and mailbox only, not "
        "bound to the servers and login). Turn off once `laifaxin-mail credentials rotate` reports none left.",
    )
    log_level: str = Field(
        default="INFO",
        validation_alias=_alias("log_level", "LAIFAXIN_LOG_LEVEL"),
        description="Minimum log level (DEBUG, INFO, WARNING, ERROR).",
    )
    log_json: bool = Field(
        default=True,
        validation_alias=_alias("log_json", "LAIFAXIN_LOG_JSON"),
        description="One JSON object per log line (false: coloured console lines for local debugging).",
    )

    def secret_fields(self) -> dict[str, SecretStr]:
        """The secrets that must not be placeholders outside development (subclasses add theirs)."""
        fields = {"LAIFAXIN_CREDENTIAL_KEYS": self.credential_keys}
        if self.kafka_uses_sasl:
            fields["KAFKA_SASL_PASSWORD"] = self.kafka_sasl_password
        return fields

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> ServiceSettings:
        if self.environment in ("development", "test"):
            return self
        for env_name, value in self.secret_fields().items():
            raw = value.get_secret_value()
            if raw.strip().lower() in PLACEHOLDER_SECRETS or raw == DEV_CREDENTIAL_KEYS:
                raise ValueError(
                    f"{env_name} is a placeholder; set a real secret for environment={self.environment}"
                )
        return self

    def topic(self, name: str) -> str:
        """The topic's name on the cluster (with :attr:`topic_prefix`)."""
        return f"{self.topic_prefix}{name}"
