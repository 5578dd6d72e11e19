"""Send service settings (environment prefix ``SEND_``; infrastructure names are the shared ones).

Examples::

    SEND_JWT_SECRET=...                    # HS256 key of bearer tokens (the same key as binding's in one platform)
    SEND_CA_FILE=deploy/local/state/tls/ca.pem   # extra CA to trust for SMTP and IMAP (the local test CA)
    SEND_PACING=false                      # benchmarks and tests: no warm-up caps, no spacing
    LAIFAXIN_REPLY_TOKEN_KEYS=k1:BASE64KEY LAIFAXIN_REPLY_TOKEN_ACTIVE_KEY_ID=k1   # system-mailbox Reply-To tokens
"""

from __future__ import annotations

import os
import socket
import uuid
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from laifaxin_shared.auth import TokenVerifier, check_secret
from laifaxin_shared.settings import ServiceSettings

DEV_REPLY_TOKEN_KEYS = "dev:ZGV2LW9ubHktcmVwbHktdG9rZW4ta2V5LW5vdC1mb3ItcHJvZA=="  # noqa: S105  # a published development-only key, refused in production
"""A fixed development reply-token key (32 bytes); refused outside development and test."""


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class SendSettings(ServiceSettings):
    """Everything the send service reads from its environment. Durations are seconds.

    Raises:
        pydantic.ValidationError: a malformed value, or a secret still a placeholder outside development/test.
    """

    model_config = SettingsConfigDict(env_prefix="SEND_", extra="ignore", populate_by_name=True)

    service_name: str = Field(default="send", description="Name in logs and Kafka client ids.")
    mongodb_database: str = Field(default="laifaxin_send", description="The send service's own database.")
    group_id: str = Field(default="send", description="Kafka consumer group of the send workers.")
    worker_id: str = Field(
        default_factory=_default_worker_id,
        description="Unique id of this process: the owner of the commands it claims (host-pid-random).",
    )
    jwt_secret: SecretStr = Field(
        default=SecretStr("change-me"),
        description="HS256 key that signs send's bearer tokens (claims: tenant_id, sub = user id, aud, iat, exp); "
        "send's own, never another service's. Production: at least 32 random bytes.",
    )
    jwt_audience: str = Field(
        default="laifaxin-send",
        min_length=1,
        description="The ``aud`` claim every token must carry (RFC 7519 section 4.1.3); a token for another "
        "service is refused.",
    )
    jwt_issuer: str | None = Field(default=None, description="Required ``iss`` claim, when set.")
    max_body_bytes: int = Field(
        default=1536 * 1024,
        ge=1024,
        description="Largest HTTP request body accepted, bytes (a command with its inline attachments, base64); "
        "larger ones get 413 before they are read.",
    )
    jwt_max_lifetime_seconds: int = Field(
        default=86400,
        ge=60,
        le=7 * 86400,
        description="Longest lifetime (exp - iat) of a token accepted, seconds; longer ones are refused.",
    )
    ca_file: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ca_file", "SEND_CA_FILE", "LAIFAXIN_TLS_CA_FILE"),
        description="Extra PEM CA bundle trusted for SMTP and IMAP besides the system roots (never disables "
        "certificate checks).",
    )
    reply_token_keys: SecretStr = Field(
        default=SecretStr(DEV_REPLY_TOKEN_KEYS),
        validation_alias=AliasChoices(
            "reply_token_keys", "SEND_REPLY_TOKEN_KEYS", "LAIFAXIN_REPLY_TOKEN_KEYS"
        ),
        description="Key ring of the signed reply tokens in the Reply-To of system-mailbox mail: "
        "'key_id:base64key' pairs (ids 1-8 lowercase letters or digits, keys of 32+ bytes).",
    )
    reply_token_active_key_id: str = Field(
        default="dev",
        validation_alias=AliasChoices(
            "reply_token_active_key_id",
            "SEND_REPLY_TOKEN_ACTIVE_KEY_ID",
            "LAIFAXIN_REPLY_TOKEN_ACTIVE_KEY_ID",
        ),
        description="Key id that signs new reply tokens.",
    )
    smtp_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="Timeout of connecting and of each SMTP command."
    )
    imap_timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, description="Timeout of each IMAP command."
    )
    connections_per_mailbox: int = Field(
        default=2,
        ge=1,
        le=10,
        description="SMTP sessions at most open at once per mailbox (reused between sends).",
    )
    session_idle_seconds: float = Field(
        default=60.0, gt=0, description="An unused SMTP session is closed (QUIT) after this long."
    )
    concurrency: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Commands submitted at once by one worker (over all mailboxes).",
    )
    batch_max_records: int = Field(
        default=200, ge=1, le=5000, description="Most mail.send records stored per consumer batch."
    )
    pacing: bool = Field(
        default=True,
        description="Daily caps and spacing between sends (warm-up). false: every command is due at once "
        "(benchmarks, tests).",
    )
    day_timezone: str = Field(
        default="Asia/Shanghai",
        description="Time zone of the sending day: a daily cap resets at midnight there (NetEase counts "
        "'当天', that day).",
    )
    rate_limit_retry_seconds: float = Field(
        default=120.0, gt=0, description="First wait after a 4xx (rate_limited) reply; doubles per attempt."
    )
    rate_limit_max_attempts: int = Field(
        default=5, ge=1, description="Submissions of one command before a rate_limited reply becomes final."
    )
    mailbox_wait_seconds: float = Field(
        default=600.0,
        ge=0,
        description="A command for a mailbox not (yet) known here waits this long for its mailbox.verified "
        "before it fails with mailbox_unknown.",
    )
    claim_lease_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A command claimed by a worker that has not finished within this long is taken to be "
        "orphaned (the worker died) and its outcome is resolved (Sent-folder lookup; never a blind resend). "
        "Longer than the SMTP timeouts of one send.",
    )
    poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the dispatcher looks for due commands when not woken."
    )
    bounce_window_days: int = Field(default=7, ge=1, description="Window of the bounce rate, days.")
    bounce_rate_max: float = Field(
        default=0.03,
        gt=0,
        lt=1,
        description="Bounce rate above which campaign sending of a mailbox pauses (Laifaxin's advice for "
        "NetEase Enterprise: keep bounces at or below 3%).",
    )
    bounce_min_sends: int = Field(
        default=50, ge=1, description="Sends in the window needed before the bounce rate counts."
    )
    sent_copy: bool = Field(
        default=True,
        description="APPEND a copy to the Sent folder where the provider does not file SMTP mail itself.",
    )
    create_topics: bool = Field(
        default=False,
        description="Create the topics send uses at start (local runs; production uses Strimzi).",
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor with create_topics."
    )
    http_host: str = Field(default="0.0.0.0", description="Listen address of the HTTP API.")  # noqa: S104  # a pod listens on all interfaces
    http_port: int = Field(default=8080, ge=1, le=65535, description="Listen port of the HTTP API.")

    def secret_fields(self) -> dict[str, SecretStr]:
        """Secrets refused as placeholders outside development/test."""
        fields = {**super().secret_fields(), "SEND_JWT_SECRET": self.jwt_secret}
        if self.reply_token_keys.get_secret_value() == DEV_REPLY_TOKEN_KEYS:
            fields["LAIFAXIN_REPLY_TOKEN_KEYS"] = SecretStr("change-me")
        return fields

    @model_validator(mode="after")
    def _strong_jwt_secret(self) -> SendSettings:
        check_secret("SEND_JWT_SECRET", self.jwt_secret.get_secret_value(), self.environment)
        return self

    def token_verifier(self) -> TokenVerifier:
        """Send's token rules: its key, audience, issuer and maximum lifetime."""
        return TokenVerifier(
            self.jwt_secret.get_secret_value(),
            self.jwt_audience,
            self.jwt_issuer,
            self.jwt_max_lifetime_seconds,
        )

    @model_validator(mode="after")
    def _valid_zone(self) -> SendSettings:
        ZoneInfo(self.day_timezone)  # raises for an unknown zone
        return self

    @property
    def zone(self) -> ZoneInfo:
        """:attr:`day_timezone` as a zone."""
        return ZoneInfo(self.day_timezone)
