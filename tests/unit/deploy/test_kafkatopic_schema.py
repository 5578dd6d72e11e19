"""The minimal KafkaTopic schema (deploy/k8s/schemas) against Strimzi's own model of a KafkaTopic.

Strimzi publishes no CRD YAML to a registry we reach, but it does publish the Java model its CRDs are generated
from: ``io.strimzi:api`` on Maven Central. ``KafkaTopicSpec``'s getters are the spec's properties, and its
``@Minimum``/``@Maximum`` annotations their bounds. This test reads them with ``javap`` and holds the stand-in
schema to them, so the stand-in can neither invent a field nor miss one. Maven and a JDK are on every machine
of this project; when the jar cannot be had the test fails with the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "deploy" / "k8s" / "schemas" / "kafkatopics.kafka.strimzi.io.yaml"
STRIMZI_API = ("io.strimzi", "api", "0.48.0")
SPEC_CLASS = "io.strimzi.api.kafka.model.topic.KafkaTopicSpec"

pytestmark = pytest.mark.timeout(600)  # a cold Maven resolves the jar from Maven Central


@pytest.fixture(scope="module")
def strimzi_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, int]]:
    """{property: {"minimum": n, "maximum": n}} of Strimzi's KafkaTopicSpec."""
    mvn, javap = shutil.which("mvn"), shutil.which("javap")
    if not mvn or not javap:
        pytest.fail(
            "mvn and javap are needed to read io.strimzi:api (apt-get install maven default-jdk-headless)"
        )
    group, artifact, version = STRIMZI_API
    # Copied to a folder of our own: Maven's local repository follows the passwd home, not $HOME.
    out_dir = tmp_path_factory.mktemp("strimzi")
    proc = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
            f"-Dartifact={group}:{artifact}:{version}",
            f"-DoutputDirectory={out_dir}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    jar = out_dir / f"{artifact}-{version}.jar"
    if proc.returncode != 0 or not jar.is_file():
        pytest.fail(
            f"could not resolve {':'.join(STRIMZI_API)} from Maven Central:\n{(proc.stdout + proc.stderr)[-2000:]}"
        )
    out = subprocess.run(
        [javap, "-v", "-cp", str(jar), SPEC_CLASS], capture_output=True, text=True, check=True
    ).stdout
    props: dict[str, dict[str, int]] = {}
    for header, body in re.findall(r"\n  public [\w.<>, ]+ get(\w+)\(\);\n(.*?)(?=\n  \S|\Z)", out, re.S):
        name = header[0].lower() + header[1:]
        bounds = {
            kind.lower(): int(value)
            for kind, value in re.findall(r"annotations\.(Minimum|Maximum)\(\s*value=(-?\d+)", body)
        }
        props[name] = bounds
    return props


def _stand_in_spec() -> dict[str, dict]:
    crd = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]


def test_stand_in_has_exactly_strimzis_spec_fields(strimzi_spec: dict[str, dict[str, int]]) -> None:
    assert set(strimzi_spec) == {"topicName", "partitions", "replicas", "config"}  # the model we read
    assert set(_stand_in_spec()) == set(strimzi_spec)


def test_stand_in_bounds_are_strimzis(strimzi_spec: dict[str, dict[str, int]]) -> None:
    ours = _stand_in_spec()
    for name, bounds in strimzi_spec.items():
        for kind, value in bounds.items():
            assert ours[name].get(kind) == value, (name, kind)
    assert strimzi_spec["partitions"] == {"minimum": 1}
    assert strimzi_spec["replicas"] == {"minimum": 1, "maximum": 32767}
