"""Render every kustomize combination of deploy/k8s and validate it offline (what ``make k8s-check`` runs).

Usage::

    uv run python deploy/k8s/check.py            # exit 0 when every combination renders and validates
    uv run python deploy/k8s/check.py --verbose  # also list each object

First, the files gen_topics.py generates must match the topic registry. Combinations: the base alone, the base with each component, the base with every component, and each overlay
(components and overlays are discovered from their folders, so a new one is checked without editing this file).

Each rendered object is validated, offline:

- core Kubernetes kinds against the JSON schemas shipped in the ``kubernetes-validate`` wheel, strict (unknown
  fields are errors), for :data:`KUBERNETES_VERSION`;
- custom resources against the ``openAPIV3Schema`` of their CRD, made strict the same way: KEDA's
  ``ScaledObject`` and the Prometheus Operator's ``ServiceMonitor`` from the CRD YAML in those projects' Go
  modules (``go mod download``, pinned below), Strimzi's ``KafkaTopic`` from the minimal stand-in in
  ``schemas/`` (Strimzi publishes no CRD YAML to a registry we reach; see that file);
- every object of a kind we have no schema for is an error.

Then the platform's rules: every container non-root, read-only root filesystem, all capabilities dropped, no
privilege escalation, RuntimeDefault seccomp, liveness and readiness probes on named ports, requests and limits,
a pinned image named like the service, /tmp on an emptyDir; one name per service for folder, image, Deployment,
Service, ServiceAccount, container and label; a PodDisruptionBudget per Deployment; no Secret objects at all
(Secrets are created by operators, never rendered from this tree), and every referenced Secret name and key
documented in deploy/k8s/README.md; the KEDA ScaledObject's maxReplicaCount equal to the partition count of its
consumer group's topics in the topic registry; KafkaTopics exactly the registry's topics.

Tools: kustomize is installed from the Go module proxy into ``~/.cache/laifaxin/bin`` (idempotent, pinned
:data:`KUSTOMIZE_VERSION`); the CRD modules come from the Go module cache. Anything missing is an error, never a
skip.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

from laifaxin_shared.netguard import GLOBAL_UNICAST_V6, NON_PUBLIC_V4, NON_PUBLIC_V6, SIX_TO_FOUR
from laifaxin_shared.topics import TOPICS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BASE = HERE / "base"
COMPONENTS = HERE / "components"
OVERLAYS = HERE / "overlays"
SCHEMAS = HERE / "schemas"
README = HERE / "README.md"

KUBERNETES_VERSION = "1.33"
"""The oldest Kubernetes minor the manifests must be valid for (schemas from kubernetes-validate)."""
KUSTOMIZE_VERSION = "v5.8.2"
"""Pinned kustomize; v5.8.3 needs a newer Go than this project's machines have."""
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
CACHE_DIR = Path(os.environ.get("LAIFAXIN_CACHE_DIR", Path.home() / ".cache" / "laifaxin"))

CRD_SOURCES: dict[tuple[str, str], tuple[str, str]] = {
    # (group, kind): (Go module@version, path of the CRD YAML inside the module)
    ("keda.sh", "ScaledObject"): (
        "github.com/kedacore/keda/v2@v2.21.0",
        "config/crd/bases/keda.sh_scaledobjects.yaml",
    ),
    ("keda.sh", "TriggerAuthentication"): (
        "github.com/kedacore/keda/v2@v2.21.0",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
    ),
    ("monitoring.coreos.com", "ServiceMonitor"): (
        "github.com/prometheus-operator/prometheus-operator@v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ),
}
LOCAL_CRDS: dict[tuple[str, str], Path] = {
    ("kafka.strimzi.io", "KafkaTopic"): SCHEMAS / "kafkatopics.kafka.strimzi.io.yaml",
    ("kafka.strimzi.io", "KafkaUser"): SCHEMAS / "kafkausers.kafka.strimzi.io.yaml",
}

SERVICE_DIRS = REPO / "services"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAME_LABEL = "app.kubernetes.io/name"


class CheckError(Exception):
    """A tool or schema the check needs could not be had (kustomize, go, a CRD module)."""


# --------------------------------------------------------------------------------------------------- tools


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise CheckError("the Go toolchain (go) is needed to install kustomize and read the CRD modules")
    return go


def _go_env() -> dict[str, str]:
    # A local toolchain only: a toolchain download is not reachable from these machines.
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}


