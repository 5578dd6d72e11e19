"""deploy/podman/local.py and the `local` overlay, offline: what `make pods-up` would play.

The builds and runs themselves are `make images-check` and `make pods-up` (they need Podman and the servers);
here the rendered overlay is held to what they rely on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(900)  # a cold run compiles kustomize with go install


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("laifaxin_podman_local", REPO / "deploy/podman/local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


local = _load()


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return local.render("unitprefix", Path("/srv/ca/ca.pem"))  # type: ignore[no-any-return]


def _deployments(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}


def test_local_overlay_uses_the_local_images_on_the_host_network(rendered: list[dict[str, Any]]) -> None:
    deployments = _deployments(rendered)
    assert sorted(deployments) == sorted(local.SERVICES)
    ports = set()
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"] == local.image_ref(name) == f"registry.laifa.xin/laifaxin/{name}:local"
        assert container["imagePullPolicy"] == "Never"
        assert pod["hostNetwork"] is True
        env = {e["name"]: e.get("value") for e in container["env"]}
        port = container["ports"][0]["containerPort"]
        assert (
            env[f"{name.upper()}_HTTP_PORT"] == str(port) and env[f"{name.upper()}_HTTP_HOST"] == "127.0.0.1"
        )
        assert port < 32768, "below the ephemeral port range"
        ports.add(port)
        # The prod security context is kept.
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert len(ports) == 4, "one HTTP port per service on the shared host network"


def test_render_fills_in_the_prefix_and_the_ca(rendered: list[dict[str, Any]]) -> None:
    data: dict[str, str] = {}
    for o in rendered:
        if o["kind"] == "ConfigMap":
            data |= o["data"]
    assert data["LAIFAXIN_TOPIC_PREFIX"] == "unitprefix."
    assert data["LAIFAXIN_ENVIRONMENT"] == "production"
    for name in local.SERVICES:
        assert data[f"{name.upper()}_MONGODB_DATABASE"] == f"unitprefix_{name}"
    for name, d in _deployments(rendered).items():
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        if name == "classifier":
            assert "local-ca" not in volumes  # it talks to no mail server
        else:
            assert volumes["local-ca"]["hostPath"] == {"path": "/srv/ca/ca.pem", "type": "File"}


def test_for_podman_drops_ports_and_resolves_probe_ports(rendered: list[dict[str, Any]]) -> None:
    urls = local.readiness_urls(rendered)
    for name, d in _deployments(rendered).items():
        port = d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        assert urls[name] == f"http://127.0.0.1:{port}/readyz"
        played = local.for_podman(d)["spec"]["template"]["spec"]["containers"][0]
        assert "ports" not in played
        assert played["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
        assert played["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        assert "ports" in d["spec"]["template"]["spec"]["containers"][0], "the rendered object is not changed"


def test_podman_config_stays_within_the_machine_limits() -> None:
    import tomllib

    conf = tomllib.loads((REPO / "deploy/podman/containers.conf").read_text(encoding="utf-8"))
    assert conf["engine"]["runtime"] == "runc" and conf["engine"]["cgroup_manager"] == "cgroupfs"
    limits = dict(u.split("=", 1) for u in conf["containers"]["default_ulimits"])
    soft, hard = (int(v) for v in limits["nofile"].split(":"))
    assert soft <= hard <= 20000
    env = local.podman_env()
    assert (
        env["CONTAINERS_CONF"].endswith("deploy/podman/containers.conf")
        or "CONTAINERS_CONF" in __import__("os").environ
    )
