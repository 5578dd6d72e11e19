"""Run the four services as separate processes against the real local servers.

Used by ``make demo``, ``make up`` and the end-to-end tests. Each service is started with its own command
(``python -m laifaxin_<service>``), its own environment (standard infra names, its prefixed settings, one
topic prefix and database names for the whole stack) and its own log file, and is stopped with SIGTERM (SIGKILL
after a grace period). Workers can be added, killed with SIGKILL and restarted, which is what the end-to-end
tests do to sync.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from laifaxin_shared.auth import issue_token
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS

ROOT = Path(__file__).resolve().parents[2]
JWT_AUDIENCES = {"binding": "laifaxin-binding", "notify": "laifaxin-notify"}
"""Each HTTP service's own ``aud`` (a token for one is refused by the other)."""


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """One service process: command, environment, health URL and log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    health_url: str | None
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> None:
        """Start the process in its own session, logging to :attr:`log_path`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603  (a fixed command line of our own)
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=ROOT,
        )
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the health URL answers 200 (or, without one, until the process has run 1 s).

        Raises:
            RuntimeError: the process exited or did not become ready; the message ends with its log's tail.
        """
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc and self.proc.returncode}:\n{self.tail()}"
                    )
                if self.health_url is None:
                    if time.monotonic() - self.started_at > 1.0:
                        return
                else:
                    try:
                        if (await client.get(self.health_url)).status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass  # not listening yet
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        """The end of the log file."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, for the end-to-end tests)."""
        if self.proc is not None and self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s`` seconds."""
        if self.proc is None or not self.alive:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class StackConfig:
    """Where the servers are and how the services are wired to them."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    mail: dict[str, Any]
    topic_prefix: str
    db_prefix: str
    log_dir: Path
    # Each HTTP service has its own key, fresh per stack: neither can mint the other's tokens.
    binding_jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    notify_jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    wechat_api_base: str | None = None
    wechat_appid: str = "wxdemo0000000001"
    wechat_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    wechat_template_id: str = "TPL_NEW_REPLY"
    smtp_relay_user: str | None = None
    smtp_relay_password: str | None = None
    vapid_private_key: str | None = None
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def common_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BINDING_", "SYNC_", "CLASSIFIER_", "NOTIFY_"))
        }
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.kafka_bootstrap_servers,
            MONGODB_URL=self.mongodb_url,
            LAIFAXIN_TOPIC_PREFIX=self.topic_prefix,
            LAIFAXIN_ENVIRONMENT="development",
            LAIFAXIN_CREDENTIAL_KEYS=DEV_CREDENTIAL_KEYS,
            LAIFAXIN_CREDENTIAL_ACTIVE_KEY_ID="dev-0",
            LAIFAXIN_LOG_JSON="true",
            PYTHONUNBUFFERED="1",
        )
        return env

    def token(self, tenant_id: str, user_id: str, ttl_s: int = 7200, *, service: str = "binding") -> str:
        """A bearer JWT for ``service`` (``binding`` or ``notify``) with that service's key and audience
        (:func:`laifaxin_shared.auth.issue_token`); ``ttl_s`` at most 24 h (the services' maximum lifetime)."""
        secret = self.binding_jwt_secret if service == "binding" else self.notify_jwt_secret
        return issue_token(secret, tenant_id, user_id, ttl_s=ttl_s, audience=JWT_AUDIENCES[service])


