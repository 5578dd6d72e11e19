"""deploy/docker/Dockerfile, one for every service, checked offline (no Docker engine and no Dockerfile
linter on these machines), as built with each service's documented build args (deploy/k8s/README.md).

Structure: a uv builder stage and a python:3.11-slim runtime stage, the lock used, a numeric non-root USER, no
secrets, the program and EXPOSE equal to the Kubernetes Deployment's command and port, the documented image
names equal to the Deployments'. Then the builder's uv commands are run (dry) on a context holding only what
the Dockerfile copies, so a member missing from the COPY lines or a stale lock fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/pyproject.toml"))
SECRET_WORDS = re.compile(r"(SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|API_KEY)", re.IGNORECASE)


DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
BUILD_LINE = re.compile(
    r"docker build -f deploy/docker/Dockerfile --build-arg SERVICE=(\w+) --build-arg PORT=(\d+) "
    r"-t (\S+) \."
)


def build_commands() -> dict[str, tuple[str, str]]:
    """service -> (PORT build arg, image) from the build commands deploy/k8s/README.md documents."""
    text = (REPO / "deploy" / "k8s" / "README.md").read_text(encoding="utf-8")
    return {m.group(1): (m.group(2), m.group(3)) for m in BUILD_LINE.finditer(text)}


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile as built for ``name`` (its documented SERVICE and PORT
    build args substituted), continuation lines joined, comments dropped."""
    port, _image = build_commands()[name]
    text = DOCKERFILE.read_text(encoding="utf-8").replace("${SERVICE}", name).replace("${PORT}", port)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(name: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(name):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def deployment(name: str) -> dict:
    docs = yaml.safe_load_all((REPO / "deploy" / "k8s" / "base" / f"{name}.yaml").read_text(encoding="utf-8"))
    return next(d for d in docs if d["kind"] == "Deployment")


def test_every_service_has_a_documented_build() -> None:
    assert SERVICES == ["binding", "classifier", "inbox", "notify", "send", "sync"]
    assert sorted(build_commands()) == SERVICES
    for name, (_port, image) in build_commands().items():
        assert image == deployment(name)["spec"]["template"]["spec"]["containers"][0]["image"], name
    # One Dockerfile serves all: no per-service copies to drift apart.
    assert not list(REPO.glob("services/*/Dockerfile"))


@pytest.mark.parametrize("name", SERVICES)
def test_multi_stage_uv_build_on_python_slim(name: str) -> None:
    args = dict(a.split("=", 1) for w, a in instructions(name) if w == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    builder, runtime = stages(name)
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"]), "uv is pinned"
    runs = " ".join(a for w, a in builder if w == "RUN")
    assert '"uv==${UV_VERSION}"' in runs and "pip install" in runs
    syncs = [a for w, a in builder if w == "RUN" and "uv sync" in a]
    assert syncs and all("--locked --no-dev" in s and f"--package laifaxin-{name}" in s for s in syncs)
    assert "--no-editable" in syncs[-1]
    assert ("COPY", "pyproject.toml uv.lock ./") in builder
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in " ".join(a for w, a in builder if w == "ENV")
    # The runtime stage takes the venv only: no uv, no sources, no build tools.
    copies = [a for w, a in runtime if w == "COPY"]
    assert copies == ["--from=builder /app/.venv /app/.venv"]
    assert not any("uv" in a or "pip" in a for w, a in runtime if w == "RUN")


@pytest.mark.parametrize("name", SERVICES)
def test_runtime_is_non_root_and_read_only_friendly(name: str) -> None:
    runtime = stages(name)[-1]
    users = [a for w, a in runtime if w == "USER"]
    assert users == ["10001:10001"]
    assert [w for w, _ in runtime].index("USER") > max(
        i for i, (w, _) in enumerate(runtime) if w in {"RUN", "COPY"}
    )
    env = " ".join(a for w, a in runtime if w == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env
    pod = deployment(name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user is the pod's user


@pytest.mark.parametrize("name", SERVICES)
def test_cmd_and_port_match_the_deployment(name: str) -> None:
    runtime = stages(name)[-1]
    container = deployment(name)["spec"]["template"]["spec"]["containers"][0]
    # The image runs `python -m $LAIFAXIN_SERVICE_MODULE "$@"`: the Deployment's command is the same program.
    entrypoint = json.loads(next(a for w, a in runtime if w == "ENTRYPOINT"))
    assert (
        entrypoint[:2] == ["/bin/sh", "-c"]
        and 'exec python -m "$LAIFAXIN_SERVICE_MODULE" "$@"' in entrypoint[2]
    )
    env = " ".join(a for w, a in runtime if w == "ENV")
    assert f"LAIFAXIN_SERVICE_MODULE=laifaxin_{name}" in env
    assert container["command"] == ["python", "-m", f"laifaxin_{name}"]
    expose = [a for w, a in runtime if w == "EXPOSE"]
    assert expose == [str(container["ports"][0]["containerPort"])]


@pytest.mark.parametrize("name", SERVICES)
def test_no_secrets_in_the_image(name: str) -> None:
    for word, args in instructions(name):
        if word in {"ENV", "ARG", "LABEL"}:
            assert not SECRET_WORDS.search(args), args
        if word in {"COPY", "ADD"}:
            assert ".env" not in args and "state" not in args, args
    assert not any(w == "ADD" for w, _ in instructions(name)), "COPY, not ADD (no remote fetches)"


def test_every_workspace_member_pyproject_is_copied() -> None:
    # uv sync --locked checks the whole workspace, so every member's pyproject.toml must be in the builder.
    copied = {a.split()[0] for w, a in instructions(SERVICES[0]) if w == "COPY"}
    assert {f"services/{s}/pyproject.toml" for s in SERVICES} | {"shared/pyproject.toml"} <= copied


def test_dockerignore_sends_only_the_workspace() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    assert {r[1:] for r in rules if r.startswith("!")} == {"pyproject.toml", "uv.lock", "shared", "services"}
    assert "**/.venv" in rules


@pytest.mark.parametrize("name", SERVICES)
def test_builder_uv_commands_work_on_the_copied_context(name: str, tmp_path: Path) -> None:
    """Run the builder's `uv sync` lines (dry) where only the files the Dockerfile copies exist."""
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names its own binary in $UV
    assert uv, "uv is needed: run the tests with `uv run pytest` (make test does)"
    builder = stages(name)[0]
    context = tmp_path / "src"
    context.mkdir()
    for word, args in builder:
        if word == "COPY":
            *sources, dest = args.split()
            for source in sources:
                origin = REPO / source
                if origin.is_dir():  # a directory's contents go into dest
                    shutil.copytree(
                        origin,
                        context / dest,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "data"),
                    )
                else:
                    (context / dest).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, context / dest / origin.name)
        if word == "RUN" and "uv sync" in args:
            command = args.split("uv sync", 1)[1].split()
            env = {
                **os.environ,
                "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
                "UV_PYTHON_DOWNLOADS": "never",
            }
            env.pop("VIRTUAL_ENV", None)
            proc = subprocess.run(
                [uv, "sync", *command, "--dry-run"],
                cwd=context,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
    assert (context / "shared" / "src" / "laifaxin_shared").is_dir()
    assert (context / "services" / name / "src" / f"laifaxin_{name}").is_dir()
