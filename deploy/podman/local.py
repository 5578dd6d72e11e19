"""The service images and the Kubernetes manifests on this machine's Podman (no Docker engine, no cluster).

Usage (the Makefile targets run these, under ``nice``)::

    uv run python deploy/podman/local.py images          # make images: the base, then every service image
    uv run python deploy/podman/local.py images-check    # make images-check: each image runs and answers /readyz
    uv run python deploy/podman/local.py up              # make pods-up: the `local` overlay with podman kube play
    uv run python deploy/podman/local.py down            # make pods-down
    uv run python deploy/podman/local.py status

Podman reads this folder's ``containers.conf`` and ``storage.conf`` (``CONTAINERS_CONF``,
``CONTAINERS_STORAGE_CONF``): runc with the cgroupfs manager and ulimits within the machine's hard limits, so
nothing under /etc is changed.

**Images.** No image registry is reachable, so the Python base is made from Debian's packages: ``mmdebstrap
--variant=minbase --include=python3,python3-venv,ca-certificates bookworm`` (Debian 12's Python 3.11), imported
with ``podman import`` as ``localhost/laifaxin/python-base:3.11-bookworm`` with ``PATH`` set (an imported
tarball has no environment), once; then ``podman build -f deploy/docker/Dockerfile`` per service with that base
as ``PYTHON_IMAGE`` (production builds keep ``python:3.11-slim``), tagged
``registry.laifa.xin/laifaxin/<service>:local``, the names the ``local`` overlay uses. When the machine sets a
CA bundle for outgoing TLS (``SSL_CERT_FILE``), it is lent to the build as the secret ``ca_bundle`` (mounted only
during the RUN steps that download, never in a layer). Every build's time and every image's size are printed.

**images-check.** Each image is started as its pod would run it (uid 10001, read-only root filesystem with a
tmpfs ``/tmp``, all capabilities dropped, no new privileges), on the host's network to reach the shared Kafka
and MongoDB, with a topic prefix and databases of its own and ``LAIFAXIN_ENVIRONMENT=production`` (secrets are
fresh random values passed as Podman secrets, never on a command line); it must answer ``/readyz`` with 200.

**Pods.** ``up`` renders ``deploy/k8s/overlays/local`` with the kustomize ``deploy/k8s/check.py`` installs,
creates the Secrets the manifests reference (``deploy/k8s/README.md``) as Podman secrets holding a Kubernetes
Secret's data (fresh random keys; ``MONGODB_URL`` of the running servers), and plays the Deployments and ConfigMaps
with ``podman kube play`` (Podman plays no Service, ServiceAccount or PodDisruptionBudget: they are listed and
skipped). Podman does not run readiness probes, so ``up`` runs each Deployment's own ``readinessProbe``
(``httpGet`` path and port from the rendered manifest) until it succeeds, and prints the start-to-ready time
of each. State (the rendered YAML, the generated keys, mode 0600) is in ``deploy/local/state/pods/``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
K8S = REPO / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "local"
STATE = REPO / "deploy" / "local" / "state" / "pods"
INFRA_FILE = Path(os.environ.get("LAIFAXIN_INFRA_FILE", REPO / "deploy" / "local" / "state" / "infra.json"))

BASE_IMAGE = "localhost/laifaxin/python-base:3.11-bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRRORS = (
    f"deb http://deb.debian.org/debian {DEBIAN_SUITE} main",
    f"deb http://deb.debian.org/debian {DEBIAN_SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {DEBIAN_SUITE}-security main",
)
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
REGISTRY = "registry.laifa.xin/laifaxin"
TAG = "local"
SERVICES = ("binding", "sync", "classifier", "notify")
LABEL = "xin.laifa.local"
"""Label on every Podman secret and container this script creates (``down`` removes only those)."""


class LocalError(Exception):
    """A step failed; the message says which and why."""


# ------------------------------------------------------------------------------------------------- podman


def podman_env() -> dict[str, str]:
    """The environment for podman/buildah: this folder's containers.conf and storage.conf unless set."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(HERE / "containers.conf"))
    env.setdefault("CONTAINERS_STORAGE_CONF", str(HERE / "storage.conf"))
    return env


