"""Install, start, stop and show the real local servers: Kafka, FerretDB, Ory Hydra, Dovecot and an SMTP server.

No Docker: Kafka 4.x runs from Maven Central jars (``kafka/pom.xml``), FerretDB v1 is built from the Go module
proxy, Dovecot comes from Debian packages, and the SMTP submission server is aiosmtpd
(``smtp_server.py``). Ory Hydra (built from the Go module proxy too) is the OAuth 2.0 / OpenID Connect server
that stands in for Microsoft's and Google's sign-in; ``hydra_login.py`` is its login and consent app, and
Dovecot and the SMTP server accept its access tokens (XOAUTH2) by token introspection. Everything lives under one state folder (``LAIFAXIN_STATE_DIR``, default
``deploy/local/state``): configs, data, pid files and logs; downloads and builds are cached under
``LAIFAXIN_CACHE_DIR`` (default ``~/.cache/laifaxin``) so a second run is quick.

Commands::

    infra.py install            resolve/build/install what the servers need (idempotent)
    infra.py up                 install, then start every server and wait until each answers
    infra.py down               stop them all; no process of ours is left behind
    infra.py status             one line per server
    infra.py env                shell ``export`` lines for the running servers
    infra.py add-user EMAIL PW  add (or replace) a mail account in Dovecot's passwd-file, live

After ``up`` the endpoints are written to ``<state>/infra.json`` for tests, benchmarks and the demo.
Ports are configurable (``LAIFAXIN_*_PORT``); the defaults avoid the standard ports. When ``MONGODB_URL`` is
set, that server is used and FerretDB is not started.

``LAIFAXIN_KAFKA_SECURITY=sasl_ssl`` runs the broker's client listener with SASL_SSL (SCRAM-SHA-512 over TLS)
instead of PLAINTEXT, as production does: the keystore is made from the local CA, the SCRAM users are created at
format time, and the client user's name and password are in ``<state>/kafka/client.json`` (mode 0600; ``env``
prints the ``KAFKA_*`` lines that read it). A data directory formatted in one mode is not reused in the other:
``up --fresh`` (or another ``LAIFAXIN_STATE_DIR``) starts over.

Run it with the project's interpreter (``uv run python deploy/local/infra.py``): the SMTP server and the TLS
setup need the project's packages (aiosmtpd, cryptography).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STATE = Path(os.environ.get("LAIFAXIN_STATE_DIR", HERE / "state")).resolve()
CACHE = Path(os.environ.get("LAIFAXIN_CACHE_DIR", Path.home() / ".cache" / "laifaxin")).resolve()
FERRETDB_VERSION = "v1.24.2"
HYDRA_VERSION = "v2.3.0"
# Hydra's own go.mod replaces gobuffalo/pop with Ory's fork; Go ignores replace directives of dependencies, so
# a module that builds Hydra must carry the same line (without it: "p.conn.Store.SQLDB undefined").
HYDRA_POP_REPLACE = "github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b"
MAIL_DOMAIN = "laifaxin.test"
VMAIL_USER = "laifaxin-vmail"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(f"LAIFAXIN_{name}_PORT", default))


PORTS = {
    "kafka": _port("KAFKA", 19092),
    "kafka_controller": _port("KAFKA_CONTROLLER", 19093),
    "mongodb": _port("MONGODB", 27117),
    "imap": _port("IMAP", 10143),
    "imaps": _port("IMAPS", 10993),
    "smtp": _port("SMTP", 10587),
    "smtps": _port("SMTPS", 10465),
    "hydra_public": _port("HYDRA_PUBLIC", 14444),
    "hydra_admin": _port("HYDRA_ADMIN", 14445),
    "hydra_login": _port("HYDRA_LOGIN", 14446),
}


KAFKA_SECURITY = os.environ.get("LAIFAXIN_KAFKA_SECURITY", "plaintext").strip().lower() or "plaintext"
"""``plaintext`` (default) or ``sasl_ssl``: the protocol of the broker's client listener."""
KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"
KAFKA_CLIENT_USER = "laifaxin"
KAFKA_BROKER_USER = "broker"


class InfraError(RuntimeError):
    """A server could not be installed or started; the message says what to do."""


