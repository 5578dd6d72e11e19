"""deploy/local itself: a second, isolated stack starts, reports status, and stops leaving no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.infra import INFRA, Servers

pytestmark = pytest.mark.integration


def processes_naming(marker: str) -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"{d.name}: {cmdline[:120]}")
    return found


def processes_in_sessions(sids: set[int]) -> list[str]:
    """Processes whose session id is one of ``sids`` (each server is started as its own session)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) in sids and fields[0] != "Z":
                found.append(f"{d.name} (sid {fields[3]})")
    return found


def test_up_status_down_leaves_no_process(tmp_path: Path, real_servers: Servers) -> None:
    state = tmp_path / "state"
    env = dict(
        os.environ,
        LAIFAXIN_STATE_DIR=str(state),
        LAIFAXIN_KAFKA_PORT="39092",
        LAIFAXIN_KAFKA_CONTROLLER_PORT="39093",
        LAIFAXIN_MONGODB_PORT="37117",
        LAIFAXIN_IMAP_PORT="30143",
        LAIFAXIN_IMAPS_PORT="30993",
        LAIFAXIN_SMTP_PORT="30587",
        LAIFAXIN_SMTPS_PORT="30465",
        LAIFAXIN_HYDRA_PUBLIC_PORT="30444",
        LAIFAXIN_HYDRA_ADMIN_PORT="30445",
        LAIFAXIN_HYDRA_LOGIN_PORT="30446",
    )
    env.pop("MONGODB_URL", None)

    def infra(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(INFRA), *args], env=env, capture_output=True, text=True, timeout=240
        )

    try:
        up = infra("up")
        assert up.returncode == 0, up.stderr
        status = infra("status")
        assert status.returncode == 0, status.stdout
        for name in ("kafka", "ferretdb", "hydra", "hydra-login", "dovecot", "smtp"):
            assert f"{name}" in status.stdout and "running" in status.stdout
        assert processes_naming(str(state)), "the stack's processes should name its state folder"
        sids = {int(p.read_text()) for p in (state / "run").glob("*.pid")}
        assert len(sids) == 6  # kafka, ferretdb, hydra, hydra-login, dovecot, smtp
        assert len(processes_in_sessions(sids)) > 4, "Dovecot runs child processes in its session"
    finally:
        down = infra("down")
    assert down.returncode == 0, down.stderr
    assert processes_naming(str(state)) == []
    assert processes_in_sessions(sids) == []
    stopped = infra("status")
    assert stopped.returncode == 1 and "running" not in stopped.stdout


def test_a_clone_inside_a_0700_directory_serves_logins(tmp_path: Path, real_servers: Servers) -> None:
    """A clone inside a directory only root can traverse (``mktemp -d`` makes one 0700): Dovecot, running as
    its own users, must still read the passwd-file and the mail. Starts its own Dovecot and SMTP server (other
    ports, a state folder under the 0700 directory), logs in over IMAPS and SMTPS with a password that has a
    space, and stops them."""
    import imaplib
    import random
    import shutil
    import smtplib
    import ssl
    import tempfile
    import time

    if os.geteuid() != 0:
        pytest.skip("Dovecot runs as other users only when started as root")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    state = private / "clone" / "deploy" / "local" / "state"
    base = random.randrange(30000, 39000, 10)
    dovecot_dir = Path(tempfile.mkdtemp(prefix="laifaxin-dovecot-"))  # 0700; infra.py opens it to 0755
    env = dict(
        os.environ,
        LAIFAXIN_STATE_DIR=str(state),
        LAIFAXIN_DOVECOT_DIR=str(dovecot_dir),
        LAIFAXIN_IMAP_PORT=str(base + 1),
        LAIFAXIN_IMAPS_PORT=str(base + 2),
        LAIFAXIN_SMTP_PORT=str(base + 3),
        LAIFAXIN_SMTPS_PORT=str(base + 4),
    )

    def infra(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(INFRA), *args], env=env, capture_output=True, text=True, timeout=240
        )

    email, password = "spaced@laifaxin.test", "my pass word 7"
    try:
        up = infra("up", "--only", "dovecot,smtp")
        assert up.returncode == 0, up.stderr
        assert "not reachable by Dovecot's users" in up.stderr
        assert (state / "dovecot").is_symlink() and (state / "dovecot").resolve() == dovecot_dir / "dovecot"
        added = infra("add-user", email, password)
        assert added.returncode == 0, added.stderr
        ctx = ssl.create_default_context(cafile=str(state / "tls" / "ca.pem"))
        deadline = time.monotonic() + 15
        while True:
            try:
                with imaplib.IMAP4_SSL("127.0.0.1", base + 2, ssl_context=ctx, timeout=10) as conn:
                    conn.login(email, password)
                    assert conn.select("INBOX")[0] == "OK"  # the mail directory is reachable too
                    conn.logout()
                break
            except imaplib.IMAP4.error:
                if time.monotonic() > deadline:
                    log = (state / "logs" / "dovecot.log").read_text(errors="replace")[-2000:]
                    raise AssertionError(f"login failed; dovecot.log: {log}") from None
                time.sleep(0.3)
        with smtplib.SMTP_SSL("127.0.0.1", base + 4, context=ctx, timeout=10) as smtp:
            smtp.login(email, password)
    finally:
        down = infra("down")
        shutil.rmtree(dovecot_dir, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert processes_naming(str(state)) == []
