"""Inbox service settings (environment prefix ``INBOX_``; infrastructure names are the shared ones).

Examples::

    INBOX_JWT_SECRET=...                      # the inbox's own HS256 key (aud laifaxin-inbox)
    INBOX_SYNC_CONTENT_URL=http://sync:8080   # where sync serves GET /v1/raw
    INBOX_SYNC_CONTENT_SECRET=...             # the same value as sync's SYNC_CONTENT_TOKEN_SECRET
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092  MONGODB_URL=mongodb://127.0.0.1:27117/
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from laifaxin_shared.auth import TokenVerifier, check_secret
from laifaxin_shared.settings import ServiceSettings


class InboxSettings(ServiceSettings):
    """Everything the inbox service reads from its environment.

    Raises:
        pydantic.ValidationError: a malformed value, or ``INBOX_JWT_SECRET`` a placeholder or short outside
            development and test.
    """

    model_config = SettingsConfigDict(env_prefix="INBOX_", extra="ignore", populate_by_name=True)

    service_name: str = Field(default="inbox", description="Name in logs and Kafka client ids.")
    mongodb_database: str = Field(default="inbox", description="The inbox's own database (its read model).")
    http_host: str = Field(default="127.0.0.1", description="Bind address of the HTTP API.")
    http_port: int = Field(default=8088, ge=1, le=65535, description="Port of the HTTP API.")
    jwt_secret: SecretStr = Field(
        default=SecretStr("change-me"),
        description="HS256 key of the inbox's bearer tokens (claims tenant_id, sub = user id, aud, iat, exp); the "
        "inbox's own, never another service's. Production: at least 32 random bytes.",
    )
    jwt_audience: str = Field(default="laifaxin-inbox", min_length=1, description="Required `aud` claim.")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` claim, when set.")
    jwt_max_lifetime_seconds: int = Field(
        default=86400,
        ge=60,
        le=7 * 86400,
        description="Longest token lifetime (exp - iat) accepted, seconds.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024, ge=1024, le=1024 * 1024, description="Largest request body accepted, bytes (413)."
    )
    consumer_group: str = Field(default="inbox", description="Kafka consumer group of the read model.")
    batch_max_records: int = Field(default=500, ge=1, description="Most records per consumed batch.")
    batch_timeout_ms: int = Field(default=20, ge=1, description="Longest an idle batch poll waits, ms.")
    sync_content_url: str = Field(
        default="http://127.0.0.1:8080", description="Base URL of sync's HTTP server (GET /v1/raw)."
    )
    sync_content_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key of raw-message grants; the same value as sync's SYNC_CONTENT_TOKEN_SECRET. Empty: "
        "message bodies come from the event text only (no HTML, no attachment downloads).",
    )
    sync_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Timeout of one raw read, seconds.")
    max_raw_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        description="Largest raw message parsed on demand, bytes (larger: 502 content_too_large).",
    )
    page_max: int = Field(default=200, ge=1, le=1000, description="Largest page of GET /v1/inbox/messages.")
    scan_max: int = Field(
        default=5000,
        ge=100,
        description="Most read-model entries one list request examines when filters skip entries; the page then "
        "ends early with a cursor to go on.",
    )
    create_topics: bool = Field(
        default=False, description="Create the topics the inbox reads at start (local runs and tests)."
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor for topics created by create_topics."
    )
    sse_keepalive_s: float = Field(
        default=15.0, gt=0, description="Comment line sent on an idle SSE stream, s."
    )

    @model_validator(mode="after")
    def _strong_secret(self) -> InboxSettings:
        check_secret("INBOX_JWT_SECRET", self.jwt_secret.get_secret_value(), self.environment)
        return self

    def token_verifier(self) -> TokenVerifier:
        """The inbox's token rules: its key, audience, issuer and maximum lifetime."""
        return TokenVerifier(
            self.jwt_secret.get_secret_value(),
            self.jwt_audience,
            self.jwt_issuer,
            self.jwt_max_lifetime_seconds,
        )

    def secret_fields(self) -> dict[str, SecretStr]:
        """Secrets that must be real outside development/test."""
        return {**super().secret_fields(), "INBOX_JWT_SECRET": self.jwt_secret}
