"""Generate the event catalog and API documents from the code, so they cannot drift from it.

Writes:
- ``docs/events.md``: every topic of the registry (key, partitions, retention, producers, consumers), its fields
  with descriptions, an example payload, and how to consume idempotently;
- ``docs/asyncapi/<service>.json``: each service's AsyncAPI 3.0 document from its FastStream app (the same as
  ``faststream docs gen``), and ``docs/asyncapi/platform.json`` with every topic of the registry;
- ``docs/openapi/<service>.json``: the OpenAPI documents of the HTTP services (binding, notify, inbox).

``tests/unit/docs/test_docs_current.py`` regenerates in memory and fails when a committed document differs.
Run: ``uv run python docs/generate.py`` (``--check`` exits 1 on drift instead of writing).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from laifaxin_shared.topics import TOPICS, TopicSpec

DOCS = Path(__file__).resolve().parent
DOC_KAFKA = "kafka:9092"  # a fixed server name, so documents do not depend on the machine that made them
DAY_MS = 86_400_000


def _settings(module: str, cls: str, **extra: Any) -> Any:
    settings_cls = getattr(importlib.import_module(module), cls)
    return settings_cls(kafka_bootstrap_servers=DOC_KAFKA, topic_prefix="", **extra)


def _classifier_asyncapi() -> dict[str, Any]:
    from laifaxin_classifier.service import create_app

    app = create_app(_settings("laifaxin_classifier.service", "ClassifierSettings"))
    spec: dict[str, Any] = app.schema.to_specification().to_jsonable()
    return spec


def _broker_asyncapi(broker: Any, title: str, description: str) -> dict[str, Any]:
    from faststream.specification import AsyncAPI

    spec: dict[str, Any] = (
        AsyncAPI(broker, title=title, version="1.0.0", description=description)
        .to_specification()
        .to_jsonable()
    )
    return spec


def _binding_app() -> Any:
    from laifaxin_binding.app import create_app

    return create_app(_settings("laifaxin_binding.settings", "BindingSettings"), start_broker=False)


def _binding_asyncapi() -> dict[str, Any]:
    return _broker_asyncapi(
        _binding_app().state.broker,
        "Laifaxin binding",
        "Publishes mailbox.verified, mailbox.updated and mailbox.removed; consumes mailbox.sync_status.",
    )


def _binding_openapi() -> dict[str, Any]:
    spec: dict[str, Any] = _binding_app().openapi()
    return spec


def _notify_settings() -> Any:
    return _settings("laifaxin_notify.settings", "NotifySettings")


def _notify_asyncapi() -> dict[str, Any]:
    from laifaxin_notify.consumer import register
    from laifaxin_shared.kafka import make_broker

    settings = _notify_settings()
    broker = make_broker(settings, client_id="notify")
    register(broker, settings, lambda: None)  # type: ignore[arg-type, return-value]  (never called: docs only)
    return _broker_asyncapi(
        broker,
        "Laifaxin notify",
        "Consumes mail.classified and mailbox.removed; retry, deferred and dead-letter delivery topics.",
    )


def _notify_openapi() -> dict[str, Any]:
    from laifaxin_notify.app import create_app

    spec: dict[str, Any] = create_app(_notify_settings(), consume=False).openapi()
    return spec


def _inbox_app() -> Any:
    from laifaxin_inbox.app import create_app

    return create_app(_settings("laifaxin_inbox.settings", "InboxSettings"))


def _inbox_asyncapi() -> dict[str, Any]:
    return _broker_asyncapi(
        _inbox_app().state.broker,
        "Laifaxin inbox",
        "Consumes mail.received, mail.classified, mail.sent, mailbox.verified and mailbox.removed into the "
        "unified inbox's read model; publishes nothing (invalid records go to <topic>.dlq).",
    )


def _inbox_openapi() -> dict[str, Any]:
    spec: dict[str, Any] = _inbox_app().openapi()
    return spec


def _doc_handler(model: Any) -> Any:
    async def handler(event: Any) -> None:  # never called: documents the payload model
        return None

    handler.__annotations__ = {"event": model, "return": None}
    return handler


def _sync_asyncapi() -> dict[str, Any]:
    import asyncio

    from laifaxin_sync.app import SyncWorker

    async def build() -> dict[str, Any]:  # the worker's Kafka objects want a running event loop
        settings = _settings("laifaxin_sync.settings", "SyncSettings")
        worker = SyncWorker(settings)
        # The registry is consumed with aiokafka directly (rebalance listener, range assignor): describe it.
        for name in ("mailbox.verified", "mailbox.updated", "mailbox.removed"):
            topic = TOPICS[name]
            worker.broker.subscriber(
                settings.topic(name),
                group_id=settings.group_id,
                title=f"{name}:sync",
                description=f"Shard ownership and mailbox registry: {topic.description}",
            )(_doc_handler(topic.model))
        spec = _broker_asyncapi(
            worker.broker,
            "Laifaxin sync",
            "Consumes mailbox.verified/updated/removed (shard ownership); publishes mail.received, "
            "mailbox.sync_status and mail.received.dlq.",
        )
        await worker.mongo.close()
        await worker.registry.consumer.stop()  # never started; closed so aiokafka does not warn
        return spec

    return asyncio.run(build())


def _send_app() -> Any:
    from laifaxin_send.app import create_app

    return create_app(
        _settings("laifaxin_send.settings", "SendSettings", worker_id="send-doc"),
        start_broker=False,
        run_dispatcher=False,
    )


def _send_asyncapi() -> dict[str, Any]:
    return _broker_asyncapi(
        _send_app().state.broker,
        "Laifaxin send",
        "Consumes mail.send commands, mailbox.verified/updated/removed (its mailbox copy) and mail.classified "
        "(bounce-rate guard); publishes mail.sent, mail.send_failed and mailbox.sync_status (source send).",
    )


def _send_openapi() -> dict[str, Any]:
    spec: dict[str, Any] = _send_app().openapi()
    return spec


ASYNCAPI: dict[str, Callable[[], dict[str, Any]]] = {
    "binding": _binding_asyncapi,
    "classifier": _classifier_asyncapi,
    "inbox": _inbox_asyncapi,
    "notify": _notify_asyncapi,
    "send": _send_asyncapi,
    "sync": _sync_asyncapi,
}
OPENAPI: dict[str, Callable[[], dict[str, Any]]] = {
    "binding": _binding_openapi,
    "inbox": _inbox_openapi,
    "notify": _notify_openapi,
    "send": _send_openapi,
}


def _type_of(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " | ".join(_type_of(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list[{_type_of(prop.get('items', {}))}]"
    if prop.get("type") == "object" and "additionalProperties" in prop:
        return f"dict[str, {_type_of(prop['additionalProperties'])}]"
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    fmt = prop.get("format")
    return f"{prop.get('type', 'any')}{f' ({fmt})' if fmt else ''}"


def _fields_table(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        desc = (prop.get("description") or "").replace("|", "\\|").replace("\n", " ")
        kind = _type_of(prop).replace("|", "\\|")
        rows.append(f"| `{name}` | {kind} | {'yes' if name in required else 'no'} | {desc} |")
    return rows


def _retention(ms: int) -> str:
    return f"{ms // DAY_MS} days" if ms % DAY_MS == 0 else f"{ms} ms"


INTRO = """# Event catalog

