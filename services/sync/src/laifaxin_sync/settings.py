"""Sync worker settings: infrastructure from the shared names, the worker's own knobs with the ``SYNC_`` prefix.

Durations are seconds unless the name says otherwise. Defaults are production values; tests and benchmarks
shorten the lease, the backoff and the polling interval through the environment.
"""

from __future__ import annotations

import os
import socket
import uuid

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from laifaxin_shared.mime import MimeLimits
from laifaxin_shared.settings import ServiceSettings


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class SyncSettings(ServiceSettings):
    """Settings of one sync worker process (``python -m laifaxin_sync``)."""

    model_config = SettingsConfigDict(env_prefix="SYNC_", extra="ignore", populate_by_name=True)

    service_name: str = Field(default="sync", description="Name in logs, Kafka client ids and metrics.")
    mongodb_database: str = Field(default="laifaxin_sync", description="The sync service's own database.")
    group_id: str = Field(default="sync", description="Kafka consumer group that allocates mailbox shards.")
    worker_id: str = Field(
        default_factory=_default_worker_id,
        description="Unique id of this process: owner of its mailbox leases (host-pid-random by default).",
    )
    http_host: str = Field(default="0.0.0.0", description="Bind address of /healthz, /readyz, /metrics.")  # noqa: S104  # a pod's probes and Prometheus reach it from outside the container
    http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the HTTP server; 0 disables it."
    )
    tls_ca_file: str | None = Field(
        default=None,
        validation_alias=AliasChoices("tls_ca_file", "SYNC_TLS_CA_FILE", "LAIFAXIN_TLS_CA_FILE"),
        description="Extra PEM CA bundle to trust for IMAP besides the system roots (never disables checks).",
    )
    host_allowlist: str = Field(
        default="",
        description="Comma-separated host names or CIDR networks allowed although not public "
        "(e.g. '127.0.0.0/8' for local servers). Others resolving to private addresses are refused.",
    )
    imap_timeout: float = Field(
        default=30.0, gt=0, description="Seconds for connecting and for each command."
    )
    tcp_keepalive_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Seconds of silence on an IMAP connection before TCP keepalive probes (every quarter of "
        "that, 4 unanswered = dead: a dead peer is noticed after about twice this). Keeps NAT and firewall "
        "mappings of a quiet IDLE connection alive (AWS NAT gateways drop them after 350 s) and ends a dead one "
        "instead of waiting for the next poll. 0: off (the system's default).",
    )
    imap_notify: bool = Field(
        default=True,
        description="Where the server advertises NOTIFY (RFC 5465; Dovecot does) and IDLE is used, ask it to push "
        "changes of the other folders (Junk, user folders) as STATUS during IDLE, so they are synced at once "
        "instead of at the next poll. false: those folders are polled at the interval only.",
    )
    idle_enabled: bool = Field(default=True, description="Use IDLE (RFC 2177) on INBOX where advertised.")
    idle_reissue_seconds: float = Field(
        default=25 * 60,
        gt=0,
        le=29 * 60,
        description="Re-issue IDLE after this long (RFC 2177: servers may log out clients idle for 30 min).",
    )
    poll_interval_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Override of the mailboxes' polling interval (tests, benchmarks); None: each "
        "mailbox's own interval_seconds.",
    )
    user_folders: bool = Field(
        default=True,
        description="Also sync the user's own folders (where their filter rules file mail), polled like Junk: "
        "every selectable folder but INBOX, Junk, Sent, Drafts, Trash, Archive, All Mail, Flagged and "
        "Important (SPECIAL-USE attributes, RFC 6154; usual localized names where the server does not "
        "advertise SPECIAL-USE), published with folder_role 'other'. false: INBOX and Junk only.",
    )
    max_user_folders: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Most user folders synced per mailbox (the first in LIST order; each costs one STATUS per "
        "poll); the folders left out are logged once per mailbox.",
    )
    folder_list_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A mailbox's folders are LISTed again (to find new user folders) at its first poll of "
        "Junk and the user folders at least this many seconds after its last LIST (so at most once per "
        "polling interval); a folder found gone is LISTed again at the next poll.",
    )
    fetch_batch: int = Field(default=50, ge=1, le=1000, description="UIDs per UID FETCH of bodies.")
    catchup_batch: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="Most messages stored and published as one group when several fetches are waiting "
        "(catch-up after downtime or the initial window): one index insert, one raw insert, one wait for "
        "the acknowledgements and one cursor write per group.",
    )
    parse_processes: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Processes that parse fetched mail (MIME parsing is the main CPU cost of a catch-up, and the "
        "one a hostile message can inflate, so it never runs in the event loop); None: one fewer than the "
        "usable CPUs, at least 1, at most 4.",
    )
    parse_idle_seconds: float = Field(
        default=120.0,
        gt=0,
        description="The parsing processes start when a batch first needs them; after this many seconds without "
        "work those beyond SYNC_PARSE_KEEP_PROCESSES exit (about 80 MB each).",
    )
    parse_keep_processes: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Parsing processes kept while idle once started, so new mail under IDLE does not wait about "
        "a second for a process to start; 0: all exit when idle.",
    )
    parse_cpu_seconds: float = Field(
        default=0.75,
        gt=0,
        le=60,
        description="CPU time budget of one message in a parsing process (parse, event build, serialisation), "
        "plus SYNC_PARSE_CPU_SECONDS_PER_MB per MB of the message. A CPU timer stops a parse that uses it and the "
        "message is quarantined as parse_budget_exceeded; a parse stuck in one C call is ended by the kernel "
        "(RLIMIT_CPU) 0.25-1.25 s later and its process replaced: no message costs more than its budget + 1.25 s "
        "of CPU (2 s for mail up to about 1 MB with the defaults).",
    )
    parse_cpu_seconds_per_mb: float = Field(
        default=0.1,
        ge=0,
        le=10,
        description="CPU seconds added to a message's parsing budget per MB (10^6 bytes) of it: within the "
        "structure limits parsing is linear in the size (a 25 MB attachment takes about 1-2 s on a busy 2-core "
        "machine), and large mail must not be quarantined for being large.",
    )
    parse_wall_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A batch whose parsing process does not answer within this + (each message's budget + "
        "1.25 s) per message has its process killed and replaced; the message it was on is quarantined as "
        "parse_budget_exceeded and the others are parsed again.",
    )
    mime_max_parts: int = Field(
        default=1000,
        ge=1,
        description="Most MIME parts of one message (boundary delimiter lines of the boundaries it declares, "
        "RFC 2046 5.1.1; also the most boundary declarations); more: quarantined as too_many_parts before parsing.",
    )
    mime_max_depth: int = Field(
        default=64,
        ge=1,
        description="Most multiparts nested in one another; deeper: quarantined as too_deep before parsing.",
    )
    mime_max_header_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest header block (the message's and each MIME part's); larger: header_too_large.",
    )
    mime_max_header_field_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest field of the message's header block, folded lines together; larger: "
        "header_too_large.",
    )
    mime_max_header_line_bytes: int = Field(
        default=32 * 1024,
        ge=998,
        description="Longest line of the message's header block (RFC 5322 2.1.1 asks for 998 characters; "
        "real mail exceeds it, not by this much); longer: header_too_large.",
    )
    mime_max_encoded_words: int = Field(
        default=1000,
        ge=1,
        description="Most RFC 2047 encoded words in one field of the message's header block (a 4,096-character "
        "Subject needs about 300); more: too_many_encoded_words.",
    )
    dlq_raw_prefix_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        le=512 * 1024,
        description="Most bytes of a quarantined message carried in its mail.received.dlq record (the start of "
        "it; headers x-dlq-truncated and x-dlq-size-bytes say when it was cut). The whole message stays in "
        "sync's raw_messages store, named by the record's x-dlq-raw-ref header.",
    )
    kafka_max_batch_bytes: int = Field(
        default=1_000_000,
        ge=16_384,
        le=1_048_576,
        description="Producer record-batch size per partition (aiokafka max_batch_size). A mailbox's events "
        "share one partition and one batch is in flight per partition, so 16 KiB batches (the default) "
        "would make a catch-up wait for one acknowledgement every few messages. At most the broker's "
        "message.max.bytes (1 MiB by default).",
    )
    uidvalidity_max_resets: int = Field(
        default=5,
        ge=1,
        description="UIDVALIDITY changes in a row re-baselined at once and reported as uidvalidity_reset "
        "(Nylas: MAX_UIDINVALID_RESYNCS=5); after that each further change waits, and uidvalidity_unstable "
        "is reported once.",
    )
    uidvalidity_reset_hold_seconds: float = Field(
        default=600.0,
        gt=0,
        description="Wait after the last reset before the next re-baseline once the limit is reached; "
        "doubles with each further change.",
    )
    uidvalidity_reset_hold_max_seconds: float = Field(
        default=86_400.0, gt=0, description="Longest such wait."
    )
    raw_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        le=15 * 1024 * 1024,
        description="Most bytes of a raw message per Mongo document (a document is capped at 16 MiB); a larger "
        "message is stored in chunks of this size, up to 64 MiB in all.",
    )
    lease_ttl_seconds: float = Field(
        default=30.0, gt=1, description="Mailbox lease lifetime; renewed every third of it by the supervisor."
    )
    backoff_min_seconds: float = Field(default=2.0, gt=0, description="First reconnect delay.")
    backoff_max_seconds: float = Field(default=300.0, gt=0, description="Longest reconnect delay.")
    throttle_min_seconds: float = Field(
        default=60.0,
        gt=0,
        description="First delay after a throttling reply (too many connections, rate limit).",
    )
    throttle_max_seconds: float = Field(default=1800.0, gt=0, description="Longest delay after throttling.")
    auth_retry_seconds: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="Delay before retrying after an authentication failure (providers ban IPs after ~10).",
    )
    stable_connection_seconds: float = Field(
        default=300.0, gt=0, description="A connection up this long resets the backoff (EmailEngine: 5 min)."
    )
    status_refresh_seconds: float = Field(
        default=900.0,
        ge=0,
        description="While a mailbox stays ok, its ok status is sent again on mailbox.sync_status at most "
        "this often, with the time of its last sync pass (binding's 'last sync time' moves only when a "
        "status arrives). Sent at the first sync pass due, between 1 and 1.2 times this after the mailbox's "
        "last status (jittered, so mailboxes do not refresh together; the time of the last status is stored, "
        "so a restart keeps the schedule). 0: transitions only.",
    )
    progress_min_messages: int = Field(
        default=200,
        ge=0,
        description="A sync pass that finds at least this many messages to fetch (over its folders: the "
        "initial window of a new mailbox, or the mail of an outage) reports state syncing on "
        "mailbox.sync_status with progress_done/progress_total when it starts, then as it goes, and ok when it "
        "ends; smaller passes (new mail under IDLE) report nothing. 0: never report syncing.",
    )
    progress_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds at least between two syncing reports of one catch-up (each is one event and one "
        "write of the mailbox's state); one is sent only when its counts changed.",
    )
    start_spread_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Mailbox loops start at a random delay within this many seconds (spreads logins).",
    )
    start_concurrency: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Mailboxes at most in their connect phase at once (TLS, LOGIN, LIST, EXAMINE and the "
        "first pass), for the whole worker: starting hundreds of mailboxes, or reconnecting them after an "
        "outage, stays within providers' connection-rate limits and keeps the store and the event loop "
        "responsive. A mailbox waits for a slot before each connection and gives it back once it IDLEs or "
        "waits for its next poll.",
    )
    stop_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a stopping mailbox may finish its batch before cancellation.",
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=6000,
        description="Consumer group session timeout (a dead worker's shards move after it).",
    )
    kafka_heartbeat_interval_ms: int = Field(default=3000, ge=500, description="Consumer group heartbeat.")
    liveness_max_age_seconds: float = Field(
        default=60.0,
        gt=0,
        description="/healthz fails when the supervisor loop has not beaten for this long.",
    )
    create_topics: bool = Field(
        default=False, description="Create missing registry topics at start (local runs; replication 1)."
    )

    def mime_limits(self) -> MimeLimits:
        """The structure limits of ``mime_*`` as :class:`laifaxin_shared.mime.MimeLimits`."""
        return MimeLimits(
            max_header_bytes=self.mime_max_header_bytes,
            max_header_field_bytes=self.mime_max_header_field_bytes,
            max_header_line_bytes=self.mime_max_header_line_bytes,
            max_encoded_words=self.mime_max_encoded_words,
            max_parts=self.mime_max_parts,
            max_depth=self.mime_max_depth,
        )