def ensure_kustomize() -> Path:
    """The pinned kustomize binary, installed with ``go install`` on first use.

    Raises:
        CheckError: go is missing or the install failed.
    """
    explicit = os.environ.get("KUSTOMIZE")
    if explicit:
        return Path(explicit)
    bin_dir = CACHE_DIR / "bin"
    binary = bin_dir / "kustomize"
    if binary.exists():
        out = subprocess.run(  # noqa: S603  # our cached kustomize binary, fixed arguments
            [binary, "version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out == KUSTOMIZE_VERSION:
            return binary
    bin_dir.mkdir(parents=True, exist_ok=True)
    print(f"installing kustomize {KUSTOMIZE_VERSION} into {bin_dir} (Go module proxy)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:  # outside any go.mod
        proc = subprocess.run(  # noqa: S603  # go install of a pinned module
            [_go(), "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
            cwd=scratch,
            env={**_go_env(), "GOBIN": str(bin_dir)},
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0 or not binary.exists():
        raise CheckError(f"go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION} failed:\n{proc.stderr.strip()}")
    return binary


@cache
def go_module_dir(module_at_version: str) -> Path:
    """The module's directory in the Go module cache (downloaded on first use).

    Raises:
        CheckError: the download failed.
    """
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.run(  # noqa: S603  # go mod download of a pinned module
            [_go(), "mod", "download", "-json", module_at_version],
            cwd=scratch,
            env=_go_env(),
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or "Dir" not in info:
        raise CheckError(
            f"go mod download {module_at_version} failed: {info.get('Error') or proc.stderr.strip()}"
        )
    return Path(info["Dir"])


# ------------------------------------------------------------------------------------------------- schemas


def _strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema where objects with declared properties refuse undeclared ones.

    The API server prunes or (with strict field validation) rejects unknown fields; a typo must fail here too.
    Structural CRD schemas declare every property in the main schema (never only in an anyOf/oneOf branch), so
    closing each object that declares properties is safe.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _strict(sub) for name, sub in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_strict(sub) for sub in out[key]]
    return out


@dataclass
class Schemas:
    """Validators for core kinds (kubernetes-validate's strict schemas) and for custom resources (CRDs)."""

    version: str = KUBERNETES_VERSION
    _core: dict[tuple[str, str], jsonschema.protocols.Validator] = field(default_factory=dict)
    _crd: dict[tuple[str, str, str], jsonschema.protocols.Validator] = field(default_factory=dict)
    crd_sources: dict[tuple[str, str], str] = field(default_factory=dict)
    _defs: Registry | None = None

    def _core_dir(self) -> Any:
        root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
        directory = root.joinpath(f"v{self.version}.0-local-strict")
        if not directory.is_dir():
            raise CheckError(f"kubernetes-validate has no schemas for Kubernetes {self.version}")
        return directory

    def _registry(self) -> Registry:
        if self._defs is None:  # the definitions are large: read them once per run
            defs = json.loads(self._core_dir().joinpath("_definitions.json").read_text(encoding="utf-8"))
            self._defs = Resource.from_contents(defs) @ Registry()
        return self._defs

    def core(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        key = (api_version, kind)
        if key not in self._core:
            # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1.
            group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            path = self._core_dir().joinpath(f"{kind.lower()}-{group_version}.json")
            if not path.is_file():
                return None
            schema = json.loads(path.read_text(encoding="utf-8"))
            self._core[key] = jsonschema.Draft202012Validator(schema, registry=self._registry())
        return self._core[key]

    def load_crd(self, crd: dict[str, Any], source: str) -> None:
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            jsonschema.Draft7Validator.check_schema(schema)
            self._crd[(group, version["name"], kind)] = jsonschema.Draft7Validator(schema)
        self.crd_sources[(group, kind)] = source

    def load_all_crds(self) -> None:
        """Read every CRD this check knows: from the Go modules and the local stand-ins.

        Raises:
            CheckError: a module or a CRD file is missing, or a CRD is not a valid CustomResourceDefinition.
        """
        for (group, kind), (module, rel) in CRD_SOURCES.items():
            path = go_module_dir(module) / rel
            if not path.is_file():
                raise CheckError(f"{module} has no {rel}")
            self._add_crd_file(path, f"{module} {rel}", group, kind)
        for (group, kind), path in LOCAL_CRDS.items():
            self._add_crd_file(path, f"{path.relative_to(REPO)} (minimal stand-in)", group, kind)

    def _add_crd_file(self, path: Path, source: str, group: str, kind: str) -> None:
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        errors = self.validate_core(crd)
        if errors:
            raise CheckError(f"{source} is not a valid CustomResourceDefinition: {errors[0]}")
        if (crd["spec"]["group"], crd["spec"]["names"]["kind"]) != (group, kind):
            raise CheckError(f"{source} defines {crd['spec']['names']['kind']}, expected {kind}")
        self.load_crd(crd, source)

    def validate_core(self, obj: dict[str, Any]) -> list[str]:
        validator = self.core(obj.get("apiVersion", ""), obj.get("kind", ""))
        if validator is None:
            return [f"no Kubernetes {self.version} schema for {obj.get('apiVersion')} {obj.get('kind')}"]
        return [_format(e) for e in validator.iter_errors(obj)]

    def validate(self, obj: dict[str, Any]) -> tuple[str, list[str]]:
        """Validate one object; returns (what it was validated against, errors)."""
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = api_version.rpartition("/")
        crd = self._crd.get((group, version, kind)) if group else None
        if crd is None:
            if group and (group, kind) in self.crd_sources:
                return "crd", [f"{api_version} is not a version served by the {kind} CRD"]
            if "." in group and not group.endswith(".k8s.io"):
                return "crd", [f"no CRD schema known for {api_version} {kind}"]
            return "core", self.validate_core(obj)
        errors = [_format(e) for e in crd.iter_errors(obj)]
        # The CRD schema says only `metadata: object`; hold metadata to ObjectMeta's schema as well.
        errors += self.validate_core(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
        )
        return "crd", errors


def _format(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(root)"
    message = error.message if len(error.message) < 300 else error.message[:300] + "..."
    return f"{path}: {message}"


# ------------------------------------------------------------------------------------------- combinations


@dataclass(frozen=True)
class Combination:
    """One thing kustomize builds: a folder, or the base plus some components."""

    name: str
    path: Path | None = None
    components: tuple[Path, ...] = ()


def combinations() -> list[Combination]:
    """The base alone, the base with each component and with all of them, and each overlay."""
    comps = sorted(p for p in COMPONENTS.iterdir() if (p / "kustomization.yaml").is_file())
    combos = [Combination("base", path=BASE)]
    combos += [Combination(f"base+{c.name}", components=(c,)) for c in comps]
    combos.append(Combination("base+all-components", components=tuple(comps)))
    combos += [
        Combination(f"overlay/{o.name}", path=o)
        for o in sorted(OVERLAYS.iterdir())
        if (o / "kustomization.yaml").is_file()
    ]
    return combos


def build(kustomize: Path, combo: Combination) -> list[dict[str, Any]]:
    """Render a combination with kustomize.

    Raises:
        CheckError: kustomize failed.
    """
    with tempfile.TemporaryDirectory(prefix="k8s-check-") as scratch:
        target = combo.path
        if target is None:
            # kustomize refuses absolute paths in a kustomization: refer to ours relatively.
            rel = Path(os.path.relpath(HERE, scratch))
            doc = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(rel / "base")],
                "components": [str(rel / "components" / c.name) for c in combo.components],
            }
            Path(scratch, "kustomization.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
            target = Path(scratch)
        proc = subprocess.run(  # noqa: S603  # kustomize build of a folder of this tree
            [kustomize, "build", target], capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        raise CheckError(f"kustomize build {combo.name} failed:\n{proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


# -------------------------------------------------------------------------------------------------- rules


def _kn(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    if obj["kind"] == "Pod":
        yield spec
    elif "template" in spec and obj["kind"] in {
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
    }:
        yield spec["template"].get("spec", {})


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _readme_secret_refs() -> str:
    return README.read_text(encoding="utf-8") if README.exists() else ""


def check_container(where: str, pod: dict[str, Any], c: dict[str, Any], *, probes: bool) -> list[str]:
    errs: list[str] = []
    pod_sc = pod.get("securityContext", {})
    sc = c.get("securityContext", {})
    run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    run_as_user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if run_as_non_root is not True:
        errs.append(f"{where}: runAsNonRoot is not true")
    if not isinstance(run_as_user, int) or run_as_user == 0:
        errs.append(f"{where}: runAsUser must be a non-zero uid")
    if sc.get("readOnlyRootFilesystem") is not True:
        errs.append(f"{where}: readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        errs.append(f"{where}: allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        errs.append(f"{where}: privileged")
    caps = sc.get("capabilities", {})
    if "ALL" not in caps.get("drop", []):
        errs.append(f"{where}: capabilities.drop lacks ALL")
    if caps.get("add"):
        errs.append(f"{where}: adds capabilities {caps['add']}")
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
    if seccomp.get("type") != "RuntimeDefault":
        errs.append(f"{where}: seccompProfile is not RuntimeDefault")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(part, {}):
                errs.append(f"{where}: no {part}.{r}")
    port_names = {p.get("name") for p in c.get("ports", [])}
    if probes:
        for probe in ("livenessProbe", "readinessProbe"):
            p = c.get(probe)
            if not p:
                errs.append(f"{where}: no {probe}")
                continue
            port = (p.get("httpGet") or p.get("tcpSocket") or p.get("grpc") or {}).get("port")
            if isinstance(port, str) and port not in port_names:
                errs.append(f"{where}: {probe} names port {port!r}, which the container does not declare")
    image = c.get("image", "")
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest":
        errs.append(f"{where}: image {image!r} has no pinned tag")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmp = [m for m in c.get("volumeMounts", []) if m.get("mountPath") == "/tmp"]  # noqa: S108  # checks a mount path, creates nothing
    if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
        errs.append(f"{where}: /tmp is not an emptyDir mount (the root filesystem is read-only)")
    return errs


FORBIDDEN_V6 = (*(n for n in NON_PUBLIC_V6 if n.subnet_of(GLOBAL_UNICAST_V6)), SIX_TO_FOUR)
"""Non-public IPv6 networks inside global unicast 2000::/3 (the rest of IPv6 an ipBlock may not reach at all)."""


def check_egress_rule(where: str, rule: dict[str, Any]) -> list[str]:
    """An egress rule names its destinations (``to:``; a ports-only rule reaches the whole cluster and the cloud's
    metadata service), and an ``ipBlock`` toward the internet excepts every non-public range that the platform's
    SSRF rule (``laifaxin_shared.netguard``) refuses: private, loopback, link-local and metadata, shared, ...;
    IPv6 blocks stay inside global unicast ``2000::/3`` and except its non-public parts (6to4 included)."""
    errs: list[str] = []
    peers = rule.get("to") or []
    if not peers:
        return [
            f"{where}: egress rule to ports {[pt.get('port') for pt in rule.get('ports', [])]} has no destination"
        ]
    for peer in peers:
        block = peer.get("ipBlock")
        if block is None:
            continue
        try:
            cidr = ipaddress.ip_network(block["cidr"])
            excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
        except ValueError as exc:
            errs.append(f"{where}: ipBlock {block} is not valid: {exc}")
            continue
        if isinstance(cidr, ipaddress.IPv4Network):
            forbidden: tuple[Any, ...] = NON_PUBLIC_V4
        else:
            if not cidr.subnet_of(GLOBAL_UNICAST_V6):
                errs.append(f"{where}: IPv6 ipBlock {cidr} reaches beyond global unicast 2000::/3")
                continue
            forbidden = FORBIDDEN_V6
        for net in forbidden:
            if net.overlaps(cidr) and not any(
                net.version == e.version and net.subnet_of(e) for e in excepted
            ):
                errs.append(f"{where}: ipBlock {cidr} does not except non-public {net}")
    return errs


def check_rules(objs: list[dict[str, Any]], *, base_names: set[str]) -> list[str]:
    """The platform's policies over one rendered combination."""
    errs: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
        name = o.get("metadata", {}).get("name", "")
        if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            errs.append(f"{_kn(o)}: name is not a DNS-1123 subdomain")
        if o["kind"] == "Secret":
            errs.append(f"{_kn(o)}: Secrets are never rendered from this tree (create them in the cluster)")
        for key in ("data", "stringData"):
            if o["kind"] == "Secret" and o.get(key):
                errs.append(f"{_kn(o)}: committed secret {key}")

    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    accounts = {s["metadata"]["name"]: s for s in by_kind.get("ServiceAccount", [])}
    configmaps = {c["metadata"]["name"] for c in by_kind.get("ConfigMap", [])}
    pdbs = by_kind.get("PodDisruptionBudget", [])
    readme = _readme_secret_refs()
    pod_labels: dict[str, dict[str, str]] = {}
    container_ports: dict[str, set[str]] = {}

    for o in objs:
        for pod in _pod_specs(o):
            for init in pod.get("initContainers", []):
                errs += check_container(f"{_kn(o)} initContainer {init.get('name')}", pod, init, probes=False)
            for c in pod.get("containers", []):
                errs += check_container(f"{_kn(o)} container {c.get('name')}", pod, c, probes=True)
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                for ref in c.get("envFrom", []):
                    cm = ref.get("configMapRef", {}).get("name")
                    if cm and cm not in configmaps and not ref["configMapRef"].get("optional"):
                        errs.append(f"{_kn(o)}: envFrom ConfigMap {cm!r} is not rendered")
                    if "secretRef" in ref:
                        errs.append(
                            f"{_kn(o)}: envFrom secretRef hides which keys are needed; use secretKeyRef"
                        )
                for env in c.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref and (f"`{ref['name']}`" not in readme or f"`{ref['key']}`" not in readme):
                        errs.append(
                            f"{_kn(o)}: Secret {ref['name']}/{ref['key']} is not documented in deploy/k8s/README.md"
                        )
            if pod.get("automountServiceAccountToken") is not False:
                errs.append(f"{_kn(o)}: automountServiceAccountToken is not false")

    for d in by_kind.get("Deployment", []):
        name = d["metadata"]["name"]
        tmpl = d["spec"]["template"]
        labels = tmpl.get("metadata", {}).get("labels", {})
        pod_labels[name] = labels
        pod = tmpl["spec"]
        container_ports[name] = {p.get("name") for c in pod["containers"] for p in c.get("ports", [])}
        if d["metadata"].get("labels", {}).get(NAME_LABEL) != name or labels.get(NAME_LABEL) != name:
            errs.append(f"{_kn(d)}: label {NAME_LABEL} must be {name!r} on the Deployment and its pods")
        if d["spec"]["selector"].get("matchLabels", {}).get(NAME_LABEL) != name:
            errs.append(f"{_kn(d)}: selector must match {NAME_LABEL}={name}")
        first = pod["containers"][0]
        if first.get("name") != name:
            errs.append(f"{_kn(d)}: its container is named {first.get('name')!r}, not {name!r}")
        image_name = first.get("image", "").rsplit("/", 1)[-1].partition(":")[0]
        if image_name != name:
            errs.append(f"{_kn(d)}: image {first.get('image')!r} is not named {name!r}")
        if name in base_names and not (SERVICE_DIRS / name).is_dir():
            errs.append(f"{_kn(d)}: no folder services/{name}")
        if pod.get("serviceAccountName") != name:
            errs.append(f"{_kn(d)}: serviceAccountName is not {name!r}")
        sa = accounts.get(name)
        if sa is None:
            errs.append(f"{_kn(d)}: no ServiceAccount {name!r}")
        elif sa.get("automountServiceAccountToken") is not False:
            errs.append(f"ServiceAccount/{name}: automountServiceAccountToken is not false")
        svc = services.get(name)
        if svc is None:
            errs.append(f"{_kn(d)}: no Service {name!r}")
        else:
            if not _selects(svc["spec"].get("selector", {}), labels):
                errs.append(f"Service/{name}: does not select the pods of Deployment/{name}")
            for p in svc["spec"].get("ports", []):
                target = p.get("targetPort")
                if isinstance(target, str) and target not in container_ports[name]:
                    errs.append(f"Service/{name}: targetPort {target!r} is not a container port")
        if not any(_selects(p["spec"].get("selector", {}).get("matchLabels", {}), labels) for p in pdbs):
            errs.append(f"{_kn(d)}: no PodDisruptionBudget selects its pods")

    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    for so in by_kind.get("ScaledObject", []):
        target = so["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            errs.append(f"{_kn(so)}: scales {target!r}, which is not a rendered Deployment")
        elif "replicas" in deployments[target]["spec"]:
            errs.append(f"Deployment/{target}: sets spec.replicas although {_kn(so)} owns its replica count")
        groups = {
            t["metadata"].get("consumerGroup") for t in so["spec"].get("triggers", []) if t["type"] == "kafka"
        }
        for group in groups:
            topics = [s for s in TOPICS.values() if group in s.consumers]
            partitions = {s.partitions for s in topics}
            if len(partitions) != 1 or so["spec"].get("maxReplicaCount") != partitions.pop():
                errs.append(
                    f"{_kn(so)}: maxReplicaCount must equal the partition count of group {group}'s topics"
                )
            triggered = {t["metadata"].get("topic") for t in so["spec"]["triggers"]}
            if triggered != {s.name for s in topics}:
                errs.append(f"{_kn(so)}: triggers {sorted(triggered)} are not group {group}'s topics")

    for sm in by_kind.get("ServiceMonitor", []):
        selector = sm["spec"]["selector"].get("matchLabels", {})
        targets = [s for s in services.values() if _selects(selector, s["metadata"].get("labels", {}))]
        if not targets:
            errs.append(f"{_kn(sm)}: selects no rendered Service")
        for ep in sm["spec"].get("endpoints", []):
            if not any(ep.get("port") in {p.get("name") for p in t["spec"]["ports"]} for t in targets):
                errs.append(
                    f"{_kn(sm)}: endpoint port {ep.get('port')!r} is not a port of the selected Service"
                )

    policies = by_kind.get("NetworkPolicy", [])
    if policies:
        deny = [
            p
            for p in policies
            if p["spec"].get("podSelector") == {}
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        if not deny:
            errs.append("NetworkPolicy: policies without a default deny")
        for p in policies:
            selector = p["spec"].get("podSelector", {}).get("matchLabels", {})
            selected = [n for n, labels in pod_labels.items() if _selects(selector, labels)]
            if selector and not selected:
                errs.append(f"{_kn(p)}: selects no rendered pods")
            for rule in p["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    named = port.get("port")
                    if isinstance(named, str) and any(named not in container_ports[n] for n in selected):
                        errs.append(f"{_kn(p)}: ingress port {named!r} is not declared by every selected pod")
            for rule in p["spec"].get("egress", []):
                errs += check_egress_rule(_kn(p), rule)

    kafka_topics = by_kind.get("KafkaTopic", [])
    if kafka_topics:
        rendered = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in kafka_topics}
        if set(rendered) != set(TOPICS):
            errs.append(
                f"KafkaTopic: rendered {sorted(set(rendered) ^ set(TOPICS))} differ from the registry"
            )
        for name, t in rendered.items():
            if not t["metadata"].get("labels", {}).get("strimzi.io/cluster"):
                errs.append(f"{_kn(t)}: no strimzi.io/cluster label (the Topic Operator would ignore it)")
            registered = TOPICS.get(name)
            if registered and t["spec"]["partitions"] != registered.partitions:
                errs.append(
                    f"{_kn(t)}: partitions {t['spec']['partitions']} != registry {registered.partitions}"
                )
    return errs


# ---------------------------------------------------------------------------------------------------- main


@dataclass
class Report:
    combination: str
    objects: int = 0
    unit: str = "objects"
    against: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def check(verbose: bool = False, out: Any = sys.stdout) -> tuple[list[Report], dict[tuple[str, str], str]]:
    """Render and validate every combination; returns the reports and the source of each CRD schema.

    Raises:
        CheckError: a tool, a module or a schema could not be had.
    """
    kustomize = ensure_kustomize()
    schemas = Schemas()
    schemas.load_all_crds()
    base_names = {
        o["metadata"]["name"]
        for o in build(kustomize, Combination("base", path=BASE))
        if o["kind"] == "Deployment"
    }
    generated = Report("generated", objects=2, unit="files", against={"compared with the topic registry": 2})
    generated.errors = [
        f"{path.relative_to(HERE)} drifted from the topic registry; run: uv run python deploy/k8s/gen_topics.py"
        for path in _gen_topics().drifted()
    ]
    reports = [generated, scan_tree()]
    for combo in combinations():
        report = Report(combo.name)
        objs = build(kustomize, combo)
        report.objects = len(objs)
        for o in objs:
            against, errors = schemas.validate(o)
            report.against[against] = report.against.get(against, 0) + 1
            report.errors += [f"{_kn(o)}: {e}" for e in errors]
            if verbose:
                print(f"  {combo.name}: {o['apiVersion']} {_kn(o)} [{against}]", file=out)
        report.errors += check_rules(objs, base_names=base_names)
        reports.append(report)
    return reports, schemas.crd_sources


def scan_tree() -> Report:
    """Every YAML file under deploy/k8s, rendered or not: no Secret object, no secretGenerator."""
    files = sorted(HERE.rglob("*.yaml"))
    report = Report("tree", objects=len(files), unit="files", against={"scanned for Secrets": len(files)})
    for path in files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Secret":
                report.errors.append(f"{path.relative_to(HERE)}: a Secret object is committed")
            if doc.get("secretGenerator"):
                report.errors.append(
                    f"{path.relative_to(HERE)}: secretGenerator (Secrets are created in the cluster)"
                )
    return report


def _gen_topics() -> Any:
    """deploy/k8s/gen_topics.py, loaded by path (this file runs as a script and as ``deploy.k8s.check``)."""
    spec = importlib.util.spec_from_file_location("laifaxin_deploy_gen_topics", HERE / "gen_topics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list every object and what validated it")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        reports, crd_sources = check(verbose=args.verbose)
    except CheckError as exc:
        print(f"k8s-check: ERROR: {exc}", file=sys.stderr)
        return 2
    for r in reports:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(r.against.items()))
        status = "ok  " if not r.errors else "FAIL"
        print(f"{status} {r.combination}: {r.objects} {r.unit} ({kinds})")
        for e in r.errors:
            print(f"     {e}")
    print(f"Kubernetes schemas: kubernetes-validate, Kubernetes {KUBERNETES_VERSION}, strict")
    for (group, kind), source in sorted(crd_sources.items()):
        print(f"CRD {kind}.{group}: {source}")
    failed = sum(1 for r in reports if r.errors)
    print(f"rendered and validated in {time.monotonic() - started:.1f} s")
    print(f"k8s-check: {len(reports) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