Generated by `docs/generate.py` from `laifaxin_shared.topics` and `laifaxin_shared.events`; do not edit by
hand (`tests/unit/docs/test_docs_current.py` fails when this file drifts from the code). The AsyncAPI documents
of each service are in `docs/asyncapi/`.

## How to consume

- **Keys and order.** Every record is keyed by `mailbox_id` (UTF-8); Kafka's default partitioner (murmur2) puts
  all events of one mailbox on one partition of each topic, in order. The `mailbox.*` topics are co-partitioned
  (same partition count), which is what sync's shard ownership relies on.
- **Delivery is at-least-once.** Producers use `acks=all` and idempotence, but a producer may publish the same
  fact twice after a crash. Consume idempotently: remember `event_id` (UUID) or the natural key — for message
  events `ref.mailbox_id/ref.folder/ref.uidvalidity/ref.uid`. `mail.classified` derives its `event_id` from the
  natural key (UUID5), so a re-published classification carries the same id.
- **Commit after processing.** Use your own consumer group, disable auto-commit (FastStream: an explicit
  `ack_policy`, not the default `ACK_FIRST`) and commit after your side effect.
- **Schema evolution.** Each event has `schema_version`. Within a version producers only add optional fields;
  ignore fields you do not know. A breaking change bumps the version.
- **Headers.** `event-type` (the topic name without prefix), `event-id`, `schema-version`,
  `content-type: application/json`.
- **Dead letters.** A record that does not validate against its topic's model is copied by the consumer to
  `<topic>.dlq` with its original key, bytes and headers, plus `x-dlq-error`, `x-dlq-error-type`, `x-dlq-topic`,
  `x-dlq-partition`, `x-dlq-offset`, `x-dlq-group`, `x-dlq-timestamp`; the consumer then goes on.
