"""Prometheus metrics of a sync worker, in one registry served on ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SyncMetrics:
    """The worker's metrics. A fresh registry per instance keeps tests that build several workers apart."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.mailboxes_owned = Gauge(
            "sync_mailboxes_owned", "Mailboxes whose loop runs in this worker.", registry=r
        )
        self.partitions_owned = Gauge("sync_partitions_owned", "mailbox.* partitions assigned.", registry=r)
        self.mailboxes_starting = Gauge(
            "sync_mailboxes_starting",
            "Mailbox loops whose first connection attempt has not finished (waiting for a start slot, "
            "connecting, or in their first pass).",
            registry=r,
        )
        self.mailbox_starts = Counter(
            "sync_mailbox_starts_total",
            "Mailbox loops that finished their first connection attempt (first pass done, or failed).",
            registry=r,
        )
        self.idle_connections = Gauge(
            "sync_idle_connections", "IMAP connections currently in IDLE.", registry=r
        )
        self.user_folders = Gauge(
            "sync_user_folders",
            "User folders (besides INBOX and Junk) that this worker's mailbox loops poll (SYNC_USER_FOLDERS).",
            registry=r,
        )
        self.connections = Gauge("sync_imap_connections", "Open IMAP connections.", registry=r)
        self.published = Counter(
            "sync_messages_published_total",
            "mail.received events acknowledged by Kafka.",
            ["folder_role", "initial_sync"],
            registry=r,
        )
        self.quarantined = Counter(
            "sync_messages_quarantined_total", "Messages sent to mail.received.dlq.", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "sync_messages_duplicate_total",
            "Messages skipped as already indexed (Message-ID or hash).",
            registry=r,
        )
        self.lag = Histogram(
            "sync_arrival_to_publish_seconds",
            "INTERNALDATE to mail.received acknowledged, for new (not initial) mail.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.errors = Counter(
            "sync_errors_total",
            "Mailbox loop failures by taxonomy code; also infrastructure (store or broker), lease_lost, and "
            "connection_closed (a working connection the server closed, reconnected without a report).",
            ["code"],
            registry=r,
        )
        self.notify_wakeups = Counter(
            "sync_notify_wakeups_total",
            "IDLE ended by a NOTIFY STATUS (RFC 5465) for Junk or a user folder, which is then synced at once.",
            registry=r,
        )
        self.status_events = Counter(
            "sync_status_events_total",
            "mailbox.sync_status events sent (transitions and ok refreshes).",
            ["state"],
            registry=r,
        )
        self.catchup_remaining = Gauge(
            "sync_catchup_messages_remaining",
            "Messages the sync passes under way in this worker found to fetch and have not handled yet (a "
            "catch-up of an initial window or after an outage; new mail for a moment).",
            registry=r,
        )
        self.heartbeat = Gauge(
            "sync_supervisor_heartbeat_timestamp", "Last supervisor beat (unix s).", registry=r
        )
