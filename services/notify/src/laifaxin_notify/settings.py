"""Notify's settings (env prefix ``NOTIFY_``; infrastructure names are the shared unprefixed ones).

Secrets (JWT secret, notify's own key ring, WeChat AppSecret, SMTP password, VAPID private key) are
:class:`~pydantic.SecretStr` and refused as placeholders outside development/test
(:meth:`ServiceSettings.secret_fields`); outside development/test the JWT secret must also be strong
(:func:`jwt_secret_weakness`). Notify does not use the platform's credential key ring
(``LAIFAXIN_CREDENTIAL_KEYS``, which opens mailbox passwords): what it seals (users' Apprise URLs) is sealed with
its own ring, ``NOTIFY_SECRETS_KEYS``.
"""

from __future__ import annotations

import math
from collections import Counter

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from laifaxin_shared.crypto import KeyRing, KeyRingError
from laifaxin_shared.settings import PLACEHOLDER_SECRETS, ServiceSettings
from laifaxin_shared.topics import NOTIFY_RETRY_LEVELS

from .wechat_crypto import aes_key

DEV_NOTIFY_SECRETS_KEYS = "notify-dev-0:bm90aWZ5LWRldi1vbmx5LWtleS1ub3QtZm9yLXByb2Q="
"""A fixed development key ring for notify's own secrets (32 bytes). Refused outside development and test."""
JWT_SECRET_MIN_CHARS = 32
"""HS256 wants a key of at least the hash's size, 256 bits (RFC 7518 section 3.2)."""
JWT_SECRET_MIN_BITS = 128.0
"""Least estimated entropy of the JWT secret outside development: its length times the Shannon entropy of its
characters (a random 43-character base64url token estimates ~230 bits; ``aaaa...`` or ``abab...`` estimate 0 or
1 bit per character)."""
GENERATE_JWT_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"  # noqa: S105  # a command


def jwt_secret_weakness(secret: str) -> str | None:
    """Why ``secret`` is too weak for HS256 outside development, or None when it is acceptable.

    Rules: at least :data:`JWT_SECRET_MIN_CHARS` characters (RFC 7518 section 3.2: a key of at least 256 bits)
    and at least :data:`JWT_SECRET_MIN_BITS` bits estimated as length x Shannon entropy per character, which
    refuses repeated or patterned text however long. The reason never quotes the secret.
    """
    if len(secret) < JWT_SECRET_MIN_CHARS:
        return f"it has {len(secret)} characters; at least {JWT_SECRET_MIN_CHARS} are needed"
    counts = Counter(secret)
    per_char = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    if per_char * len(secret) < JWT_SECRET_MIN_BITS:
        bits = max(per_char * len(secret), 0.0)
        return f"it looks low-entropy (about {bits:.0f} bits; {JWT_SECRET_MIN_BITS:.0f} needed)"
    return None


