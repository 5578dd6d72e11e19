"""``make up`` / ``make down``: the platform running on the local servers until stopped.

``up`` starts the real servers (deploy/local) and the four services as detached processes, waits until each
is ready, and writes ``deploy/local/state/platform.json`` (URLs, pids, log files, and a development bearer
token for the HTTP APIs). Alerts go by email through the local SMTP server (WeChat needs an Official Account;
set ``NOTIFY_WECHAT_*`` to use one) and by Web Push to real browsers (the VAPID key is generated once and kept
in the state folder). ``down`` stops the services and the servers. ``status`` shows what runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .stack import ROOT, Stack, StackConfig

STATE = Path(os.environ.get("LAIFAXIN_STATE_DIR", ROOT / "deploy" / "local" / "state"))
PLATFORM = STATE / "platform.json"
INFRA = ROOT / "deploy" / "local" / "infra.py"
TENANT, USER = "tenant-local", "user-local"


def _infra(*args: str) -> None:
    subprocess.run([sys.executable, str(INFRA), *args], check=True)  # noqa: S603  (our own fixed command)


def _vapid_key() -> str:
    """A P-256 private key for VAPID (RFC 8292), generated once per state folder (PEM text)."""
    path = STATE / "vapid.pem"
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        path.chmod(0o600)
    return path.read_text()


async def up() -> dict[str, Any]:
    if PLATFORM.exists():
        raise SystemExit(f"the platform is already up ({PLATFORM}); `make down` first")
    _infra("up")
    mail = json.loads((STATE / "infra.json").read_text())
    config = StackConfig(
        kafka_bootstrap_servers=mail["kafka_bootstrap_servers"],
        mongodb_url=mail["mongodb_url"],
        mail=mail,
        topic_prefix="",
        db_prefix="local_",
        log_dir=STATE / "logs" / "platform",
        vapid_private_key=_vapid_key(),
    )
    from laifaxin_shared.kafka import ensure_topics

    await ensure_topics(config.kafka_bootstrap_servers, replication_factor=1)
    stack = Stack(config)
    try:
        await stack.start()
    except Exception:
        stack.stop()
        raise
    info = {
        "binding_url": stack.binding_url,
        "notify_url": stack.notify_url,
        # Tokens live at most 24 h (the services' maximum lifetime); mint fresh ones with
        # `laifaxin-mail mailbox token` (binding's settings) after that.
        "token": config.token(TENANT, USER, ttl_s=86400),
        "notify_token": config.token(TENANT, USER, ttl_s=86400, service="notify"),
        "binding_jwt_secret": config.binding_jwt_secret,
        "tenant_id": TENANT,
        "user_id": USER,
        "processes": {
            n: {"pid": p.proc.pid if p.proc else None, "log": str(p.log_path)}
            for n, p in stack.processes.items()
        },
        "started_at": time.time(),
    }
    PLATFORM.write_text(json.dumps(info, indent=2))
    PLATFORM.chmod(0o600)
    return info


def down() -> None:
    if PLATFORM.exists():
        info = json.loads(PLATFORM.read_text())
        for name, proc in info["processes"].items():
            pid = proc.get("pid")
            if pid:
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                for _ in range(75):
                    try:
                        os.killpg(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.2)
                else:
                    os.killpg(pid, signal.SIGKILL)
                print(f"stopped {name}", file=sys.stderr)
        PLATFORM.unlink()
    _infra("down")


def status() -> int:
    if not PLATFORM.exists():
        print("the platform is not up (`make up`)")
        return 1
    info = json.loads(PLATFORM.read_text())
    bad = 0
    for name, proc in info["processes"].items():
        try:
            os.killpg(proc["pid"], 0)
            state = "running"
        except (ProcessLookupError, TypeError):
            state, bad = "stopped", bad + 1
        print(f"{name:12s} {state:8s} pid={proc['pid']} log={proc['log']}")
    print(f"binding API  {info['binding_url']}/docs   notify API  {info['notify_url']}/docs")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the platform until stopped")
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    if args.command == "up":
        info = asyncio.run(up())
        print(f"""
The platform is up.
  binding API   {info["binding_url"]}/docs
  notify API    {info["notify_url"]}/docs   (browser alerts: open {info["notify_url"]}/)
  token         export LAIFAXIN_TOKEN=$(python3 -c "import json;print(json.load(open('{PLATFORM}'))['token'])")
  bind a mailbox:
    curl -s -X POST {info["binding_url"]}/v1/mailboxes -H "Authorization: Bearer $LAIFAXIN_TOKEN" \\
      -H 'Content-Type: application/json' -d '{{"email": "you@163.com", "password": "YOUR_AUTH_CODE"}}'
  status: make status-platform    stop: make down
""")
        return 0
    if args.command == "down":
        down()
        return 0
    return status()


if __name__ == "__main__":
    sys.exit(main())