def log(msg: str) -> None:
    print(f"[infra] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]


def is_root() -> bool:
    return os.geteuid() == 0


_apt_updated = False


def apt_install(*packages: str) -> None:
    """Install Debian packages when running as root; otherwise explain what to install."""
    global _apt_updated
    if not is_root():
        raise InfraError(f"missing {', '.join(packages)}: run `sudo apt-get install -y {' '.join(packages)}`")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        log("apt-get update")
        run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
        _apt_updated = True
    log(f"apt-get install {' '.join(packages)}")
    run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env,
        stdout=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------------------------------- install


def java_major() -> int | None:
    if not shutil.which("java"):
        return None
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def ensure_java() -> None:
    major = java_major()
    if major is not None and major >= 17:
        return
    if is_root():
        apt_install("openjdk-17-jre-headless")
        if (java_major() or 0) >= 17:
            return
    raise InfraError(
        f"Kafka 4.x needs Java 17 or newer; found {major or 'no java'}. "
        "Install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless) and put `java` on PATH."
    )


def kafka_version() -> str:
    m = re.search(r"<kafka.version>([^<]+)</kafka.version>", (HERE / "kafka" / "pom.xml").read_text())
    assert m, "kafka.version missing from pom.xml"
    return m.group(1)


def kafka_libs() -> Path:
    return CACHE / f"kafka-{kafka_version()}" / "libs"


def ensure_kafka() -> None:
    ensure_java()
    libs = kafka_libs()
    pom = HERE / "kafka" / "pom.xml"
    stamp = libs / ".pom.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not shutil.which("mvn"):
        if is_root():
            apt_install("maven")
        else:
            raise InfraError("Maven is needed to resolve the Kafka jars: apt-get install maven")
    log(f"resolving Kafka {kafka_version()} jars from Maven Central (cached in ~/.m2 and {libs})")
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
    )
    jars = [p.name for p in libs.glob("*.jar")]
    if not any(j.startswith("log4j-slf4j-impl") for j in jars):
        raise InfraError("log4j-slf4j-impl is missing from the Kafka classpath: the broker would log nothing")
    stamp.write_text(digest)


def ferretdb_binary() -> Path:
    return CACHE / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"


