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

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "changethis", "secret", "dev", "placeholder"})
"""Values that mean "nobody set this secret"."""

DEV_CREDENTIAL_KEYS = "dev-0:ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="
"""A fixed development key ring (32 bytes). Refused outside development and test."""


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclass per service with its own ``env_prefix``.

    Raises:
        pydantic.ValidationError: a value is malformed, or a secret is still a placeholder outside
            development/test.
    """

    model_config = SettingsConfigDict(env_prefix="LAIFAXIN_", extra="ignore", populate_by_name=True)

    environment: Environment = Field(
        default="development",
        validation_alias=_alias("environment", "LAIFAXIN_ENVIRONMENT"),
        description="development, test or production; production refuses placeholder secrets.",
    )
    service_name: str = Field(default="laifaxin", description="Name used in logs, client ids and metrics.")
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=_alias("kafka_bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
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
        return {"LAIFAXIN_CREDENTIAL_KEYS": self.credential_keys}

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
