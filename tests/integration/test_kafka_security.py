"""Kafka with SASL_SSL (SCRAM-SHA-512 over TLS), as production runs it.

The module starts a SECOND broker of its own with ``deploy/local/infra.py`` and ``LAIFAXIN_KAFKA_SECURITY=sasl_ssl``
in a temporary state folder on free ports (the shared broker is never touched), then produces and consumes through
the shared helpers (:func:`make_broker`, :func:`client_options`, :func:`ensure_topics`) with the right credentials
and is refused with wrong ones, without TLS, and without the CA.

Slow (marked ``slow``): starting the broker took 22-40 s here on a loaded 2-core machine (formatting the SCRAM
users included), the whole module 32-48 s; the broker is started once per module. ``-m "not slow"`` leaves it out
of a quick run; CI runs it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from laifaxin_shared.events import MailboxRemoved
from laifaxin_shared.kafka import client_options, ensure_topics, make_broker, publish_event
from laifaxin_shared.settings import ServiceSettings
from laifaxin_shared.topics import spec
from tests.support.infra import INFRA

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port_pair() -> tuple[int, int]:
    """Two free ports in 30000-39999 (the broker's client and controller listeners)."""
    for _ in range(200):
        port = random.randint(30000, 39998)  # a port, not a secret
        ok = True
        for p in (port, port + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return port, port + 1
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A SASL_SSL broker of this module's own; yields its ``infra.json`` plus the client password."""
    state = tmp_path_factory.mktemp("kafka-sasl") / "state"
    port, controller = _free_port_pair()
    env = {
        **os.environ,
        "LAIFAXIN_STATE_DIR": str(state),
        "LAIFAXIN_KAFKA_PORT": str(port),
        "LAIFAXIN_KAFKA_CONTROLLER_PORT": str(controller),
        "LAIFAXIN_KAFKA_SECURITY": "sasl_ssl",
    }

    def infra(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # our own script with fixed arguments
            [sys.executable, str(INFRA), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    started = time.monotonic()
    up = infra("up", "--only", "kafka")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        print(f"SASL_SSL broker started in {time.monotonic() - started:.1f} s")
        info = json.loads((state / "infra.json").read_text())
        creds = json.loads(Path(info["kafka_sasl_credentials_file"]).read_text())
        yield {**info, "password": creds["password"]}
    finally:
        down = infra("down")
        assert down.returncode == 0, down.stderr[-2000:]


def _settings(info: dict[str, Any], **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": info["kafka_bootstrap_servers"],
        "kafka_security_protocol": info["kafka_security_protocol"],
        "kafka_sasl_mechanism": info["kafka_sasl_mechanism"],
        "kafka_sasl_username": info["kafka_sasl_username"],
        "kafka_sasl_password": SecretStr(info["password"]),
        "kafka_ssl_ca_file": info["kafka_ssl_ca_file"],
        "topic_prefix": f"sec{uuid.uuid4().hex[:8]}.",
    }
    return ServiceSettings(**(values | overrides))


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _refused(settings: ServiceSettings) -> str:
    """Start a consumer with ``settings``; return the error and what aiokafka logged about the failed connection
    (aiokafka's exception only says "Unable to bootstrap"; the reason is in its log). Fails if it connects."""
    consumer = AIOKafkaConsumer(**client_options(settings), request_timeout_ms=8000, metadata_max_age_ms=8000)
    lines = _Lines()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(lines)
    try:
        async with asyncio.timeout(30):
            await consumer.start()
            await consumer.topics()
    except (KafkaError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}\n" + "\n".join(lines.lines)
    finally:
        logger.removeHandler(lines)
        await consumer.stop()
    raise AssertionError("the broker accepted a client it should have refused")


async def test_produce_and_consume_with_the_right_credentials(sasl_broker: dict[str, Any]) -> None:
    assert sasl_broker["kafka_security_protocol"] == "SASL_SSL"
    assert "password" not in json.dumps({k: v for k, v in sasl_broker.items() if k != "password"})
    settings = _settings(sasl_broker)
    created = await ensure_topics(
        settings, [spec("mailbox.removed")], prefix=settings.topic_prefix, replication_factor=1
    )
    assert created == [f"{settings.topic_prefix}mailbox.removed"]

    broker = make_broker(settings, client_id="sasl-test")
    await broker.connect()
    try:
        event = MailboxRemoved(tenant_id="t1", mailbox_id="mbx_sasl", reason="admin")
        await publish_event(broker, event, prefix=settings.topic_prefix)
    finally:
        await broker.stop()

    consumer = AIOKafkaConsumer(
        settings.topic("mailbox.removed"),
        **client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.key == b"mbx_sasl"
    assert MailboxRemoved.model_validate_json(record.value or b"").mailbox_id == "mbx_sasl"


async def test_wrong_password_is_refused(sasl_broker: dict[str, Any]) -> None:
    why = await _refused(_settings(sasl_broker, kafka_sasl_password=SecretStr("not-the-password")))
    assert "Authentication failed" in why or "SaslAuthenticationFailed" in why, why
    assert "not-the-password" not in why


async def test_unknown_user_is_refused(sasl_broker: dict[str, Any]) -> None:
    why = await _refused(_settings(sasl_broker, kafka_sasl_username="mallory"))
    assert "Authentication failed" in why or "SaslAuthenticationFailed" in why, why


async def test_sasl_without_tls_is_refused(sasl_broker: dict[str, Any]) -> None:
    await _refused(_settings(sasl_broker, kafka_security_protocol="SASL_PLAINTEXT"))


async def test_plaintext_is_refused(sasl_broker: dict[str, Any]) -> None:
    await _refused(_settings(sasl_broker, kafka_security_protocol="PLAINTEXT"))


async def test_broker_certificate_is_verified(sasl_broker: dict[str, Any]) -> None:
    """With a CA file that did not sign the broker's certificate the TLS handshake fails, before any password
    is sent."""
    why = await _refused(_settings(sasl_broker, kafka_ssl_ca_file=sasl_broker["untrusted_cert"]))
    assert "CERTIFICATE_VERIFY_FAILED" in why or "certificate verify failed" in why, why
