"""Binding under a large unauthenticated body: memory and time to the answer, with and without the request guard.

binding's app (real FerretDB behind it, no Kafka) runs in a child process under uvicorn; this process sends one
``POST /v1/mailboxes`` with a JSON body of ``--mb`` MiB and no token, over a raw socket, and reads the child's
peak resident set (``VmHWM``) before and after. Without the guard FastAPI buffers and parses the whole body
before it looks at the token; with it (:class:`laifaxin_shared.asgi.RequestGuard`) the ``Content-Length`` alone
decides (413) and the same request sent chunked is refused with 401 before a byte of it is read.

- ``guard_off_rss_growth`` / ``guard_on_rss_growth``: peak RSS growth of the server, MiB.
- ``guard_off_answer`` / ``guard_on_answer``: seconds from the first byte sent to the status line.
- ``guard_off_status`` / ``guard_on_status``: the HTTP status answered.

Prints ``figure: NAME = VALUE UNIT`` lines; ``--quick`` sends 20 MiB instead of 100.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import figure, infra

CHILD = """
import sys, uvicorn
from laifaxin_binding.app import create_app
from laifaxin_binding.settings import BindingSettings
from laifaxin_shared.asgi import RequestGuard
settings = BindingSettings(environment="test", mongodb_url=sys.argv[1], mongodb_database="bench_guard",
                           jwt_secret="bench-guard-jwt-secret-0123456789abcdef", log_level="WARNING")
app = create_app(settings, start_broker=False)
if sys.argv[3] == "off":
    app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestGuard]
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def run_once(guard: str, mib: int) -> tuple[float, float, int]:
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", CHILD, infra()["mongodb_url"], str(port), guard])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        before = peak_rss_mib(child.pid)
        body_len = mib * 1024 * 1024
        prefix, suffix = b'{"email": "', b'", "password": "x"}'
        filler = body_len - len(prefix) - len(suffix)
        head = (
            f"POST /v1/mailboxes HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {body_len}\r\n\r\n"
        ).encode()
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(head + prefix)
            sock.setblocking(False)
            chunk = b"a" * 65536
            sent = 0
            answer = b""
            while not answer:
                try:
                    answer = sock.recv(4096)
                    if not answer:
                        break
                except BlockingIOError:
                    pass
                if sent < filler:
                    try:
                        sent += sock.send(chunk[: min(len(chunk), filler - sent)])
                    except BlockingIOError:
                        time.sleep(0.001)
                    except OSError:
                        break
                    if sent >= filler:
                        sock.sendall(suffix)
                else:
                    time.sleep(0.001)
            elapsed = time.perf_counter() - t0
        status = int(answer.split()[1]) if answer else 0
        time.sleep(0.5)
        return peak_rss_mib(child.pid) - before, elapsed, status
    finally:
        child.terminate()
        child.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 MiB instead of 100")
    parser.add_argument("--mb", type=int, default=None, help="body size, MiB")
    args = parser.parse_args()
    mib = args.mb or (20 if args.quick else 100)
    figure("body_size", mib, "MiB")
    for guard in ("off", "on"):
        growth, elapsed, status = run_once(guard, mib)
        figure(f"guard_{guard}_rss_growth", round(growth, 1), "MiB")
        figure(f"guard_{guard}_answer", round(elapsed, 3), "s")
        figure(f"guard_{guard}_status", status, "status")


if __name__ == "__main__":
    main()