@dataclass
class Stack:
    """The four services as processes; ``sync`` may have several workers."""

    config: StackConfig
    binding_port: int = field(default_factory=free_port)
    notify_port: int = field(default_factory=free_port)
    classifier_port: int = field(default_factory=free_port)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    _sync_seq: int = 0

    @property
    def binding_url(self) -> str:
        return f"http://127.0.0.1:{self.binding_port}"

    @property
    def notify_url(self) -> str:
        return f"http://127.0.0.1:{self.notify_port}"

    def _process(
        self, name: str, module: str, env: dict[str, str], port: int | None, *args: str
    ) -> ServiceProcess:
        cfg = self.config
        full_env = {**cfg.common_env(), **env, **cfg.extra_env.get(name.split("-")[0], {})}
        health = f"http://127.0.0.1:{port}/healthz" if port else None
        return ServiceProcess(
            name, [sys.executable, "-m", module, *args], full_env, health, cfg.log_dir / f"{name}.log"
        )

    def binding(self) -> ServiceProcess:
        cfg = self.config
        env = {
            "BINDING_HTTP_HOST": "127.0.0.1",
            "BINDING_HTTP_PORT": str(self.binding_port),
            "BINDING_MONGODB_DATABASE": f"{cfg.db_prefix}binding",
            "BINDING_JWT_SECRET": cfg.binding_jwt_secret,
            "BINDING_JWT_AUDIENCE": JWT_AUDIENCES["binding"],
            "BINDING_HOST_ALLOWLIST": "127.0.0.1,localhost,::1",
            "BINDING_CA_FILE": str(cfg.mail["ca_file"]),
        }
        return self._process("binding", "laifaxin_binding", env, self.binding_port)

    def sync(self) -> ServiceProcess:
        cfg = self.config
        self._sync_seq += 1
        port = free_port()
        env = {
            "SYNC_HTTP_HOST": "127.0.0.1",
            "SYNC_HTTP_PORT": str(port),
            "SYNC_MONGODB_DATABASE": f"{cfg.db_prefix}sync",
            "SYNC_WORKER_ID": f"sync-{self._sync_seq}",
            "SYNC_TLS_CA_FILE": str(cfg.mail["ca_file"]),
            "SYNC_HOST_ALLOWLIST": "127.0.0.1,localhost,::1",
        }
        return self._process(f"sync-{self._sync_seq}", "laifaxin_sync", env, port)

    def classifier(self) -> ServiceProcess:
        env = {
            "CLASSIFIER_HTTP_HOST": "127.0.0.1",
            "CLASSIFIER_HTTP_PORT": str(self.classifier_port),
            "CLASSIFIER_MONGODB_DATABASE": f"{self.config.db_prefix}classifier",
        }
        return self._process("classifier", "laifaxin_classifier", env, self.classifier_port)

    def notify(self) -> ServiceProcess:
        cfg = self.config
        mail = cfg.mail
        env = {
            "NOTIFY_HTTP_HOST": "127.0.0.1",
            "NOTIFY_HTTP_PORT": str(self.notify_port),
            "NOTIFY_MONGODB_DATABASE": f"{cfg.db_prefix}notify",
            "NOTIFY_JWT_SECRET": cfg.notify_jwt_secret,
            "NOTIFY_JWT_AUDIENCE": JWT_AUDIENCES["notify"],
            "NOTIFY_PUBLIC_BASE_URL": self.notify_url,
            "NOTIFY_SMTP_HOST": str(mail["smtp_host"]),
            "NOTIFY_SMTP_PORT": str(mail["smtps_port"]),
            "NOTIFY_SMTP_SECURITY": "ssl",
            "NOTIFY_SMTP_CA_FILE": str(mail["ca_file"]),
            "NOTIFY_SMTP_FROM": "Laifaxin alerts <alerts@laifaxin.test>",
        }
        if cfg.smtp_relay_user and cfg.smtp_relay_password:
            env["NOTIFY_SMTP_USERNAME"] = cfg.smtp_relay_user
            env["NOTIFY_SMTP_PASSWORD"] = cfg.smtp_relay_password
        if cfg.wechat_api_base:
            env.update(
                NOTIFY_WECHAT_API_BASE=cfg.wechat_api_base,
                NOTIFY_WECHAT_APPID=cfg.wechat_appid,
                NOTIFY_WECHAT_SECRET=cfg.wechat_secret,
                NOTIFY_WECHAT_TEMPLATE_ID=cfg.wechat_template_id,
            )
        if cfg.vapid_private_key:
            env["NOTIFY_VAPID_PRIVATE_KEY"] = cfg.vapid_private_key
        return self._process("notify", "laifaxin_notify", env, self.notify_port, "serve")

    async def start(self, sync_workers: int = 1) -> None:
        """Start every service and wait until each is ready."""
        procs = [self.binding(), self.classifier(), self.notify()] + [
            self.sync() for _ in range(sync_workers)
        ]
        for p in procs:
            self.processes[p.name] = p
            p.start()
        await asyncio.gather(*(p.wait_ready() for p in procs))

    async def add_sync_worker(self) -> ServiceProcess:
        """Start one more sync worker (scaling out) and wait until it is ready."""
        p = self.sync()
        self.processes[p.name] = p
        p.start()
        await p.wait_ready()
        return p

    def sync_workers(self) -> list[ServiceProcess]:
        return [p for n, p in self.processes.items() if n.startswith("sync-") and p.alive]

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL)."""
        for p in reversed(list(self.processes.values())):
            p.stop()
