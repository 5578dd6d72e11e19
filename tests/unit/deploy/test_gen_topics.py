"""deploy/k8s/gen_topics.py: the committed KafkaTopics and ScaledObject follow the topic registry."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from deploy.k8s import gen_topics
from laifaxin_shared.topics import MAILBOX_PARTITIONS, TOPICS


def test_committed_files_match_the_registry() -> None:
    stale = gen_topics.drifted()
    assert not stale, f"{[str(p) for p in stale]} drifted; run: uv run python deploy/k8s/gen_topics.py"


def test_drift_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = dict(TOPICS)
    changed["mail.received"] = dataclasses.replace(TOPICS["mail.received"], retention_ms=1)
    monkeypatch.setattr(gen_topics, "TOPICS", changed)
    assert gen_topics.drifted() == [gen_topics.TOPICS_FILE]
    assert gen_topics.main(["--check"]) == 1


def test_one_kafka_topic_per_registry_entry() -> None:
    docs = list(yaml.safe_load_all(gen_topics.TOPICS_FILE.read_text(encoding="utf-8")))
    by_name = {d["spec"]["topicName"]: d for d in docs}
    assert set(by_name) == set(TOPICS)
    for name, spec in TOPICS.items():
        doc = by_name[name]
        assert doc["spec"]["partitions"] == spec.partitions
        assert doc["spec"]["replicas"] == spec.replication_factor
        assert doc["spec"]["config"] == spec.kafka_config()
    # Kubernetes names allow no underscore; the real name stays in spec.topicName.
    assert by_name["mailbox.sync_status"]["metadata"]["name"] == "mailbox.sync-status"


def test_scaled_object_bounds_sync_by_its_partitions() -> None:
    doc, auth = yaml.safe_load_all(gen_topics.SCALEDOBJECT_FILE.read_text(encoding="utf-8"))
    assert doc["spec"]["maxReplicaCount"] == MAILBOX_PARTITIONS
    topics = {t["metadata"]["topic"] for t in doc["spec"]["triggers"]}
    assert topics == {s.name for s in TOPICS.values() if "sync" in s.consumers}
    assert "mailbox.verified" in topics
    # the lag triggers log in as sync does: SASL_SSL with sync's Kafka user
    assert all(t["authenticationRef"]["name"] == auth["metadata"]["name"] for t in doc["spec"]["triggers"])
    assert all(
        t["metadata"]["sasl"] == "scram_sha512" and t["metadata"]["tls"] == "enable"
        for t in doc["spec"]["triggers"]
    )
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"password", "ca"}


def test_kafka_users_get_least_privilege_acls_from_the_registry() -> None:
    users = {
        u["metadata"]["name"]: u
        for u in yaml.safe_load_all(gen_topics.USERS_FILE.read_text(encoding="utf-8"))
    }
    assert set(users) == {f"laifaxin-{s}" for s in ("binding", "sync", "classifier", "notify")}

    def topics(user: str, operation: str) -> set[str]:
        acls = users[user]["spec"]["authorization"]["acls"]
        return {
            a["resource"]["name"]
            for a in acls
            if a["resource"]["type"] == "topic" and operation in a["operations"]
        }

    writers = {u for u in users if "mailbox.verified" in topics(u, "Write")}
    assert writers == {"laifaxin-binding"}  # nobody else can forge mailbox events
    assert topics("laifaxin-classifier", "Write") == {
        t.name for t in TOPICS.values() if "classifier" in t.producers
    }
    assert "mailbox.verified" in topics("laifaxin-sync", "Read")
    assert all(u["spec"]["authentication"]["type"] == "scram-sha-512" for u in users.values())


def test_sync_topics_must_be_co_partitioned() -> None:
    uneven = [TOPICS["mailbox.verified"], dataclasses.replace(TOPICS["mailbox.updated"], partitions=6)]
    with pytest.raises(ValueError, match="share one partition count"):
        gen_topics.sync_max_replicas(uneven)


def test_resource_names_are_dns_subdomains() -> None:
    assert gen_topics.resource_name("notify.retry.0") == "notify.retry.0"
    with pytest.raises(ValueError):
        gen_topics.resource_name("bad topic!")