class NotifySettings(ServiceSettings):
    """Everything notify reads from the environment.

    Delays are in seconds. ``retry_delays_s`` names the retry ladder (``notify.retry.0`` waits
    ``retry_delays_s[0]`` ...); after the last one a task goes to ``notify.dlq``.
    """

    model_config = SettingsConfigDict(
        env_prefix="NOTIFY_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    service_name: str = "notify"
    mongodb_database: str = "notify"

    http_host: str = Field(default="127.0.0.1", description="Bind address of the HTTP API.")
    http_port: int = Field(default=8086, description="Port of the HTTP API.")
    public_base_url: str = Field(
        default="http://127.0.0.1:8086",
        description="Where users open the notify page; alert links are built on app_base_url.",
    )
    app_base_url: str = Field(
        default="https://app.laifa.xin", description="Base of the link to a message in the Laifaxin web app."
    )

    jwt_secret: SecretStr = Field(
        default=SecretStr("change-me"),
        description="Notify's own HS256 key for bearer JWTs (never binding's). Outside development/test: at least 32 characters of random "
        f"text (generate one with {GENERATE_JWT_SECRET}); short or low-entropy secrets are refused at start.",
    )
    secrets_keys: SecretStr = Field(
        default=SecretStr(DEV_NOTIFY_SECRETS_KEYS),
        description="Notify's own key ring for the secrets it stores (users' Apprise URLs): 'key_id:base64key' "
        "pairs, comma-separated, 32-byte keys (python -c 'from laifaxin_shared.crypto import generate_key; "
        "print(generate_key())'). Not the mailbox credential ring, which notify never gets.",
    )
    secrets_active_key_id: str = Field(
        default="notify-dev-0", description="Key id of secrets_keys that seals new secrets; others only open."
    )
    jwt_audience: str = Field(default="laifaxin-notify", description="Required `aud` claim.")
    jwt_issuer: str | None = Field(default=None, description="Expected `iss` claim, if set.")

    consumer_group: str = Field(default="notify", description="Kafka consumer group of notify.")
    batch_max_records: int = Field(default=200, description="Most mail.classified records per batch.")
    batch_timeout_ms: int = Field(
        default=10,
        description="Longest an idle mail.classified poll waits for records, ms; FastStream then sleeps as long "
        "again before the next poll, so an idle worker picks up a record within about twice this.",
    )
    fetch_max_wait_ms: int = Field(
        default=50,
        description="Kafka fetch.max.wait.ms of the mail.classified consumer: longest the broker holds a fetch "
        "that has no new records, ms.",
    )
    send_concurrency: int = Field(default=64, description="Concurrent provider sends per worker.")
    retry_delays_s: list[float] = Field(
        default=[30.0, 300.0, 3600.0], description="Delay of each retry topic, in seconds."
    )
    max_wait_in_handler_s: float = Field(
        default=30.0,
        description="Longest a delay-topic handler sleeps for a due time before re-queueing the record "
        "(kept below Kafka's max.poll.interval.ms).",
    )
    quota_delay_s: float = Field(
        default=6 * 3600.0, description="Delay after WeChat errcode 45009 (quota), in seconds."
    )
    lease_s: float = Field(
        default=15.0, description="How long a claimed delivery is owned by the worker sending it, seconds."
    )
    digest_threshold_per_minute: int = Field(
        default=5, description="More alerts than this for one user within a minute become one digest."
    )
    rate_limit_per_hour: int = Field(
        default=60, description="Individual alerts per user per hour; the rest go into digests."
    )
    digest_window_s: int = Field(default=60, description="Window of the digest counter, seconds.")
    shared_counters: bool = Field(
        default=True,
        description="Digest/rate-limit counters in MongoDB (exact or conservative across workers, one insert "
        "and one read per batch) instead of per worker in memory.",
    )

    wechat_api_base: str = Field(default="https://api.weixin.qq.com", description="WeChat API base URL.")
    wechat_appid: str = Field(default="", description="Official Account AppID; empty disables WeChat.")
    wechat_secret: SecretStr = Field(default=SecretStr(""), description="Official Account AppSecret.")
    wechat_template_id: str = Field(default="", description="Template id of the new-reply template.")
    wechat_qrcode_expire_s: int = Field(
        default=600,
        ge=60,
        le=2_592_000,
        description="Life of a linking QR code (POST /v1/bindings/wechat/qrcode) and its pending link, seconds "
        "(WeChat allows up to 30 days).",
    )
    wechat_callback_token: SecretStr = Field(
        default=SecretStr(""), description="Token for the callback signature check; empty skips the check."
    )
    wechat_encoding_aes_key: SecretStr = Field(
        default=SecretStr(""),
        description="EncodingAESKey (43 characters) of 基本配置 → 服务器配置, needed when the Official Account's "
        "message encryption mode is 安全模式 (safe) or 兼容模式 (compatible): callback events then arrive "
        "encrypted (encrypt_type=aes). Empty: plaintext mode only; an encrypted event is refused with a log "
        "line naming this setting.",
    )

    smtp_host: str = Field(default="", description="Alert relay host; empty disables email.")
    smtp_port: int = Field(default=465)
    smtp_security: str = Field(default="ssl", description="ssl (implicit TLS) or starttls.")
    smtp_username: str = Field(default="")
    smtp_password: SecretStr = Field(default=SecretStr(""))
    smtp_from: str = Field(default="Laifaxin <alerts@laifa.xin>")
    smtp_ca_file: str | None = Field(default=None, description="Extra CA bundle to verify the relay.")
    smtp_timeout_s: float = Field(default=15.0, description="Per SMTP command, seconds.")
    smtp_connections: int = Field(
        default=4,
        ge=1,
        description="SMTP sessions kept open to the relay at most (each sends one mail at a time).",
    )
    smtp_idle_s: float = Field(
        default=60.0, gt=0, description="A kept SMTP session unused this many seconds is closed, not reused."
    )
    smtp_messages_per_connection: int = Field(
        default=100,
        ge=1,
        description="Mails sent over one SMTP session before it is closed (relays cap a session).",
    )

    vapid_private_key: SecretStr = Field(
        default=SecretStr(""),
        description="VAPID private key: base64url raw P-256 scalar or PEM; empty generates one in development.",
    )
    vapid_subject: str = Field(default="mailto:alerts@laifa.xin", description="VAPID `sub` claim (RFC 8292).")
    push_ttl_s: int = Field(default=86_400, description="Web Push TTL header, seconds (RFC 8030 5.2).")
    http_timeout_s: float = Field(default=10.0, description="Timeout of provider HTTP calls, seconds.")

    apprise_enabled: bool = Field(
        default=True,
        description="Extra channels users add as Apprise URLs (WeCom robot, DingTalk, Feishu/Lark, Telegram, "
        "Slack, JSON/form webhooks); sealed with NOTIFY_SECRETS_KEYS.",
    )
    apprise_concurrency: int = Field(
        default=8, ge=1, le=256, description="Threads running Apprise's blocking sends per worker."
    )
    apprise_max_urls_per_user: int = Field(
        default=10, ge=1, description="Most Apprise URLs one user may add."
    )
    wecom_bot_api_base: str = Field(
        default="https://qyapi.weixin.qq.com", description="WeCom API base URL for group robot webhooks."
    )
    wecom_bot_rate_limit_delay_s: float = Field(
        default=60.0, description="Delay after WeCom robot errcode 45009 (20 messages/minute per robot), s."
    )
    dingtalk_api_base: str = Field(
        default="https://oapi.dingtalk.com", description="DingTalk API base URL for custom robot webhooks."
    )
    dingtalk_rate_limit_delay_s: float = Field(
        default=600.0,
        description="Delay after DingTalk robot errcode 130101/410100 (20 messages/minute per robot, then "
        "throttled for 10 minutes), s.",
    )
    feishu_api_base: str = Field(
        default="https://open.feishu.cn", description="Feishu API base URL for custom bot webhooks."
    )
    lark_api_base: str = Field(
        default="https://open.larksuite.com", description="Lark API base URL for custom bot webhooks."
    )
    feishu_rate_limit_delay_s: float = Field(
        default=60.0,
        description='Delay after Feishu/Lark bot code 9499 "too many request" or 11232 (100 messages/minute, '
        "5/second per bot), s.",
    )
    push_allowlist: str = Field(
        default="",
        description="Comma-separated CIDRs or host names Web Push endpoints may point at although they are not "
        "public, and over plain http (local development and tests: e.g. 127.0.0.1). Empty: endpoints must be "
        "https URLs whose host resolves to public addresses only (checked when subscribed and at every connect).",
    )
    webpush_max_subscriptions_per_user: int = Field(
        default=10, ge=1, description="Most browser push subscriptions one user may keep."
    )
    email_max_addresses_per_user: int = Field(
        default=3, ge=1, description="Most alert email addresses (confirmed or pending) one user may keep."
    )
    email_confirm_ttl_s: int = Field(
        default=86_400,
        ge=60,
        description="Life of the confirmation link of a new alert email address (double opt-in), seconds.",
    )
    email_confirmations_per_hour: int = Field(
        default=5, ge=1, description="Most confirmation mails one user may cause per hour."
    )
    wechat_max_bindings_per_user: int = Field(
        default=3, ge=1, description="Most WeChat accounts (openids) one user may link."
    )
    wechat_callback_max_skew_s: int = Field(
        default=300,
        ge=30,
        description="WeChat callbacks whose signed timestamp is further than this from our clock are refused, "
        "and a (timestamp, nonce) pair is accepted once within this window (replay protection), seconds.",
    )
    host_allowlist: str = Field(
        default="",
        description="Comma-separated CIDRs or host names that json:// / form:// webhook URLs may point at "
        "although they resolve to private, loopback, link-local or metadata addresses (e.g. 127.0.0.0/8).",
    )

    @field_validator("retry_delays_s")
    @classmethod
    def _ladder_fits_the_topics(cls, value: list[float]) -> list[float]:
        if not 1 <= len(value) <= NOTIFY_RETRY_LEVELS or any(d < 0 for d in value):
            raise ValueError(f"retry_delays_s needs 1..{NOTIFY_RETRY_LEVELS} non-negative delays")
        return value

    @field_validator("wechat_encoding_aes_key")
    @classmethod
    def _aes_key_is_43_base64(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            aes_key(
                value.get_secret_value()
            )  # WeChatCryptoError (a ValueError): told at start, not per event
        return value

    @model_validator(mode="after")
    def _secrets_ring_parses(self) -> NotifySettings:
        """NOTIFY_SECRETS_KEYS is told at start when malformed (the message names the key id, never a key)."""
        try:
            KeyRing.parse(self.secrets_keys.get_secret_value(), self.secrets_active_key_id)
        except KeyRingError as exc:
            raise ValueError(f"NOTIFY_SECRETS_KEYS / NOTIFY_SECRETS_ACTIVE_KEY_ID: {exc}") from None
        return self

    @field_validator("digest_window_s")
    @classmethod
    def _window_divides_the_hour(cls, value: int) -> int:
        if value <= 0 or 3600 % value:
            raise ValueError("digest_window_s must divide 3600 (counters are kept per hour)")
        return value

    @model_validator(mode="after")
    def _strong_secrets_outside_development(self) -> NotifySettings:
        """Outside development/test: a strong JWT secret and a real key ring of notify's own (the placeholder
        refusal of :class:`ServiceSettings` runs first). Messages name the setting and how to make a value,
        never the value."""
        if self.environment in ("development", "test"):
            return self
        raw = self.jwt_secret.get_secret_value()
        if raw.strip().lower() not in PLACEHOLDER_SECRETS:
            why = jwt_secret_weakness(raw)
            if why is not None:
                raise ValueError(
                    f"NOTIFY_JWT_SECRET is too weak for environment={self.environment}: {why}. Use at least "
                    f"{JWT_SECRET_MIN_CHARS} random characters, e.g. generate one with: {GENERATE_JWT_SECRET}"
                )
        if self.secrets_keys.get_secret_value() == DEV_NOTIFY_SECRETS_KEYS:
            raise ValueError(
                f"NOTIFY_SECRETS_KEYS is the development key ring; set a real one for "
                f"environment={self.environment} (generate a key with python -c 'from laifaxin_shared.crypto "
                "import generate_key; print(generate_key())')"
            )
        return self

    def secret_fields(self) -> dict[str, SecretStr]:
        """Secrets that must be real outside development/test (notify does not take the mailbox credential
        ring, so ``LAIFAXIN_CREDENTIAL_KEYS`` is not among them)."""
        fields = {
            "NOTIFY_SECRETS_KEYS": self.secrets_keys,
            "NOTIFY_JWT_SECRET": self.jwt_secret,
        }
        if self.wechat_appid:
            fields["NOTIFY_WECHAT_SECRET"] = self.wechat_secret
        if self.smtp_username:
            fields["NOTIFY_SMTP_PASSWORD"] = self.smtp_password
        fields["NOTIFY_VAPID_PRIVATE_KEY"] = self.vapid_private_key
        return fields
