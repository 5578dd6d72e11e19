from __future__ import annotations

import pytest

from laifaxin_shared.events import Envelope
from laifaxin_shared.kafka import event_key, topic_for
from laifaxin_shared.topics import MAILBOX_PARTITIONS, TOPICS, event_topics, spec

EXPECTED = {
    "mailbox.verified",
    "mailbox.updated",
    "mailbox.removed",
    "mailbox.sync_status",
    "mail.received",
    "mail.classified",
    "mail.sent",
    "contact.status",
}


def test_every_event_topic_is_registered_with_a_dlq() -> None:
    assert {s.name for s in event_topics()} == EXPECTED
    for name in EXPECTED:
        assert spec(name).dlq in TOPICS
        assert spec(spec(name).dlq).model is None


def test_mailbox_keyed_topics_are_co_partitioned() -> None:
    assert {s.partitions for s in event_topics()} == {MAILBOX_PARTITIONS}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_examples_validate_against_the_model(name: str) -> None:
    s = spec(name)
    assert s.model is not None
    examples = s.examples()
    assert examples, f"{name} needs example payloads"
    for payload in examples:
        event = s.model.model_validate(payload)
        assert topic_for(event) == name
        assert event_key(event)
        assert s.model.model_validate_json(event.model_dump_json(by_alias=True)) == event


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_field_has_a_description_and_example(name: str) -> None:
    model = spec(name).model
    assert model is not None
    schema = model.model_json_schema(by_alias=True)
    props = schema["properties"]
    for field, info in props.items():
        assert "description" in info or "$ref" in info or "anyOf" in info or "allOf" in info, (name, field)
    for field_name, field in model.model_fields.items():
        assert field.description, (name, field_name)
        if field.annotation in (str, int, float, bool) and field_name not in Envelope.model_fields:
            assert field.examples, (name, field_name)


def test_no_credential_plaintext_field_exists() -> None:
    verified = spec("mailbox.verified").model
    assert verified is not None
    assert "password" not in verified.model_fields
    assert verified.model_fields["credential"].annotation.__name__ == "EncryptedCredential"


def test_contact_status_is_compacted_and_keyed_by_tenant_and_recipient() -> None:
    s = spec("contact.status")
    assert s.cleanup_policy == "compact"
    assert s.model is not None
    event = s.model.model_validate(s.examples()[0])
    assert event_key(event) == b"tenant-acme:jonas@firma.example"
