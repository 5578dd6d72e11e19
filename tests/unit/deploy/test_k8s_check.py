"""deploy/k8s/check.py: every combination renders and validates, and the check catches what it claims to.

Needs kustomize (installed from the Go module proxy on first use, cached) and the KEDA and prometheus-operator
Go modules (module cache). When they cannot be had the tests fail with the reason; they never skip.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from deploy.k8s import check
from laifaxin_shared.topics import MAILBOX_PARTITIONS, TOPICS

pytestmark = pytest.mark.timeout(900)  # a cold run compiles kustomize with go install


@pytest.fixture(scope="module")
def kustomize() -> Any:
    try:
        return check.ensure_kustomize()
    except check.CheckError as exc:
        pytest.fail(f"k8s-check needs kustomize: {exc}")


@pytest.fixture(scope="module")
def schemas() -> check.Schemas:
    s = check.Schemas()
    try:
        s.load_all_crds()
    except check.CheckError as exc:
        pytest.fail(f"k8s-check needs the CRD schemas: {exc}")
    return s


@pytest.fixture(scope="module")
def prod(kustomize: Any) -> list[dict[str, Any]]:
    """The prod overlay: every component, so every kind this tree renders."""
    return check.build(kustomize, check.Combination("overlay/prod", path=check.OVERLAYS / "prod"))


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _rules(objs: list[dict[str, Any]]) -> list[str]:
    return check.check_rules(objs, base_names={"binding", "sync", "classifier", "notify"})


def test_every_combination_renders_and_validates(kustomize: Any) -> None:
    reports, crd_sources = check.check()
    names = [r.combination for r in reports]
    components = sorted(p.name for p in check.COMPONENTS.iterdir() if p.is_dir())
    assert components == ["kafka-topics", "kafka-users", "keda-sync", "monitoring", "network-policies"]
    assert names == [
        "generated",
        "tree",
        "base",
        *(f"base+{c}" for c in components),
        "base+all-components",
        "overlay/dev",
        "overlay/local",
        "overlay/prod",
    ]
    failures = {r.combination: r.errors for r in reports if r.errors}
    assert not failures, failures
    # Every custom resource was validated against a CRD schema, none skipped.
    assert {kind for _, kind in crd_sources} == {
        "KafkaTopic",
        "KafkaUser",
        "ScaledObject",
        "TriggerAuthentication",
        "ServiceMonitor",
    }
    prod_report = reports[-1]
    # one KafkaTopic per registered topic, four KafkaUsers, the ScaledObject and its TriggerAuthentication, two
    # ServiceMonitors
    assert prod_report.against == {"core": 28, "crd": len(TOPICS) + 8}


def test_prod_renders_every_service_with_its_parts(prod: list[dict[str, Any]]) -> None:
    for name in ("binding", "sync", "classifier", "notify"):
        for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap"):
            assert any(o["kind"] == kind and o["metadata"]["name"].startswith(name) for o in prod), (
                kind,
                name,
            )
    scaled = _one(prod, "ScaledObject", "sync")
    assert scaled["spec"]["maxReplicaCount"] == MAILBOX_PARTITIONS
    assert {t["metadata"]["consumerGroup"] for t in scaled["spec"]["triggers"]} == {"sync"}
    assert all(o["metadata"].get("namespace") == "laifaxin" for o in prod if o["kind"] != "Namespace")


def test_credential_keys_reach_only_the_services_that_seal(prod: list[dict[str, Any]]) -> None:
    holders = {
        d["metadata"]["name"]
        for d in prod
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "laifaxin-credential-keys"
    }
    # binding seals mailbox passwords, sync opens them; notify (internet-facing: WeChat callbacks, users' webhook
    # URLs) seals its own secrets with its own ring; the classifier never sees a secret
    assert holders == {"binding", "sync"}


def test_notify_has_its_own_database_user_and_key_ring(prod: list[dict[str, Any]]) -> None:
    """A compromised notify pod holds neither the mailbox credential ring nor binding's/sync's database URL."""
    [container] = _one(prod, "Deployment", "notify")["spec"]["template"]["spec"]["containers"]
    refs = {
        e["name"]: (ref["name"], ref["key"])
        for e in container.get("env", [])
        if (ref := e.get("valueFrom", {}).get("secretKeyRef"))
    }
    assert refs["MONGODB_URL"] == ("notify-mongodb", "MONGODB_URL")
    assert refs["NOTIFY_SECRETS_KEYS"] == ("notify-channels", "NOTIFY_SECRETS_KEYS")
    assert "LAIFAXIN_CREDENTIAL_KEYS" not in refs
    assert not any(name == "laifaxin-credential-keys" for name, _ in refs.values())
    others = {
        d["metadata"]["name"]: {
            e.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
            for c in d["spec"]["template"]["spec"]["containers"]
            for e in c.get("env", [])
        }
        for d in prod
        if d["kind"] == "Deployment" and d["metadata"]["name"] != "notify"
    }
    assert all("notify-mongodb" not in names and "notify-channels" not in names for names in others.values())


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c, p: c["securityContext"].pop("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
        (lambda c, p: c["securityContext"].update(runAsUser=0), "runAsUser"),
        (lambda c, p: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
        (lambda c, p: c["securityContext"]["capabilities"].update(drop=["NET_RAW"]), "capabilities.drop"),
        (lambda c, p: c.pop("livenessProbe"), "no livenessProbe"),
        (lambda c, p: c["readinessProbe"]["httpGet"].update(port="metrics"), "readinessProbe names port"),
        (lambda c, p: c["resources"].pop("limits"), "no limits.cpu"),
        (lambda c, p: c.update(image=c["image"].rsplit(":", 1)[0] + ":latest"), "no pinned tag"),
        (lambda c, p: c.update(image=c["image"].replace("/sync:", "/syncer:")), "is not named 'sync'"),
        (lambda c, p: p.pop("automountServiceAccountToken"), "automountServiceAccountToken"),
        (lambda c, p: p["securityContext"].pop("seccompProfile"), "seccompProfile"),
        (lambda c, p: p.pop("volumes"), "is not an emptyDir mount"),
        (
            lambda c, p: c["env"].append(
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "undocumented", "key": "X"}}}
            ),
            "not documented",
        ),
    ],
)
def test_rules_catch_a_broken_pod(prod: list[dict[str, Any]], mutate: Any, expected: str) -> None:
    objs = copy.deepcopy(prod)
    pod = _one(objs, "Deployment", "sync")["spec"]["template"]["spec"]
    assert not _rules(objs)
    mutate(pod["containers"][0], pod)
    errors = _rules(objs)
    assert any(expected in e and "sync" in e for e in errors), errors


def test_rules_refuse_any_secret_object(prod: list[dict[str, Any]]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak"}, "data": {"k": "dg=="}}
    errors = _rules([*copy.deepcopy(prod), secret])
    assert any("Secret/leak" in e and "never rendered" in e for e in errors)
    assert any("committed secret data" in e for e in errors)


def test_rules_tie_names_and_bounds(prod: list[dict[str, Any]]) -> None:
    objs = copy.deepcopy(prod)
    _one(objs, "ScaledObject", "sync")["spec"]["maxReplicaCount"] = MAILBOX_PARTITIONS + 1
    objs = [o for o in objs if not (o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "notify")]
    _one(objs, "ServiceMonitor", "classifier")["spec"]["endpoints"][0]["port"] = "metrics"
    objs = [o for o in objs if o["metadata"]["name"] != "mail.received"]
    _one(objs, "Deployment", "sync")["spec"]["replicas"] = 3
    errors = "\n".join(_rules(objs))
    assert "Deployment/sync: sets spec.replicas although ScaledObject/sync owns" in errors
    assert "maxReplicaCount must equal the partition count" in errors
    assert "Deployment/notify: no PodDisruptionBudget" in errors
    assert "endpoint port 'metrics'" in errors
    assert "differ from the registry" in errors


def test_tree_scan_finds_a_committed_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    (tmp_path / "leak.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n", encoding="utf-8"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "secretGenerator: [{name: y, literals: [a=b]}]\n", encoding="utf-8"
    )
    monkeypatch.setattr(check, "HERE", tmp_path)
    errors = check.scan_tree().errors
    assert errors == [
        "kustomization.yaml: secretGenerator (Secrets are created in the cluster)",
        "leak.yaml: a Secret object is committed",
    ]


def test_rules_want_a_default_deny_with_policies(prod: list[dict[str, Any]]) -> None:
    objs = [o for o in copy.deepcopy(prod) if o["metadata"]["name"] != "default-deny"]
    assert "NetworkPolicy: policies without a default deny" in _rules(objs)


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "expected"),
    [
        # Core kinds are strict: a misspelt field is an error, as are wrong types.
        ("Deployment", "binding", lambda o: o["spec"].update(replica=2), "'replica' was unexpected"),
        ("Service", "notify", lambda o: o["spec"]["ports"][0].update(port="80"), "is not of type"),
        # CRDs from the KEDA and prometheus-operator modules, made strict the same way.
        ("ScaledObject", "sync", lambda o: o["spec"].update(maxReplicas=12), "'maxReplicas' was unexpected"),
        ("ScaledObject", "sync", lambda o: o["spec"].pop("scaleTargetRef"), "'scaleTargetRef' is a required"),
        (
            "ServiceMonitor",
            "sync",
            lambda o: o["spec"]["endpoints"][0].update(intervall="30s"),
            "'intervall' was unexpected",
        ),
        # The minimal KafkaTopic stand-in.
        ("KafkaTopic", "mail.received", lambda o: o["spec"].update(partitions=0), "less than the minimum"),
        ("KafkaTopic", "mail.received", lambda o: o["spec"].update(replicationFactor=3), "was unexpected"),
        # Custom resources' metadata is held to ObjectMeta.
        ("KafkaTopic", "mail.received", lambda o: o["metadata"].update(labels=["x"]), "is not of type"),
    ],
)
def test_schemas_catch_a_broken_object(
    prod: list[dict[str, Any]], schemas: check.Schemas, kind: str, name: str, mutate: Any, expected: str
) -> None:
    obj = copy.deepcopy(_one(prod, kind, name))
    assert schemas.validate(obj)[1] == []
    mutate(obj)
    against, errors = schemas.validate(obj)
    assert against == ("crd" if kind in {"ScaledObject", "ServiceMonitor", "KafkaTopic"} else "core")
    assert any(expected in e for e in errors), errors


def test_unknown_custom_resources_are_errors(schemas: check.Schemas) -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert schemas.validate(obj)[1] == ["no CRD schema known for example.com/v1 Widget"]
    old = {"apiVersion": "keda.sh/v1beta9", "kind": "ScaledObject", "metadata": {"name": "s"}}
    assert "not a version served" in schemas.validate(old)[1][0]


def _egress_errors(prod: list[dict[str, Any]], policy: str, mutate: Any) -> list[str]:
    objs = copy.deepcopy(prod)
    target = next(o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == policy)
    mutate(target["spec"]["egress"])
    return check.check_rules(objs, base_names={"binding", "sync", "classifier", "notify"})


def test_rendered_egress_rules_all_have_destinations(prod: list[dict[str, Any]]) -> None:
    policies = [o for o in prod if o["kind"] == "NetworkPolicy"]
    assert all(rule.get("to") for p in policies for rule in p["spec"].get("egress", []))
    sync = next(p for p in policies if p["metadata"]["name"] == "sync")
    excepted = set(sync["spec"]["egress"][0]["to"][0]["ipBlock"]["except"])
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"} <= excepted


@pytest.mark.parametrize(
    ("policy", "mutate", "message"),
    [
        ("sync", lambda egress: egress[0].pop("to"), "has no destination"),
        ("platform-egress", lambda egress: egress[1].pop("to"), "has no destination"),
        (
            "binding",
            lambda egress: egress[0]["to"][0]["ipBlock"]["except"].remove("169.254.0.0/16"),
            "does not except non-public 169.254.0.0/16",
        ),
        (
            "notify",
            lambda egress: egress[0]["to"][0]["ipBlock"]["except"].remove("10.0.0.0/8"),
            "does not except non-public 10.0.0.0/8",
        ),
        ("sync", lambda egress: egress[0]["to"][1]["ipBlock"].update(cidr="::/0"), "beyond global unicast"),
        (
            "sync",
            lambda egress: egress[0]["to"][1]["ipBlock"]["except"].remove("2002::/16"),
            "does not except non-public 2002::/16",
        ),
    ],
)
def test_egress_rules_without_destination_or_exceptions_are_caught(
    prod: list[dict[str, Any]], policy: str, mutate: Any, message: str
) -> None:
    errs = _egress_errors(prod, policy, mutate)
    assert any(message in e and f"NetworkPolicy/{policy}" in e for e in errs), errs