- **Secrets.** A mailbox credential only ever travels as `EncryptedCredential` (AES-256-GCM, key id + nonce +
  ciphertext); no event carries a password, token or key.
- **Prefixes.** A deployment may prefix every topic name (`LAIFAXIN_TOPIC_PREFIX`), e.g. per environment.

## Topics

| topic | key | partitions | retention | producers | consumers | value |
|---|---|---|---|---|---|---|
"""


def events_md() -> str:
    lines = [INTRO.rstrip("\n")]
    for spec in TOPICS.values():
        if spec.model is not None:
            value = spec.model.__name__
        elif spec.name.endswith(".dlq"):
            value = "original bytes + x-dlq-* headers"
        else:
            value = f"internal to {', '.join(spec.consumers)}: {spec.description}"
        lines.append(
            f"| `{spec.name}` | {spec.key} | {spec.partitions} | {_retention(spec.retention_ms)} ({spec.cleanup_policy}) "
            f"| {', '.join(spec.producers)} | {', '.join(spec.consumers)} | {value} |"
        )
    defs: dict[str, Any] = {}
    for spec in TOPICS.values():
        if spec.model is not None:
            lines += _topic_section(spec, defs)
    lines += ["", "## Shared types", ""]
    for name in sorted(defs):
        schema = defs[name]
        lines += [f"### {name}", "", (schema.get("description") or "").strip(), ""]
        if "properties" in schema:
            lines += _fields_table(schema)
        elif "enum" in schema:
            lines.append("One of: " + ", ".join(f"`{v}`" for v in schema["enum"]))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _topic_section(spec: TopicSpec, defs: dict[str, Any]) -> list[str]:
    assert spec.model is not None
    schema = spec.model.model_json_schema(by_alias=True)
    defs.update(schema.get("$defs", {}))
    example = spec.examples()[0]
    return [
        "",
        f"## `{spec.name}`",
        "",
        spec.description,
        "",
        f"- Model: `laifaxin_shared.events.{spec.model.__name__}` (schema_version 1)",
        f"- Key: `{spec.key}`; partitions: {spec.partitions}; retention: {_retention(spec.retention_ms)};"
        f" cleanup: {spec.cleanup_policy}",
        f"- Produced by: {', '.join(spec.producers)}; consumed by: {', '.join(spec.consumers)};"
        f" dead letters: `{spec.dlq}`",
        "",
        (schema.get("description") or "").strip(),
        "",
        *_fields_table(schema),
        "",
        "Example:",
        "",
        "```json",
        json.dumps(example, indent=2, ensure_ascii=False),
        "```",
    ]


def platform_asyncapi() -> dict[str, Any]:
    """One AsyncAPI 3.0 document with every topic of the registry and its payload schema."""
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for spec in TOPICS.values():
        msg_name = spec.name.replace(".", "_")
        if spec.model is not None:
            schema = spec.model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[spec.model.__name__] = schema
            payload = {"$ref": f"#/components/schemas/{spec.model.__name__}"}
        elif spec.name.endswith(".dlq"):
            payload = {"type": "string", "format": "binary", "description": "the original record's bytes"}
        else:
            payload = {"type": "object", "description": spec.description}
        messages[msg_name] = {
            "name": msg_name,
            "contentType": "application/json",
            "payload": payload,
            "description": spec.description,
        }
        channels[spec.name] = {
            "address": spec.name,
            "description": spec.description,
            "messages": {msg_name: {"$ref": f"#/components/messages/{msg_name}"}},
            "bindings": {
                "kafka": {
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "bindingVersion": "0.5.0",
                    "topicConfiguration": {
                        "cleanup.policy": [spec.cleanup_policy],
                        "retention.ms": spec.retention_ms,
                    },
                }
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Laifaxin mail platform events",
            "version": "1.0.0",
            "description": "Every Kafka topic of the platform; see docs/events.md.",
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {"host": DOC_KAFKA, "protocol": "kafka"}},
        "channels": channels,
        "components": {"messages": messages, "schemas": schemas},
    }


def errors_md() -> str:
    """The IMAP/SMTP error taxonomy: every code binding and sync report, with its message and fix."""
    from laifaxin_shared.providers.errors import CODES

    lines = [
        "# Binding, sync and send error codes",
        "",
        "Generated by `docs/generate.py` from `laifaxin_shared.providers.errors` (the one taxonomy binding's API,",
        "sync's `mailbox.sync_status` events and `laifaxin-mail errors explain` all use). Provider-specific",
        "fixes (where to make a 163 authorization code, a QQ 授权码, a Gmail app password ...) are added to these",
        "texts when the provider is known.",
        "",
        "| code | what happened | how to fix it | 说明 | 解决方法 | retried | sync state |",
        "|---|---|---|---|---|---|---|",
    ]
    for code, info in CODES.items():
        cells = [
            f"`{code}`",
            info.message.en,
            info.fix.en,
            info.message.zh,
            info.fix.zh,
            "yes" if info.retryable else "no",
            info.sync_state or "—",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    from laifaxin_send.errors import REFUSALS

    lines += [
        "",
        "## Send's own refusals",
        "",
        "Send reports server answers with the codes above (`explain_send`: `recipient_unknown`, `message_too_large`,",
        "`content_rejected_spam`, `daily_quota_reached`, `rate_limited`, `sender_not_allowed`, `ip_blocked`,",
        "`unknown_outcome` ...) on `mail.send_failed` and its API; these are decided without a server.",
        "",
        "| code | HTTP | what happened | how to fix it | 说明 | 解决方法 |",
        "|---|---|---|---|---|---|",
    ]
    for code, (status, message, fix) in REFUSALS.items():
        cells = [f"`{code}`", str(status), message.en, fix.en, message.zh, fix.zh]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _json(document: dict[str, Any]) -> str:
    # Sorted keys: FastStream keeps publishers in a set, so its channel order differs between runs.
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


SETTINGS = [
    ("All services (shared names)", "laifaxin_shared.settings", "ServiceSettings"),
    ("binding", "laifaxin_binding.settings", "BindingSettings"),
    ("sync", "laifaxin_sync.settings", "SyncSettings"),
    ("classifier", "laifaxin_classifier.service", "ClassifierSettings"),
    ("notify", "laifaxin_notify.settings", "NotifySettings"),
    ("send", "laifaxin_send.settings", "SendSettings"),
    ("inbox", "laifaxin_inbox.settings", "InboxSettings"),
]


def _env_names(cls: Any, name: str, field: Any) -> list[str]:
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return [c for c in choices if isinstance(c, str) and c.isupper()] or [name.upper()]
    prefix = cls.model_config.get("env_prefix", "")
    return [f"{prefix}{name}".upper()]


def configuration_md() -> str:
    """Every setting of every service: environment variable, default, meaning."""
    from pydantic import SecretStr
    from pydantic_core import PydanticUndefined

    lines = [
        "# Configuration reference",
        "",
        "Generated by `docs/generate.py` from the services' settings classes (pydantic-settings). Infrastructure",
        "settings use their standard names and are shared by every service; a service's own settings carry its",
        "prefix. Secrets (marked 🔒) are never printed; outside `LAIFAXIN_ENVIRONMENT=development|test` a",
        "placeholder secret makes the service refuse to start.",
    ]
    common = set(importlib.import_module("laifaxin_shared.settings").ServiceSettings.model_fields)
    for title, module, cls_name in SETTINGS:
        cls = getattr(importlib.import_module(module), cls_name)
        lines += ["", f"## {title}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            if cls_name != "ServiceSettings" and name in common and field.validation_alias is not None:
                continue  # shared names are listed once, in the first table
            secret = field.annotation is SecretStr or "SecretStr" in str(field.annotation)
            default = field.default
            if default is PydanticUndefined:
                shown = "(required)" if field.default_factory is None else "(computed)"
            elif secret:
                shown = "(set me) 🔒" if default else "(empty) 🔒"
            else:
                shown = f"`{default}`" if default not in (None, "") else "(empty)"
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            env = " / ".join(f"`{e}`" for e in _env_names(cls, name, field))
            lines.append(f"| {env} | {shown} | {desc} |")
    return "\n".join(lines) + "\n"


def documents() -> dict[Path, str]:
    """Every generated document: path -> text."""
    out: dict[Path, str] = {
        DOCS / "events.md": events_md(),
        DOCS / "errors.md": errors_md(),
        DOCS / "configuration.md": configuration_md(),
    }
    out[DOCS / "asyncapi" / "platform.json"] = _json(platform_asyncapi())
    for name, make in ASYNCAPI.items():
        out[DOCS / "asyncapi" / f"{name}.json"] = _json(make())
    for name, make in OPENAPI.items():
        out[DOCS / "openapi" / f"{name}.json"] = _json(make())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Generate docs/events.md and the AsyncAPI/OpenAPI documents")
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed document differs")
    args = parser.parse_args()
    drift = []
    for path, text in documents().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            drift.append(path.relative_to(DOCS.parent))
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if drift:
        print(("out of date: " if args.check else "wrote: ") + ", ".join(map(str, drift)))
    return 1 if args.check and drift else 0


if __name__ == "__main__":
    sys.exit(main())
