"""End-to-end harness: the four services as separate processes on real servers, driven through their APIs.

Kafka here is the e2e suite's own broker (its own state folder and ports), so a test may restart it without
disturbing anything else; MongoDB, Dovecot and the SMTP server are the session's real servers. WeChat and Web
Push are the loopback services that follow the vendors' contracts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from laifaxin_cli.demo import CORPUS, load_corpus
from tests.support.infra import INFRA, Servers
from tests.support.platform import ALL_CATEGORIES, Platform, running_platform


@dataclass
class OwnKafka:
    """A Kafka broker for the e2e suite alone, which tests may restart."""

    state: Path
    env: dict[str, str]
    bootstrap: str

    def _infra(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, str(INFRA), *args], env=self.env, capture_output=True, text=True, timeout=240
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    def stop(self) -> None:
        """Stop the broker (SIGTERM to its process group, as an orchestrator would) and wait for it."""
        pid = int((self.state / "run" / "kafka.pid").read_text())
        os.killpg(pid, signal.SIGTERM)
        for _ in range(300):
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)

    def start(self) -> None:
        self._infra("up", "--only", "kafka")


@pytest.fixture(scope="session")
def own_kafka(tmp_path_factory: pytest.TempPathFactory, real_servers: Servers) -> Iterator[OwnKafka]:
    state = tmp_path_factory.mktemp("e2e-kafka") / "state"
    port = 39000 + os.getpid() % 500 * 2
    env = dict(
        os.environ,
        LAIFAXIN_STATE_DIR=str(state),
        LAIFAXIN_KAFKA_PORT=str(port),
        LAIFAXIN_KAFKA_CONTROLLER_PORT=str(port + 1),
    )
    kafka = OwnKafka(state, env, f"127.0.0.1:{port}")
    kafka.start()
    try:
        yield kafka
    finally:
        subprocess.run([sys.executable, str(INFRA), "down"], env=env, capture_output=True, timeout=120)


def corpus_messages() -> list[bytes]:
    """The demo corpus minus the unparseable file: one message per category at least, many languages."""
    return [raw for name, raw in load_corpus(CORPUS) if "garbage" not in name]


@pytest.fixture
async def platform(
    real_servers: Servers,
    own_kafka: OwnKafka,
    new_mail_account: Any,
    tmp_path: Path,
) -> AsyncIterator[Platform]:
    """The platform with one sync worker, alerts for every category on all three channels."""
    async with running_platform(
        kafka_bootstrap_servers=own_kafka.bootstrap,
        mongodb_url=real_servers.mongodb_url,
        mail=real_servers.mail,
        log_dir=tmp_path / "logs",
        relay=new_mail_account(),
        categories=list(ALL_CATEGORIES),
        tenant_id="tenant-e2e",
        extra_env={
            "notify": {"NOTIFY_RETRY_DELAYS_S": "[1, 2, 4]"},
            "sync": {
                "SYNC_LEASE_TTL_SECONDS": "10",
                "SYNC_KAFKA_SESSION_TIMEOUT_MS": "10000",
                "SYNC_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
                "SYNC_BACKOFF_MIN_SECONDS": "0.5",
                "SYNC_BACKOFF_MAX_SECONDS": "3",
            },
        },
    ) as plat:
        try:
            yield plat
        finally:
            for p in plat.stack.processes.values():
                if p.proc is not None and p.proc.returncode not in (0, -15, None):
                    print(f"--- {p.name} exited {p.proc.returncode}:\n{p.tail(2000)}")
