"""Where the real servers are, for tests and benchmarks.

Order of preference (issue 2, ARCHITECTURE.md "Real parts"):

1. Explicit environment: ``KAFKA_BOOTSTRAP_SERVERS``, ``MONGODB_URL``, and for mail ``LAIFAXIN_INFRA_FILE``
   (an ``infra.json`` as written by ``deploy/local/infra.py up``).
2. testcontainers, for Kafka and MongoDB, when a Docker engine answers.
3. ``deploy/local``: a running stack's ``infra.json``, or the stack started here (and stopped at the end).

With ``CI`` set, a server that cannot be had fails the run; outside CI the tests that need it are skipped with
the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "deploy" / "local" / "infra.py"


class ServersUnavailable(RuntimeError):
    """The real servers could not be found or started."""


@dataclass
class Servers:
    """Endpoints of the real servers, as in ``infra.json``."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    mail: dict[str, Any]
    started_here: bool = False

    @property
    def ca_file(self) -> str:
        return str(self.mail["ca_file"])


def _answers(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
            return True
    except OSError:
        return False


def docker_answers() -> bool:
    """True when a Docker engine responds to ping (testcontainers can be used)."""
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
    except Exception:  # noqa: BLE001  any failure means "no engine": the docker client raises many types
        return False
    return True


def state_file() -> Path:
    env = os.environ.get("LAIFAXIN_INFRA_FILE")
    if env:
        return Path(env)
    state = Path(os.environ.get("LAIFAXIN_STATE_DIR", ROOT / "deploy" / "local" / "state"))
    return state / "infra.json"


def _read_state() -> dict[str, Any] | None:
    path = state_file()
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    if not (_answers(f"127.0.0.1:{data['imaps_port']}") and _answers(f"127.0.0.1:{data['smtps_port']}")):
        return None
    return data


def _testcontainers(
    need_kafka: bool, need_mongo: bool, stack: contextlib.ExitStack
) -> tuple[str | None, str | None]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    kafka = mongo = None
    if need_kafka:
        kafka = stack.enter_context(KafkaContainer().with_kraft()).get_bootstrap_server()
    if need_mongo:
        mongo = stack.enter_context(MongoDbContainer("mongo:7")).get_connection_url()
    return kafka, mongo


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """Yield the real servers (see the module docstring); stops whatever it started."""
    with contextlib.ExitStack() as stack:
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        mongo = os.environ.get("MONGODB_URL")
        if (not kafka or not mongo) and docker_answers():
            tc_kafka, tc_mongo = _testcontainers(not kafka, not mongo, stack)
            kafka, mongo = kafka or tc_kafka, mongo or tc_mongo
        started = False
        data = _read_state()
        if data is None:
            if os.environ.get("LAIFAXIN_INFRA_FILE"):
                raise ServersUnavailable(
                    f"LAIFAXIN_INFRA_FILE={state_file()} names servers that do not answer"
                )
            only = (
                ["hydra", "hydra-login", "dovecot", "smtp"]
                + ([] if kafka else ["kafka"])
                + ([] if mongo else ["ferretdb"])
            )
            env = dict(os.environ)
            if mongo:
                env["MONGODB_URL"] = mongo
            proc = subprocess.run(
                [sys.executable, str(INFRA), "up", "--only", ",".join(only)],
                capture_output=True,
                text=True,
                env=env,
            )
            if proc.returncode != 0:
                raise ServersUnavailable(f"deploy/local/infra.py up failed:\n{proc.stderr[-4000:]}")
            started = True
            data = _read_state()
            if data is None:
                raise ServersUnavailable("deploy/local started but its servers do not answer")
            if not os.environ.get("LAIFAXIN_KEEP_INFRA"):
                stack.callback(subprocess.run, [sys.executable, str(INFRA), "down"], capture_output=True)
        yield Servers(kafka or data["kafka_bootstrap_servers"], mongo or data["mongodb_url"], data, started)