def ensure_ferretdb() -> None:
    binary = ferretdb_binary()
    if binary.exists():
        return
    go = shutil.which("go")
    if not go:
        raise InfraError("Go is needed to build FerretDB from the Go module proxy (go 1.24+): install Go")
    log(f"building FerretDB {FERRETDB_VERSION} from the Go module proxy (first time only, about a minute)")
    env = dict(os.environ, CGO_ENABLED="0")
    env.setdefault("GOTOOLCHAIN", "local")
    info = json.loads(
        run(
            [go, "mod", "download", "-json", f"github.com/FerretDB/FerretDB@{FERRETDB_VERSION}"],
            env=env,
            capture_output=True,
        ).stdout
    )
    work = binary.parent / "src"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(info["Dir"], work)
    for p in work.rglob("*"):
        p.chmod(p.stat().st_mode | 0o200)
    work.chmod(work.stat().st_mode | 0o200)
    # The module zip lacks the generated, git-ignored version.txt; without it the binary panics at start
    # (FerretDB issues #2982 and #4889).
    (work / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
    run([go, "build", "-trimpath", "-buildvcs=false", "-o", str(binary), "./cmd/ferretdb"], cwd=work, env=env)
    shutil.rmtree(work)


def hydra_binary() -> Path:
    return CACHE / f"hydra-{HYDRA_VERSION}" / "hydra"


def ensure_hydra() -> None:
    """Build Ory Hydra from the Go module proxy (cached): the OAuth2/OIDC server standing in for Microsoft/Google.

    A throw-away module requires ``github.com/ory/hydra/v2`` at ``HYDRA_VERSION`` with Hydra's own ``replace``
    for pop, and the binary is built with cgo and the ``sqlite`` tags of Hydra's Makefile, so ``DSN=memory``
    (an in-memory SQLite migrated at start) works.
    """
    binary = hydra_binary()
    if binary.exists():
        return
    go = shutil.which("go")
    if not go:
        raise InfraError("Go is needed to build Ory Hydra from the Go module proxy (go 1.24+): install Go")
    if not shutil.which("gcc") and not shutil.which("cc"):
        if is_root():
            apt_install("gcc", "libc6-dev")
        else:
            raise InfraError("a C compiler is needed for Hydra's SQLite driver: apt-get install gcc")
    log(f"building Ory Hydra {HYDRA_VERSION} from the Go module proxy (first time only, several minutes)")
    env = dict(os.environ, CGO_ENABLED="1")
    env.setdefault("GOTOOLCHAIN", "local")
    work = binary.parent / "src"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    run([go, "mod", "init", "laifaxin.local/hydra"], cwd=work, env=env, stderr=subprocess.DEVNULL)
    run([go, "mod", "edit", f"-replace={HYDRA_POP_REPLACE}"], cwd=work, env=env)
    (work / "tools.go").write_text(
        '//go:build tools\n\npackage tools\n\nimport _ "github.com/ory/hydra/v2"\n', encoding="utf-8"
    )
    run([go, "get", f"github.com/ory/hydra/v2@{HYDRA_VERSION}"], cwd=work, env=env)
    run([go, "mod", "tidy"], cwd=work, env=env)
    tmp = binary.with_suffix(".tmp")
    run(
        [
            go,
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-tags",
            "sqlite,sqlite_omit_load_extension",
            "-o",
            str(tmp),
            "github.com/ory/hydra/v2",
        ],
        cwd=work,
        env=env,
    )
    tmp.replace(binary)
    shutil.rmtree(work)


def ensure_dovecot() -> None:
    if not shutil.which("dovecot") or not Path("/usr/lib/dovecot/imap").exists():
        apt_install("dovecot-core", "dovecot-imapd")
    if is_root():
        try:
            pwd.getpwnam(VMAIL_USER)
        except KeyError:
            log(f"creating system user {VMAIL_USER} to own the local mail store")
            run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", VMAIL_USER])


def install() -> None:
    ensure_kafka()
    if not os.environ.get("MONGODB_URL"):
        ensure_ferretdb()
    ensure_dovecot()
    ensure_hydra()


# ------------------------------------------------------------------------------------------------------- TLS


def ensure_tls() -> None:
    """Make a local CA and a server certificate for localhost / 127.0.0.1 / ::1 (kept for the state's life)."""
    tls = STATE / "tls"
    if (tls / "server.pem").exists() and (tls / "ca.pem").exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    tls.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Laifaxin local test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [
        x509.DNSName("localhost"),
        x509.DNSName(f"imap.{MAIL_DOMAIN}"),
        x509.DNSName(f"smtp.{MAIL_DOMAIN}"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tls / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tls / "server.pem").write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    (tls / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tls / "server.key").chmod(0o600)
    # A second, unrelated CA signs an "untrusted" certificate that tests use to prove verification fails.
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Untrusted rogue CA")])
    rogue = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(rogue_name)
        .public_key(rogue_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(rogue_key, hashes.SHA256())
    )
    (tls / "untrusted.pem").write_bytes(rogue.public_bytes(pem))
    (tls / "untrusted.key").write_bytes(
        rogue_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


# --------------------------------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    ports: tuple[int, ...]
    start: Callable[[], None]

    @property
    def pidfile(self) -> Path:
        return STATE / "run" / f"{self.name}.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))


def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``cmd`` in its own session (so ``down`` can end its whole process group); log to logs/NAME.log."""
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    (STATE / "run").mkdir(parents=True, exist_ok=True)
    out = (STATE / "logs" / f"{name}.out").open("ab")
    proc = subprocess.Popen(
        cmd,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        cwd=cwd,
        preexec_fn=raise_nofile,
    )
    (STATE / "run" / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def wait_until(what: str, ok: Callable[[], bool], timeout: float, pid: int, logfile: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        if not pid_alive(pid):
            tail = logfile.read_text(errors="replace")[-3000:] if logfile.exists() else ""
            raise InfraError(f"{what} exited during start-up; see {logfile}:\n{tail}")
        time.sleep(0.25)
    raise InfraError(f"{what} did not answer within {timeout:.0f} s; see {logfile}")


def kafka_secrets() -> dict[str, str]:
    """The SASL_SSL mode's generated secrets (client and broker SCRAM passwords, keystore password), made once per
    state folder and kept in ``<state>/kafka/secrets.json`` (0600); the client's part also in ``client.json``.
    ``LAIFAXIN_KAFKA_SASL_PASSWORD`` chooses the client password (first start of a state only)."""
    path = STATE / "kafka" / "secrets.json"
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    path.parent.mkdir(parents=True, exist_ok=True)
    secrets = {
        "client_password": os.environ.get("LAIFAXIN_KAFKA_SASL_PASSWORD")
        or base64.urlsafe_b64encode(os.urandom(18)).decode(),
        "broker_password": base64.urlsafe_b64encode(os.urandom(18)).decode(),
        "keystore_password": base64.urlsafe_b64encode(os.urandom(18)).decode(),
    }
    for name, data in (
        ("secrets.json", secrets),
        ("client.json", {"username": KAFKA_CLIENT_USER, "password": secrets["client_password"]}),
    ):
        target = STATE / "kafka" / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
    return secrets


def kafka_keystore(password: str) -> Path:
    """A PKCS#12 keystore holding the local server certificate and key (signed by ``tls/ca.pem``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    tls = STATE / "tls"
    target = STATE / "kafka" / "keystore.p12"
    if target.exists():
        return target
    chain = x509.load_pem_x509_certificates((tls / "server.pem").read_bytes())
    key = serialization.load_pem_private_key((tls / "server.key").read_bytes(), password=None)
    blob = pkcs12.serialize_key_and_certificates(
        b"kafka",
        key,  # type: ignore[arg-type]
        chain[0],
        chain[1:],
        serialization.BestAvailableEncryption(password.encode()),
    )
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
    return target


def kafka_properties(data: Path) -> tuple[str, list[str]]:
    """The broker's ``server.properties`` for :data:`KAFKA_SECURITY`, and the extra ``kafka-storage format``
    arguments (the SCRAM users, in SASL_SSL mode)."""
    if KAFKA_SECURITY not in ("plaintext", "sasl_ssl"):
        raise InfraError(f"LAIFAXIN_KAFKA_SECURITY must be plaintext or sasl_ssl, not {KAFKA_SECURITY!r}")
    listener = "SASL_SSL" if KAFKA_SECURITY == "sasl_ssl" else "PLAINTEXT"
    props = (HERE / "kafka" / "server.properties.in").read_text()
    values: dict[str, object] = {
        "KAFKA_PORT": PORTS["kafka"],
        "CONTROLLER_PORT": PORTS["kafka_controller"],
        "DATA_DIR": data,
        "LISTENER": listener,
    }
    format_args: list[str] = []
    if listener == "SASL_SSL":
        secrets = kafka_secrets()
        props += (HERE / "kafka" / "sasl_ssl.properties.in").read_text()
        values |= {
            "BROKER_USER": KAFKA_BROKER_USER,
            "BROKER_PASSWORD": secrets["broker_password"],
            "KEYSTORE": kafka_keystore(secrets["keystore_password"]),
            "KEYSTORE_PASSWORD": secrets["keystore_password"],
            "CA_FILE": STATE / "tls" / "ca.pem",
        }
        for user, password in (
            (KAFKA_BROKER_USER, secrets["broker_password"]),
            (KAFKA_CLIENT_USER, secrets["client_password"]),
        ):
            format_args.append(f"--add-scram={KAFKA_SASL_MECHANISM}=[name={user},password={password}]")
    for k, v in values.items():
        props = props.replace(f"@{k}@", str(v))
    return props, format_args


def start_kafka() -> None:
    data = STATE / "kafka" / "data"
    logs = STATE / "logs" / "kafka"
    data.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    mode_file = STATE / "kafka" / "security"
    if (data / "meta.properties").exists() and mode_file.exists() and mode_file.read_text() != KAFKA_SECURITY:
        raise InfraError(
            f"Kafka's data in {data} was formatted for {mode_file.read_text()}, not {KAFKA_SECURITY}: "
            "run `infra.py up --fresh` (or use another LAIFAXIN_STATE_DIR)"
        )
    props, format_args = kafka_properties(data)
    conf = STATE / "kafka" / "server.properties"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # may hold the broker's SCRAM password
    with os.fdopen(fd, "w") as fh:
        fh.write(props)
    jopts = [
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={HERE / 'kafka' / 'log4j2.properties'}",
    ]
    cp = f"{kafka_libs()}/*"
    if not (data / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        run(
            [
                "java",
                *jopts,
                "-cp",
                cp,
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                f"--cluster-id={cluster_id}",  # "=": a base64url id may start with "-"
                "-c",
                str(conf),
                *format_args,
            ],
            stdout=subprocess.DEVNULL,
        )
        mode_file.write_text(KAFKA_SECURITY)
    server_log = logs / "server.log"
    offset = server_log.stat().st_size if server_log.exists() else 0

    def started() -> bool:
        if not server_log.exists():
            return False
        with server_log.open("rb") as fh:
            fh.seek(offset)
            return b"Kafka Server started" in fh.read() and port_open(PORTS["kafka"])

    pid = spawn("kafka", ["java", *jopts, "-cp", cp, "kafka.Kafka", str(conf)])
    wait_until("Kafka", started, 120, pid, server_log)


def start_ferretdb() -> None:
    data = STATE / "ferretdb"
    data.mkdir(parents=True, exist_ok=True)
    pid = spawn(
        "ferretdb",
        [
            str(ferretdb_binary()),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{PORTS['mongodb']}",
            "--state-dir=-",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ],
    )
    wait_until("FerretDB", lambda: port_open(PORTS["mongodb"]), 30, pid, STATE / "logs" / "ferretdb.out")


def mail_owner() -> tuple[str, int, int]:
    pw = pwd.getpwnam(VMAIL_USER) if is_root() else pwd.getpwuid(os.geteuid())
    return pw.pw_name, pw.pw_uid, pw.pw_gid


INOTIFY_INSTANCES = 4096
"""Dovecot uses one inotify instance per IDLE session; past the kernel's limit (often 128) it silently falls
back to checking mailboxes every 30 s, so a thousand IDLE connections need a higher limit."""


def ensure_inotify_instances() -> None:
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    try:
        current = int(path.read_text())
    except (OSError, ValueError):
        return
    if current >= INOTIFY_INSTANCES:
        return
    if is_root():
        try:
            path.write_text(str(INOTIFY_INSTANCES))
            log(
                f"fs.inotify.max_user_instances raised from {current} to {INOTIFY_INSTANCES} for Dovecot's IDLE"
            )
            return
        except OSError as exc:
            log(f"could not raise fs.inotify.max_user_instances ({exc})")
    log(
        f"fs.inotify.max_user_instances is {current}: above that many IDLE sessions Dovecot checks mail only "
        f"every 30 s; run `sudo sysctl -w fs.inotify.max_user_instances={INOTIFY_INSTANCES}`"
    )


def traversable_by_others(path: Path) -> bool:
    """Whether a user that is neither the owner nor in the group may reach ``path``: every directory from ``/``
    down to it has the "others" execute bit (``mktemp -d`` makes 0700 directories, and a clone inside one
    cannot be reached by Dovecot's own users)."""
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except FileNotFoundError:
            continue
    return True


def dovecot_home() -> Path:
    """The directory that holds what Dovecot's unprivileged processes read: the passwd-file and its sockets
    (``dovecot/``) and the mail (``mail/``).

    That is the state folder itself unless Dovecot would run as other users (as root: ``dovecot``,
    ``dovenull`` and the mail user) and the state folder is not reachable by them; then Dovecot's auth
    process cannot read the passwd-file and every login fails with "auth service reported temporary failure".
    In that case the files live in ``LAIFAXIN_DOVECOT_DIR`` (default ``/var/lib/laifaxin-<hash of the state
    path>``, mode 0755) and ``<state>/dovecot`` and ``<state>/mail`` are symbolic links to it, so every other
    path (``infra.json``'s ``passwd_file``, ``add-user``, the SMTP server) stays the same.
    """
    if not is_root() or traversable_by_others(STATE):
        return STATE
    default = Path("/var/lib") / f"laifaxin-{hashlib.sha1(str(STATE).encode()).hexdigest()[:12]}"  # noqa: S324
    return Path(os.environ.get("LAIFAXIN_DOVECOT_DIR", default)).resolve()


def place_dovecot_home() -> Path:
    """Create :func:`dovecot_home` and link ``<state>/dovecot`` and ``<state>/mail`` to it when it is elsewhere
    (moving what an earlier run left in the state folder). Returns it.

    Raises:
        InfraError: the chosen directory is itself unreachable for Dovecot's users.
    """
    home = dovecot_home()
    if home == STATE:
        return home
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    if not traversable_by_others(home):
        raise InfraError(
            f"{STATE} is not reachable by Dovecot's users (a parent directory lacks o+x) and neither is {home}: "
            f"set LAIFAXIN_DOVECOT_DIR to a directory under /var/lib or /tmp, or "
            f"LAIFAXIN_STATE_DIR to a reachable folder"
        )
    for name in ("dovecot", "mail"):
        link, target = STATE / name, home / name
        target.mkdir(exist_ok=True)
        target.chmod(0o755)
        if link.is_symlink():
            if link.resolve() == target:
                continue
            link.unlink()
        elif link.exists():
            shutil.copytree(link, target, dirs_exist_ok=True, symlinks=True)
            shutil.rmtree(link)
        link.symlink_to(target, target_is_directory=True)
    log(f"{STATE} is not reachable by Dovecot's users: its passwd-file and mail are in {home}")
    return home


def start_dovecot() -> None:
    ensure_inotify_instances()
    user, uid, gid = mail_owner()
    home = place_dovecot_home()
    for d in ("dovecot/run", "dovecot/lib", "mail", "logs"):
        (STATE / d).mkdir(parents=True, exist_ok=True)
    os.chown(STATE / "mail", uid, gid) if is_root() else None
    users = STATE / "dovecot" / "users"
    users.touch(exist_ok=True)
    users.chmod(0o644)
    if is_root():
        internal_user, internal_group, login_user = "dovecot", "dovecot", "dovenull"
    else:
        internal_user = login_user = user
        internal_group = pwd.getpwuid(os.geteuid()).pw_name
    conf = (HERE / "dovecot" / "dovecot.conf.in").read_text()
    for k, v in {
        "STATE": STATE,
        "HOME": home,
        "INSTANCE": hashlib.sha1(str(STATE).encode()).hexdigest()[:8],  # noqa: S324
        "INTERNAL_USER": internal_user,
        "INTERNAL_GROUP": internal_group,
        "LOGIN_USER": login_user,
        "MAIL_UID": uid,
        "MAIL_GID": gid,
        "IMAP_PORT": PORTS["imap"],
        "IMAPS_PORT": PORTS["imaps"],
    }.items():
        conf = conf.replace(f"@{k}@", str(v))
    oauth2 = (HERE / "dovecot" / "dovecot-oauth2.conf.ext.in").read_text()
    oauth2 = oauth2.replace("@HYDRA_ADMIN_PORT@", str(PORTS["hydra_admin"]))
    (STATE / "dovecot" / "dovecot-oauth2.conf.ext").write_text(oauth2)
    path = STATE / "dovecot" / "dovecot.conf"
    path.write_text(conf)
    pid = spawn("dovecot", ["dovecot", "-F", "-c", str(path)])
    wait_until(
        "Dovecot",
        lambda: port_open(PORTS["imaps"]) and port_open(PORTS["imap"]),
        30,
        pid,
        STATE / "logs" / "dovecot.out",
    )


def start_smtp() -> None:
    pid = spawn(
        "smtp",
        [
            sys.executable,
            str(HERE / "smtp_server.py"),
            "--state",
            str(STATE),
            "--tls-port",
            str(PORTS["smtps"]),
            "--starttls-port",
            str(PORTS["smtp"]),
            "--introspection-url",
            hydra_urls()["introspection"],
        ],
    )
    wait_until(
        "SMTP server",
        lambda: port_open(PORTS["smtps"]) and port_open(PORTS["smtp"]),
        30,
        pid,
        STATE / "logs" / "smtp.out",
    )


def hydra_urls() -> dict[str, str]:
    public = f"http://127.0.0.1:{PORTS['hydra_public']}"
    admin = f"http://127.0.0.1:{PORTS['hydra_admin']}"
    login = f"http://127.0.0.1:{PORTS['hydra_login']}"
    return {
        "issuer": public,
        "public": public,
        "admin": admin,
        "introspection": f"{admin}/admin/oauth2/introspect",
        "login_app": login,
    }


def hydra_secret() -> str:
    """The Hydra system secret (``secrets.system``, at least 16 characters), made once per state folder."""
    path = STATE / "hydra" / "system-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
        path.chmod(0o600)
    return path.read_text().strip()


def start_hydra() -> None:
    """Ory Hydra ``serve all --dev`` with an in-memory SQLite database (clients and grants live as long as it).

    ``--dev`` allows the http issuer on loopback; ``--sqa-opt-out`` turns telemetry off. The login and consent
    pages are ``hydra_login.py`` (the ``hydra-login`` server).
    """
    urls = hydra_urls()
    env = dict(
        os.environ,
        DSN="memory",
        SECRETS_SYSTEM=hydra_secret(),
        URLS_SELF_ISSUER=urls["issuer"],
        URLS_LOGIN=f"{urls['login_app']}/login",
        URLS_CONSENT=f"{urls['login_app']}/consent",
        URLS_ERROR=f"{urls['login_app']}/error",
        SERVE_PUBLIC_HOST="127.0.0.1",
        SERVE_PUBLIC_PORT=str(PORTS["hydra_public"]),
        SERVE_ADMIN_HOST="127.0.0.1",
        SERVE_ADMIN_PORT=str(PORTS["hydra_admin"]),
        LOG_LEVEL="warn",
    )
    pid = spawn("hydra", [str(hydra_binary()), "serve", "all", "--dev", "--sqa-opt-out"], env=env)

    def ready() -> bool:
        import urllib.request

        if not (port_open(PORTS["hydra_public"]) and port_open(PORTS["hydra_admin"])):
            return False
        try:
            with urllib.request.urlopen(f"{urls['admin']}/health/ready", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except OSError:
            return False

    wait_until("Hydra", ready, 60, pid, STATE / "logs" / "hydra.out")

    # Hydra makes its signing keys (ID token, JWT access token: RSA) on the first request that needs them; that
    # took seconds on a busy machine and timed out the first sign-in of a test run. Asking for the JWKS now makes
    # them before anyone signs in.
    def keys_ready() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{urls['issuer']}/.well-known/jwks.json", timeout=30) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except OSError:
            return False

    wait_until("Hydra's signing keys", keys_ready, 120, pid, STATE / "logs" / "hydra.out")


def start_hydra_login() -> None:
    pid = spawn(
        "hydra-login",
        [
            sys.executable,
            str(HERE / "hydra_login.py"),
            "--port",
            str(PORTS["hydra_login"]),
            "--admin-url",
            hydra_urls()["admin"],
        ],
    )
    wait_until(
        "Hydra login app",
        lambda: port_open(PORTS["hydra_login"]),
        30,
        pid,
        STATE / "logs" / "hydra-login.out",
    )


def servers() -> list[Server]:
    out = [Server("kafka", (PORTS["kafka"], PORTS["kafka_controller"]), start_kafka)]
    if not os.environ.get("MONGODB_URL"):
        out.append(Server("ferretdb", (PORTS["mongodb"],), start_ferretdb))
    out += [
        Server("hydra", (PORTS["hydra_public"], PORTS["hydra_admin"]), start_hydra),
        Server("hydra-login", (PORTS["hydra_login"],), start_hydra_login),
        Server("dovecot", (PORTS["imap"], PORTS["imaps"]), start_dovecot),
        Server("smtp", (PORTS["smtp"], PORTS["smtps"]), start_smtp),
    ]
    return out


def endpoints() -> dict[str, object]:
    kafka: dict[str, object] = {"kafka_security_protocol": "PLAINTEXT"}
    if KAFKA_SECURITY == "sasl_ssl":
        kafka = {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": KAFKA_SASL_MECHANISM,
            "kafka_sasl_username": KAFKA_CLIENT_USER,
            "kafka_sasl_credentials_file": str(
                STATE / "kafka" / "client.json"
            ),  # the password stays out of here
            "kafka_ssl_ca_file": str(STATE / "tls" / "ca.pem"),
        }
    return {
        "state_dir": str(STATE),
        "kafka_bootstrap_servers": f"127.0.0.1:{PORTS['kafka']}",
        **kafka,
        "mongodb_url": os.environ.get("MONGODB_URL") or f"mongodb://127.0.0.1:{PORTS['mongodb']}/",
        "imap_host": "127.0.0.1",
        "imap_port": PORTS["imap"],
        "imaps_port": PORTS["imaps"],
        "smtp_host": "127.0.0.1",
        "smtp_port": PORTS["smtp"],
        "smtps_port": PORTS["smtps"],
        "ca_file": str(STATE / "tls" / "ca.pem"),
        "untrusted_cert": str(STATE / "tls" / "untrusted.pem"),
        "untrusted_key": str(STATE / "tls" / "untrusted.key"),
        "passwd_file": str(STATE / "dovecot" / "users"),
        "mail_domain": MAIL_DOMAIN,
        "smtp_received_index": str(STATE / "smtp" / "received.jsonl"),
        "hydra": hydra_urls(),
    }


def up(only: set[str] | None = None, *, fresh: bool = False) -> None:
    """Start the servers (all, or those named in ``only``) and write ``infra.json``.

    ``fresh`` first deletes the stored data of servers that are not running (Kafka's log directory,
    FerretDB's databases, the mail store and what the SMTP server recorded): a test run starts from nothing.
    """
    chosen = [s for s in servers() if only is None or s.name in only]
    if fresh:
        data = {
            "kafka": [STATE / "kafka"],
            "ferretdb": [STATE / "ferretdb"],
            "dovecot": [(STATE / "mail").resolve()],
            "smtp": [STATE / "smtp"],
        }
        for srv in chosen:
            if srv.pid() is None:
                for path in data.get(srv.name, []):
                    shutil.rmtree(path, ignore_errors=True)
    names = {s.name for s in chosen}
    if "kafka" in names:
        ensure_kafka()
    if "ferretdb" in names:
        ensure_ferretdb()
    if "dovecot" in names:
        ensure_dovecot()
    if "hydra" in names:
        ensure_hydra()
    STATE.mkdir(parents=True, exist_ok=True)
    ensure_tls()
    for srv in chosen:
        if srv.pid():
            log(f"{srv.name}: already running (pid {srv.pid()})")
            continue
        busy = [p for p in srv.ports if port_open(p)]
        if busy:
            raise InfraError(
                f"{srv.name}: port {busy[0]} is taken by another process; set "
                f"LAIFAXIN_{srv.name.upper()}_PORT or stop it"
            )
        t0 = time.monotonic()
        srv.start()
        log(f"{srv.name}: up in {time.monotonic() - t0:.1f} s (pid {srv.pid()}, ports {srv.ports})")
    (STATE / "infra.json").write_text(json.dumps(endpoints(), indent=2))


def our_stray_pids() -> list[int]:
    """Processes whose command line names our state folder (children that outlived their group)."""
    me = os.getpid()
    found = []
    marker = str(STATE).encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            if marker in (d / "cmdline").read_bytes():
                found.append(int(d.name))
        except OSError:
            continue
    return found


def stop_group(pid: int, timeout: float = 30) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def down() -> None:
    for srv in reversed(servers()):
        pid = srv.pid()
        if pid:
            stop_group(pid)
            log(f"{srv.name}: stopped")
        srv.pidfile.unlink(missing_ok=True)
    strays = our_stray_pids()
    for pid in strays:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if strays:
        log(f"killed {len(strays)} stray process(es) of ours")
    (STATE / "infra.json").unlink(missing_ok=True)


def status() -> int:
    bad = 0
    for srv in servers():
        pid = srv.pid()
        answering = all(port_open(p) for p in srv.ports)
        state = "running" if pid and answering else ("starting?" if pid else "stopped")
        bad += state != "running"
        print(f"{srv.name:9s} {state:9s} pid={pid or '-':<8} ports={','.join(map(str, srv.ports))}")
    if os.environ.get("MONGODB_URL"):
        print("mongodb   external  MONGODB_URL is set; FerretDB not managed")
    return 1 if bad else 0


def add_user(email: str, password: str, users: Path | None = None) -> None:
    """Add or replace ``email`` in the passwd-file (default: this state's); Dovecot re-reads it on change."""
    users = users or STATE / "dovecot" / "users"
    users.parent.mkdir(parents=True, exist_ok=True)
    if ":" in email or "\n" in email or "\n" in password or ":" in password:
        raise InfraError("user names and passwords for the local passwd-file cannot contain ':' or newlines")
    lines = [
        ln
        for ln in (users.read_text().splitlines() if users.exists() else [])
        if not ln.startswith(email + ":")
    ]
    lines.append(f"{email}:{{PLAIN}}{password}::::::")
    tmp = users.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o644)
    tmp.replace(users)


def main() -> int:
    parser = argparse.ArgumentParser(description="Local real servers for the Laifaxin mail platform")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("install", "down", "status", "env"):
        sub.add_parser(name)
    up_parser = sub.add_parser("up")
    up_parser.add_argument(
        "--only", help="comma-separated subset: kafka,ferretdb,hydra,hydra-login,dovecot,smtp"
    )
    up_parser.add_argument("--fresh", action="store_true", help="delete stored data of servers not running")
    au = sub.add_parser("add-user")
    au.add_argument("email")
    au.add_argument("password")
    args = parser.parse_args()
    try:
        if args.cmd == "install":
            install()
        elif args.cmd == "up":
            up(set(args.only.split(",")) if args.only else None, fresh=args.fresh)
        elif args.cmd == "down":
            down()
        elif args.cmd == "status":
            return status()
        elif args.cmd == "env":
            ep = endpoints()
            print(f"export KAFKA_BOOTSTRAP_SERVERS={ep['kafka_bootstrap_servers']}")
            print(f"export KAFKA_SECURITY_PROTOCOL={ep['kafka_security_protocol']}")
            if KAFKA_SECURITY == "sasl_ssl":
                creds = ep["kafka_sasl_credentials_file"]
                print(f"export KAFKA_SASL_MECHANISM={ep['kafka_sasl_mechanism']}")
                print(f"export KAFKA_SASL_USERNAME={ep['kafka_sasl_username']}")
                # read at eval time: the password itself is never printed
                print(
                    f"export KAFKA_SASL_PASSWORD=\"$(python3 -c 'import json,sys;"
                    f'print(json.load(open(sys.argv[1]))["password"])\' {creds})"'
                )
                print(f"export KAFKA_SSL_CA_FILE={ep['kafka_ssl_ca_file']}")
            print(f"export MONGODB_URL={ep['mongodb_url']}")
            print(f"export LAIFAXIN_INFRA_FILE={STATE / 'infra.json'}")
        elif args.cmd == "add-user":
            add_user(args.email, args.password)
    except InfraError as exc:
        log(f"error: {exc}")
        return 1
    except subprocess.CalledProcessError as exc:
        command = re.sub(r"password=[^,\]\s]*", "password=[REDACTED]", " ".join(map(str, exc.cmd)))
        log(f"error: command failed ({exc.returncode}): {command}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