def podman(*args: str, check: bool = True, capture: bool = True, stdin: str | None = None) -> str:
    """Run ``podman args...``; its stdout.

    Raises:
        LocalError: podman is missing, or exited non-zero (with its stderr) when ``check``.
    """
    if shutil.which("podman") is None:
        raise LocalError("podman is not installed: run deploy/podman/install.sh (make images does)")
    proc = subprocess.run(  # noqa: S603  # podman with arguments built here
        ["podman", *args],  # noqa: S607  # podman from PATH (Debian's package)
        env=podman_env(),
        capture_output=capture,
        text=True,
        input=stdin,
        check=False,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or "").strip()[-3000:] if capture else ""
        raise LocalError(f"podman {' '.join(args[:3])} ... failed (exit {proc.returncode}): {detail}")
    return proc.stdout or ""


def image_exists(ref: str) -> bool:
    return (
        subprocess.run(  # noqa: S603
            ["podman", "image", "exists", ref],  # noqa: S607
            env=podman_env(),
            check=False,
        ).returncode
        == 0
    )


def image_size(ref: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", ref).strip())


def mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


# -------------------------------------------------------------------------------------------------- images


def build_base(force: bool = False) -> float:
    """Make the Python base image from Debian's packages (mmdebstrap + podman import), once.

    Returns:
        seconds spent (0 when the image already existed).

    Raises:
        LocalError: mmdebstrap or the import failed.
    """
    if not force and image_exists(BASE_IMAGE):
        return 0.0
    if shutil.which("mmdebstrap") is None:
        raise LocalError("mmdebstrap is not installed: run deploy/podman/install.sh (make images does)")
    started = time.monotonic()
    print(f"base image: mmdebstrap {DEBIAN_SUITE} minbase + {', '.join(BASE_PACKAGES)} ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="laifaxin-base-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        proc = subprocess.run(  # noqa: S603
            [  # noqa: S607  # Debian's mmdebstrap
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                # Documentation and translations are not needed in a service image (copyright files are kept).
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                DEBIAN_SUITE,
                str(tarball),
                *DEBIAN_MIRRORS,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise LocalError(f"mmdebstrap failed: {proc.stderr.strip()[-3000:]}")
        podman(
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["python3"]',
            "--message",
            f"Debian {DEBIAN_SUITE} minbase with {', '.join(BASE_PACKAGES)} (mmdebstrap)",
            str(tarball),
            BASE_IMAGE,
        )
    seconds = time.monotonic() - started
    print(f"base image: {BASE_IMAGE} {mb(image_size(BASE_IMAGE))} in {seconds:.0f} s", flush=True)
    return seconds


def service_port(name: str) -> int:
    """The container port of the service's Deployment in the base (the Dockerfile's PORT build arg)."""
    for doc in yaml.safe_load_all((K8S / "base" / f"{name}.yaml").read_text(encoding="utf-8")):
        if doc and doc["kind"] == "Deployment":
            port: int = doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
            return port
    raise LocalError(f"deploy/k8s/base/{name}.yaml has no Deployment")


def image_ref(name: str) -> str:
    return f"{REGISTRY}/{name}:{TAG}"


@contextlib.contextmanager
def ca_bundle() -> Iterator[Path]:
    """The CA bundle lent to the build as secret ``ca_bundle``: $SSL_CERT_FILE, or an empty file (then the
    base image's own CA certificates are used)."""
    configured = os.environ.get("SSL_CERT_FILE")
    if configured and Path(configured).is_file():
        yield Path(configured)
        return
    with tempfile.NamedTemporaryFile(prefix="laifaxin-no-ca-") as empty:
        yield Path(empty.name)


def build_image(name: str) -> float:
    """``podman build`` of one service on the Debian base; seconds spent.

    Raises:
        LocalError: the build failed (its log's tail in the message).
    """
    started = time.monotonic()
    log = STATE.parent / "images" / f"build-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with ca_bundle() as ca, log.open("w") as out:
        proc = subprocess.run(  # noqa: S603
            [  # noqa: S607
                "podman",
                "build",
                "--pull=never",
                "--network=host",  # the RUN steps reach PyPI like the host does
                "--file",
                str(DOCKERFILE),
                "--build-arg",
                f"PYTHON_IMAGE={BASE_IMAGE}",
                "--build-arg",
                f"SERVICE={name}",
                "--build-arg",
                f"PORT={service_port(name)}",
                "--secret",
                f"id=ca_bundle,src={ca}",
                "--tag",
                image_ref(name),
                str(REPO),
            ],
            env=podman_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise LocalError(f"podman build {name} failed (log {log}):\n{tail}")
    return time.monotonic() - started


def images(names: list[str], *, rebuild_base: bool = False) -> dict[str, Any]:
    """Build the base (once) and the service images; print and return times and sizes."""
    started = time.monotonic()
    report: dict[str, Any] = {"base_seconds": round(build_base(force=rebuild_base), 1), "images": {}}
    for name in names:
        seconds = build_image(name)
        size = image_size(image_ref(name))
        report["images"][name] = {"image": image_ref(name), "seconds": round(seconds, 1), "bytes": size}
        print(f"image {image_ref(name)}: {mb(size)}, built in {seconds:.0f} s", flush=True)
    report["base_bytes"] = image_size(BASE_IMAGE)
    report["total_seconds"] = round(time.monotonic() - started, 1)
    # Every code change leaves the previous images' layers untagged; drop those older than a day, so a machine
    # that builds on every test run stays bounded while today's layers remain the build cache.
    pruned = podman("image", "prune", "--force", "--filter", "until=24h", check=False).split()
    report["pruned_images"] = len(pruned)
    user = podman("image", "inspect", "--format", "{{.Config.User}}", *(image_ref(n) for n in names))
    if {u.strip() for u in user.splitlines()} != {"10001:10001"}:
        raise LocalError(f"an image does not run as 10001:10001: {user.split()}")
    print(
        f"images: {len(names)} built in {report['total_seconds']:.0f} s "
        f"(base {mb(report['base_bytes'])}, shared by all)",
        flush=True,
    )
    return report


# ---------------------------------------------------------------------------------------------- run checks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def servers() -> dict[str, str]:
    """Where Kafka and MongoDB are: the environment, else the running local servers' infra.json."""
    infra: dict[str, Any] = {}
    if INFRA_FILE.is_file():
        infra = json.loads(INFRA_FILE.read_text(encoding="utf-8"))
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or infra.get("kafka_bootstrap_servers")
    mongo = os.environ.get("MONGODB_URL") or infra.get("mongodb_url")
    if not kafka or not mongo:
        raise LocalError(
            "no Kafka/MongoDB: set KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL, or start the local servers "
            "(make infra-up) so that LAIFAXIN_INFRA_FILE names them"
        )
    return {"kafka": kafka, "mongodb": mongo, **{k: str(v) for k, v in infra.items()}}


def vapid_private_key() -> str:
    """A fresh P-256 private key (PEM) for Web Push VAPID (RFC 8292)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def fresh_secrets(mongodb_url: str) -> dict[str, dict[str, str]]:
    """The Secrets the manifests reference (deploy/k8s/README.md), with fresh random values."""
    return {
        "laifaxin-mongodb": {"MONGODB_URL": mongodb_url},
        "laifaxin-credential-keys": {
            "LAIFAXIN_CREDENTIAL_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
        },
        "laifaxin-jwt": {"JWT_SECRET": secrets.token_urlsafe(48)},
        "notify-channels": {"NOTIFY_VAPID_PRIVATE_KEY": vapid_private_key()},
    }


def create_podman_secrets(values: dict[str, dict[str, str]], prefix: str = "") -> list[str]:
    """One Podman secret per Kubernetes Secret, holding that Secret's data (what kube play reads for a
    secretKeyRef); the data goes through stdin, never a command line. Returns the secret names."""
    names = []
    for name, data in values.items():
        secret_name = f"{prefix}{name}"
        podman("secret", "rm", secret_name, check=False)
        # Podman 4.3 reads the secret as JSON of key -> base64 value (a Go map[string][]byte), like a Secret's data.
        doc = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
        podman("secret", "create", "--label", f"{LABEL}=1", secret_name, "-", stdin=json.dumps(doc))
        names.append(secret_name)
    return names


def wait_http(url: str, timeout_s: float, alive: Any = None) -> float:
    """Poll ``url`` until it answers 200; seconds waited.

    Raises:
        LocalError: ``alive()`` turned false (the container exited) or ``timeout_s`` passed.
    """
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout_s:
        if alive is not None and not alive():
            raise LocalError(f"{url}: the container exited ({last or 'never answered'})")
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310  # http://127.0.0.1 only
                if resp.status == 200:
                    return time.monotonic() - started
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read()[:300].decode(errors='replace')}"
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise LocalError(f"{url} not ready after {timeout_s:.0f} s (last answer: {last})")


def container_running(name: str) -> bool:
    out = podman("container", "inspect", "--format", "{{.State.Running}}", name, check=False)
    return out.strip() == "true"


def images_check(
    names: list[str], timeout_s: float = 120.0, results: dict[str, float] | None = None
) -> dict[str, float]:
    """Run each image as its pod would and wait for /readyz; seconds from start to ready per service.

    Raises:
        LocalError: an image exited or did not become ready (its log's tail in the message).
    """
    srv = servers()
    run_id = uuid.uuid4().hex[:8]
    values = fresh_secrets(srv["mongodb"])
    secret_names = create_podman_secrets(values, prefix=f"check-{run_id}-")
    env_secrets = {
        "MONGODB_URL": "laifaxin-mongodb",
        "LAIFAXIN_CREDENTIAL_KEYS": "laifaxin-credential-keys",
        "BINDING_JWT_SECRET": "laifaxin-jwt",
        "NOTIFY_JWT_SECRET": "laifaxin-jwt",
        "NOTIFY_VAPID_PRIVATE_KEY": "notify-channels",
    }
    # A Podman secret passed with type=env is the whole secret: one plain secret per variable.
    plain: dict[str, str] = {}
    for var, secret in env_secrets.items():
        value = next(iter(values[secret].values()))
        plain[var] = f"check-{run_id}-{var.lower()}"
        podman("secret", "create", "--label", f"{LABEL}=1", plain[var], "-", stdin=value)
    results = {} if results is None else results
    containers: list[str] = []
    try:
        for name in names:
            port = free_port()
            container = f"laifaxin-check-{name}-{run_id}"
            prefix = name.upper()
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": srv["kafka"],
                "LAIFAXIN_ENVIRONMENT": "production",
                "LAIFAXIN_TOPIC_PREFIX": f"imgcheck{run_id}.",
                "LAIFAXIN_CREDENTIAL_ACTIVE_KEY_ID": "k1",
                "LAIFAXIN_LOG_JSON": "true",
                f"{prefix}_HTTP_HOST": "127.0.0.1",
                f"{prefix}_HTTP_PORT": str(port),
                f"{prefix}_MONGODB_DATABASE": f"imgcheck{run_id}_{name}",
            }
            needs = {
                "binding": ["MONGODB_URL", "LAIFAXIN_CREDENTIAL_KEYS", "BINDING_JWT_SECRET"],
                "sync": ["MONGODB_URL", "LAIFAXIN_CREDENTIAL_KEYS"],
                "classifier": ["MONGODB_URL"],
                "notify": [
                    "MONGODB_URL",
                    "LAIFAXIN_CREDENTIAL_KEYS",
                    "NOTIFY_JWT_SECRET",
                    "NOTIFY_VAPID_PRIVATE_KEY",
                ],
            }[name]
            args = ["serve"] if name == "notify" else []
            started = time.monotonic()
            podman(
                "run",
                "--detach",
                "--name",
                container,
                "--label",
                f"{LABEL}=1",
                "--network=host",
                "--pull=never",
                "--user=10001:10001",
                "--read-only",
                "--tmpfs=/tmp:rw,size=64m,mode=1777",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                "--memory=1g",
                *(f"--env={k}={v}" for k, v in env.items()),
                *(f"--secret={plain[var]},type=env,target={var}" for var in needs),
                image_ref(name),
                *args,
            )
            containers.append(container)
            try:
                wait_http(
                    f"http://127.0.0.1:{port}/readyz",
                    timeout_s,
                    alive=lambda c=container: container_running(c),
                )
            except LocalError as exc:
                logs = podman("logs", "--tail", "40", container, check=False)
                raise LocalError(f"{name}: {exc}\n{logs}") from exc
            results[name] = time.monotonic() - started
            print(f"image {image_ref(name)}: running, /readyz 200 after {results[name]:.1f} s", flush=True)
    finally:
        for container in containers:
            podman("rm", "--force", "--time", "10", container, check=False)
        for secret in [*secret_names, *plain.values()]:
            podman("secret", "rm", secret, check=False)
        _drop_test_data(srv, f"imgcheck{run_id}")
    return results


def _drop_test_data(srv: dict[str, str], prefix: str) -> None:
    """Remove the topics and databases a check created (best effort; the shared servers stay tidy)."""
    with contextlib.suppress(Exception):
        import asyncio

        from laifaxin_shared.kafka import delete_topics
        from laifaxin_shared.mongo import make_mongo_client

        async def drop() -> None:
            await delete_topics(srv["kafka"], f"{prefix}.")
            client = make_mongo_client(srv["mongodb"])
            try:
                for db in await client.list_database_names():
                    if db.startswith(f"{prefix}_"):
                        await client.drop_database(db)
            finally:
                await client.close()

        asyncio.run(drop())


# ---------------------------------------------------------------------------------------------------- pods


def _check_module() -> Any:
    """deploy/k8s/check.py, loaded by path: its pinned kustomize and the same render."""
    spec = importlib.util.spec_from_file_location("laifaxin_deploy_k8s_check", K8S / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def render(prefix: str, ca_file: Path) -> list[dict[str, Any]]:
    """The ``local`` overlay rendered by kustomize, with the run's topic prefix, database names and the
    mail servers' CA certificate filled in."""
    check = _check_module()
    objs: list[dict[str, Any]] = check.build(
        check.ensure_kustomize(), check.Combination("overlay/local", path=OVERLAY)
    )
    for obj in objs:
        if obj["kind"] == "ConfigMap":
            data = obj.get("data", {})
            if "LAIFAXIN_TOPIC_PREFIX" in data:
                data["LAIFAXIN_TOPIC_PREFIX"] = f"{prefix}."
            for key in list(data):
                if key.endswith("_MONGODB_DATABASE"):
                    data[key] = f"{prefix}_{key.split('_', 1)[0].lower()}"
        for volume in obj.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
            if volume["name"] == "local-ca":
                volume["hostPath"]["path"] = str(ca_file)
    return objs


def readiness_urls(objs: list[dict[str, Any]]) -> dict[str, str]:
    """Deployment name -> the URL of its first container's readinessProbe (named ports resolved)."""
    urls = {}
    for obj in objs:
        if obj["kind"] != "Deployment":
            continue
        container = obj["spec"]["template"]["spec"]["containers"][0]
        probe = container["readinessProbe"]["httpGet"]
        port = probe["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in container["ports"] if p.get("name") == port)
        urls[obj["metadata"]["name"]] = f"http://127.0.0.1:{port}{probe['path']}"
    return urls


def for_podman(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a rendered object as Podman 4 plays it on the host's network.

    With ``hostNetwork``, Podman turns every ``containerPort`` into a port mapping and then refuses it ("PortMappings
    can only be used with Bridge or slirp4netns networking"); on the host's network the ports are only
    documentation, so they are dropped, and the probes' named port (``http``) is replaced by its number.
    """
    obj = copy.deepcopy(obj)
    if obj["kind"] != "Deployment":
        return obj
    for container in obj["spec"]["template"]["spec"]["containers"]:
        named = {p["name"]: p["containerPort"] for p in container.pop("ports", []) if p.get("name")}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            action = container.get(probe, {}).get("httpGet") or container.get(probe, {}).get("tcpSocket")
            if action and isinstance(action.get("port"), str):
                action["port"] = named[action["port"]]
    return obj


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pods_up(
    prefix: str,
    timeout_s: float = 180.0,
    *,
    env: dict[str, dict[str, str]] | None = None,
    secret_values: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Render the local overlay, create its Secrets, play it and wait for every readiness probe.

    Args:
        prefix: topic prefix (``<prefix>.``) and database names (``<prefix>_<service>``) of this run.
        env: extra settings per ConfigMap (``common`` or a service name), merged into the rendered ConfigMaps.
        secret_values: Secret keys to set instead of fresh random values (Secret name -> key -> value).

    Raises:
        LocalError: a port is taken, an image is missing, kube play failed, or a Deployment did not turn ready.
    """
    rendered = STATE / "local.yaml"
    if rendered.exists():
        raise LocalError(f"the pods are already up ({rendered}); make pods-down first")
    srv = servers()
    ca = Path(srv.get("ca_file") or "")
    if not ca.is_file():
        raise LocalError("no mail-server CA (infra.json ca_file): start the local servers first")
    objs = render(prefix, ca)
    extra: dict[str, dict[str, str]] = {"common": {"KAFKA_BOOTSTRAP_SERVERS": srv["kafka"]}}
    for key, settings in (env or {}).items():
        extra.setdefault(key, {}).update(settings)
    for obj in objs:
        if obj["kind"] == "ConfigMap":
            name = obj["metadata"]["name"].rsplit("-", 1)[0]  # kustomize's name-<hash>
            obj.setdefault("data", {}).update(extra.get("common" if name == "laifaxin-common" else name, {}))
    urls = readiness_urls(objs)
    taken = [u for u in urls.values() if not _port_free(int(u.split(":")[2].split("/")[0]))]
    if taken:
        raise LocalError(f"ports in use on this machine: {taken}")
    missing = [
        c["image"]
        for o in objs
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
        if not image_exists(c["image"])
    ]
    if missing:
        raise LocalError(f"images not in the local store (make images): {missing}")
    playable = [for_podman(o) for o in objs if o["kind"] in {"Deployment", "ConfigMap"}]
    skipped = sorted({o["kind"] for o in objs} - {"Deployment", "ConfigMap"})
    STATE.mkdir(parents=True, exist_ok=True)
    values = fresh_secrets(srv["mongodb"])
    for name, data in (secret_values or {}).items():
        values.setdefault(name, {}).update(data)
    secret_file = STATE / "secrets.json"
    secret_file.write_text(json.dumps(values), encoding="utf-8")
    secret_file.chmod(0o600)
    create_podman_secrets(values)
    rendered.write_text(yaml.safe_dump_all(playable, sort_keys=False), encoding="utf-8")
    print(f"pods: playing {len(playable)} objects ({', '.join(sorted(urls))}); not played: {skipped}")
    started = time.monotonic()
    ready: dict[str, float] = {}
    try:
        podman("kube", "play", "--log-driver", "k8s-file", str(rendered))
        played = time.monotonic() - started
        for name, url in urls.items():
            container = f"{name}-pod-0-{name}"  # podman names a Deployment's pod <name>-pod-<i>
            alive = lambda c=container: container_running(c)  # noqa: E731
            try:
                wait_http(url, timeout_s - (time.monotonic() - started), alive=alive)
            except LocalError as exc:
                logs = podman("logs", "--tail", "40", container, check=False)
                raise LocalError(f"{name}: {exc}\n{logs}") from exc
            ready[name] = time.monotonic() - started
            print(f"pod {name}: readinessProbe {url} ready {ready[name]:.1f} s after kube play", flush=True)
    except LocalError:
        pods_down()
        raise
    result = {
        "prefix": prefix,
        "kube_play_seconds": round(played, 1),
        "ready_seconds": {k: round(v, 1) for k, v in ready.items()},
        "urls": {k: v.rsplit("/", 1)[0] for k, v in urls.items()},
    }
    (STATE / "pods.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"pods: all {len(ready)} Deployments ready in {max(ready.values()):.1f} s; state in {STATE}")
    return result


class PodStack:
    """The four services as the pods of the ``local`` overlay, for ``make demo DEMO_SERVICES=pods``.

    It has what the demo and ``tests/support/platform.py`` use of :class:`laifaxin_cli.stack.Stack` (``config``,
    ``binding_url``, ``notify_url``, ``start``, ``stop``): the run's settings from its
    :class:`~laifaxin_cli.stack.StackConfig` go into the rendered ConfigMaps (topic prefix, databases, the
    loopback WeChat API, the SMTP relay account, notify's extra settings) and Secrets (the JWT key the demo signs
    its tokens with, the WeChat AppSecret and SMTP password); the pods run in production mode like the
    manifests say. One sync replica.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.processes: dict[str, Any] = {}
        urls = readiness_urls(render(config.topic_prefix.rstrip("."), Path(config.mail["ca_file"])))
        self.binding_url = urls["binding"].rsplit("/", 1)[0]
        self.notify_url = urls["notify"].rsplit("/", 1)[0]

    async def start(self, sync_workers: int = 1) -> None:
        import asyncio

        if sync_workers != 1:
            raise LocalError("the local overlay runs one sync replica")
        cfg = self.config
        notify = {
            "NOTIFY_JWT_AUDIENCE": "laifaxin",
            "NOTIFY_PUBLIC_BASE_URL": self.notify_url,
            "NOTIFY_SMTP_FROM": "Laifaxin alerts <alerts@laifaxin.test>",
        }
        channels: dict[str, str] = {}
        if cfg.smtp_relay_user and cfg.smtp_relay_password:
            notify["NOTIFY_SMTP_USERNAME"] = cfg.smtp_relay_user
            channels["NOTIFY_SMTP_PASSWORD"] = cfg.smtp_relay_password
        if cfg.wechat_api_base:
            notify |= {
                "NOTIFY_WECHAT_API_BASE": cfg.wechat_api_base,
                "NOTIFY_WECHAT_APPID": cfg.wechat_appid,
                "NOTIFY_WECHAT_TEMPLATE_ID": cfg.wechat_template_id,
            }
            channels["NOTIFY_WECHAT_SECRET"] = cfg.wechat_secret
        if cfg.vapid_private_key:
            channels["NOTIFY_VAPID_PRIVATE_KEY"] = cfg.vapid_private_key
        env: dict[str, dict[str, str]] = {"common": {"KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_bootstrap_servers}}
        env["notify"] = notify
        for service, values in cfg.extra_env.items():
            env.setdefault(service, {}).update(values)
        secret_values = {
            "laifaxin-mongodb": {"MONGODB_URL": cfg.mongodb_url},
            "laifaxin-jwt": {"JWT_SECRET": cfg.jwt_secret},
            "notify-channels": channels,
        }
        await asyncio.to_thread(pods_up, cfg.topic_prefix.rstrip("."), env=env, secret_values=secret_values)

    def stop(self) -> None:
        pods_down()


def pods_down() -> None:
    """``podman kube down`` of what ``up`` played, then its secrets and state."""
    rendered = STATE / "local.yaml"
    pods = [f"{name}-pod-0" for name in SERVICES]
    if rendered.exists():
        podman("kube", "down", str(rendered), check=False)
        docs = [d for d in yaml.safe_load_all(rendered.read_text(encoding="utf-8")) if d]
        pods = [
            f"{d['metadata']['name']}-pod-{i}"  # how Podman names a Deployment's pods
            for d in docs
            if d["kind"] == "Deployment"
            for i in range(d["spec"].get("replicas", 1))
        ]
        rendered.unlink()
    # kube down leaves a pod that failed half-way through kube play: remove ours by name.
    podman("pod", "rm", "--force", "--ignore", "--time", "10", *pods, check=False)
    for name in ("laifaxin-mongodb", "laifaxin-credential-keys", "laifaxin-jwt", "notify-channels"):
        podman("secret", "rm", name, check=False)
    for leftover in ("secrets.json", "pods.json"):
        (STATE / leftover).unlink(missing_ok=True)
    print("pods: down")


def pods_status() -> int:
    print(podman("pod", "ps", "--filter", "label=app.kubernetes.io/part-of=laifaxin", check=False), end="")
    state = STATE / "pods.json"
    if state.exists():
        print(state.read_text(encoding="utf-8"))
        return 0
    return 1


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("images", help="build the base and the service images")
    build.add_argument("services", nargs="*", default=list(SERVICES))
    build.add_argument("--rebuild-base", action="store_true", help="make the Debian base again")
    check = sub.add_parser("images-check", help="run each image and wait for /readyz")
    check.add_argument("services", nargs="*", default=list(SERVICES))
    up = sub.add_parser("up", help="play the local overlay and wait for every readiness probe")
    up.add_argument("--prefix", default=os.environ.get("PODS_PREFIX", "local"), help="topic/database prefix")
    sub.add_parser("down", help="remove what up played")
    sub.add_parser("status", help="the pods and their readiness URLs")
    args = parser.parse_args(argv)
    try:
        if args.command == "images":
            print(json.dumps(images(args.services, rebuild_base=args.rebuild_base)))
        elif args.command == "images-check":
            results: dict[str, float] = {}
            try:
                images_check(args.services, results=results)
            finally:
                print(json.dumps({"ready_seconds": {k: round(v, 1) for k, v in results.items()}}))
                # The plain closing line CI reads after pytest's: images that started and answered /readyz.
                failed = len(args.services) - len(results)
                print(f"images-check: {len(results)} passed, {failed} failed", flush=True)
        elif args.command == "up":
            print(json.dumps(pods_up(args.prefix)))
        elif args.command == "down":
            pods_down()
        else:
            return pods_status()
    except LocalError as exc:
        print(f"deploy/podman/local.py {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
