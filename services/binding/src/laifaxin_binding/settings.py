"""Binding service settings (environment prefix ``BINDING_``; infrastructure names are the shared ones).

Examples::

    BINDING_JWT_SECRET=...                  # binding's own HS256 key; weak keys refused in production
    BINDING_HOST_ALLOWLIST=127.0.0.0/8,::1  # private/loopback hosts users may name (tests, on-prem servers)
    BINDING_CA_FILE=deploy/local/state/tls/ca.pem   # extra CA to trust (the local test CA)
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092  MONGODB_URL=mongodb://127.0.0.1:27117/
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from laifaxin_shared.auth import TokenVerifier, check_secret
from laifaxin_shared.netguard import HostAllowlist, Network
from laifaxin_shared.settings import ServiceSettings


class BindingSettings(ServiceSettings):
    """Everything the binding service reads from its environment.

    Raises:
        pydantic.ValidationError: a malformed value, or ``BINDING_JWT_SECRET`` / the key ring still a
            placeholder outside development and test.
    """

    model_config = SettingsConfigDict(env_prefix="BINDING_", extra="ignore", populate_by_name=True)

    service_name: str = Field(default="binding", description="Name in logs and Kafka client ids.")
    mongodb_database: str = Field(default="binding", description="Binding's own database.")
    jwt_secret: SecretStr = Field(
        default=SecretStr("change-me"),
        description="HS256 key that signs binding's bearer tokens (claims: tenant_id, sub = user id, aud, iat, "
        "exp); binding's own, never notify's. Production: at least 32 random bytes.",
    )
    jwt_audience: str = Field(
        default="laifaxin-binding",
        min_length=1,
        description="The ``aud`` claim every token must carry (RFC 7519 section 4.1.3); a token for another "
        "service is refused.",
    )
    jwt_issuer: str | None = Field(default=None, description="Required ``iss`` claim, when set.")
    jwt_max_lifetime_seconds: int = Field(
        default=86400,
        ge=60,
        le=7 * 86400,
        description="Longest lifetime (exp - iat) of a token accepted, seconds; longer ones are refused.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest request body accepted, bytes; larger ones get 413 before they are read "
        "(by Content-Length, or by counting the chunks of a streamed body).",
    )
    host_allowlist: str = Field(
        default="",
        description="Comma-separated CIDRs or host names users may point at although they resolve to "
        "private, loopback, link-local or metadata addresses (e.g. 127.0.0.0/8,::1).",
    )
    ca_file: str | None = Field(
        default=None, description="Extra PEM CA bundle trusted for IMAP/SMTP besides the system roots."
    )
    verify_timeout_seconds: float = Field(
        default=20.0, gt=0, le=120, description="Budget for each protocol's whole verification, seconds."
    )
    command_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="Timeout of one connect or one IMAP/SMTP command, seconds."
    )
    detect_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=60,
        description="Budget for provider detection (MX, autoconfig, SRV lookups together), seconds; a bind "
        "without provider or servers spends at most this long on it before verifying.",
    )
    max_connections_per_host: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Simultaneous verification connections to one server host (Dovecot allows ~10 per user+IP; "
        "Gmail 15 per account).",
    )
    mailbox_limit_per_tenant: int = Field(
        default=20,
        ge=1,
        description="Mailboxes one tenant may bind when its token carries no mailbox_limit claim (the plan's "
        "limit, set by the platform's sign-in).",
    )
    rate_window_seconds: int = Field(
        default=900, ge=1, description="Window of the verification rate limits, seconds."
    )
    rate_max_failures_per_address: int = Field(
        default=5,
        ge=1,
        description="Failed (or running) verifications of one address by one tenant allowed per window "
        "(providers ban an IP after ~10); simultaneous attempts are counted before they connect.",
    )
    rate_max_failures_per_address_all_tenants: int = Field(
        default=10,
        ge=1,
        description="Failed (or running) verifications of one address allowed per window across all tenants "
        "together (one address attacked from many tenants; providers ban an IP after ~10).",
    )
    rate_max_attempts_per_tenant: int = Field(
        default=60, ge=1, description="Verifications (any outcome) one tenant may start per window."
    )
    credential_expiry_warning_days: int = Field(
        default=14, ge=0, description="Report an authorization password as expiring this many days ahead."
    )
    create_topics: bool = Field(
        default=False,
        description="Create the mailbox topics at start when missing (local runs; production uses Strimzi).",
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor for topics created by create_topics."
    )
    system_mailbox_email: str | None = Field(
        default=None,
        description="The platform's own mailbox (mass-email replies); bound at start when set.",
    )
    system_mailbox_password: SecretStr | None = Field(
        default=None, description="Its app password / authorization code."
    )
    system_mailbox_imap: str | None = Field(
        default=None, description="host:port:security (ssl|starttls); default from the provider catalog."
    )
    system_mailbox_smtp: str | None = Field(
        default=None, description="host:port:security (ssl|starttls); default from the provider catalog."
    )
    system_tenant_id: str = Field(
        default="laifaxin-system", description="Tenant that owns the system mailbox."
    )
    system_user_id: str = Field(default="system", description="User that owns the system mailbox.")
    http_host: str = Field(default="0.0.0.0", description="Listen address of the HTTP API.")  # noqa: S104  # a pod listens on all interfaces
    http_port: int = Field(default=8080, ge=1, le=65535, description="Listen port of the HTTP API.")
    oauth_redirect_uris: str = Field(
        default="",
        description="Comma-separated redirect URIs registered with Microsoft and Google for the sign-in "
        "(the first is the default; a sign-in may name another of them, nothing else). The binding API serves "
        "GET /v1/oauth/callback for a browser sent there.",
    )
    oauth_state_ttl_seconds: int = Field(
        default=600, ge=30, le=3600, description="How long a started sign-in may be completed, seconds."
    )
    oauth_microsoft_client_id: str | None = Field(
        default=None, description="Application (client) id of the Microsoft Entra app registration."
    )
    oauth_microsoft_client_secret: SecretStr | None = Field(
        default=None, description="Its client secret (Certificates & secrets)."
    )
    oauth_microsoft_authorize_params: str | None = Field(
        default=None,
        description="key=value pairs, comma-separated, replacing the catalog's extra authorization parameters "
        "(empty: none); for a test server that does not know them.",
    )
    oauth_microsoft_authority: str | None = Field(
        default=None,
        description="OpenID issuer to use instead of the catalog's (https://login.microsoftonline.com/common/"
        "v2.0): organizations or a tenant id, or a local test server.",
    )
    oauth_google_client_id: str | None = Field(default=None, description="Google Cloud OAuth client id.")
    oauth_google_client_secret: SecretStr | None = Field(default=None, description="Its client secret.")
    oauth_google_authorize_params: str | None = Field(
        default=None,
        description="key=value pairs, comma-separated, replacing the catalog's extra authorization parameters "
        "(empty: none); for a test server that does not know them.",
    )
    oauth_google_authority: str | None = Field(
        default=None, description="OpenID issuer to use instead of https://accounts.google.com (tests)."
    )
    oauth_refresh_enabled: bool = Field(
        default=True,
        description="Run the access-token refresher in this instance (one instance per deployment is enough).",
    )
    oauth_refresh_interval_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How often the refresher looks for tokens due, seconds."
    )

    @property
    def oauth_redirect_uri_list(self) -> list[str]:
        """:attr:`oauth_redirect_uris` split on commas, blanks dropped."""
        return [u.strip() for u in self.oauth_redirect_uris.split(",") if u.strip()]

    def secret_fields(self) -> dict[str, SecretStr]:
        """Secrets refused as placeholders outside development/test: the key ring and the JWT key."""
        return {**super().secret_fields(), "BINDING_JWT_SECRET": self.jwt_secret}

    @model_validator(mode="after")
    def _strong_jwt_secret(self) -> BindingSettings:
        check_secret("BINDING_JWT_SECRET", self.jwt_secret.get_secret_value(), self.environment)
        return self

    def token_verifier(self) -> TokenVerifier:
        """Binding's token rules: its key, audience, issuer and maximum lifetime."""
        return TokenVerifier(
            self.jwt_secret.get_secret_value(),
            self.jwt_audience,
            self.jwt_issuer,
            self.jwt_max_lifetime_seconds,
        )

    def allowlist(self) -> tuple[tuple[Network, ...], frozenset[str]]:
        """The parsed :attr:`host_allowlist`: (networks, lower-case host names).

        Raises:
            ValueError: never for host names; entries that parse as neither are treated as host names.
        """
        parsed = HostAllowlist.parse(self.host_allowlist)
        return parsed.networks, parsed.names
