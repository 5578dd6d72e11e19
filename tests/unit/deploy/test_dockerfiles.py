"""services/<name>/Dockerfile, checked offline (no Docker engine and no Dockerfile linter on these machines).

Structure: a uv builder stage and a python:3.11-slim runtime stage, the lock used, a numeric non-root USER, no
secrets, CMD and EXPOSE equal to the Kubernetes Deployment's command and port, the four files identical but
for the service name. Then the builder's uv commands are run (dry) on a context holding only what the
Dockerfile copies, so a member missing from the COPY lines or a stale lock fails here.
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


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPO / "services" / name / "Dockerfile").read_text(encoding="utf-8")
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


def test_every_service_has_a_dockerfile() -> None:
    assert SERVICES == ["binding", "classifier", "notify", "sync"]
    for name in SERVICES:
        assert (REPO / "services" / name / "Dockerfile").is_file(), name


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
    cmd = json.loads(next(a for w, a in runtime if w == "CMD"))
    assert cmd == container["command"] + container.get("args", [])
    assert cmd[:3] == ["python", "-m", f"laifaxin_{name}"]
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


def test_the_four_dockerfiles_differ_only_by_service() -> None:
    def normalised(name: str) -> list[tuple[str, str]]:
        own = f"services/{name}/ services/{name}/"
        return [
            (w, "services/X/ services/X/" if a == own else a.replace(f"laifaxin-{name}", "laifaxin-X"))
            for w, a in instructions(name)
            if w not in {"CMD", "EXPOSE"}
        ]

    reference = normalised(SERVICES[0])
    for name in SERVICES[1:]:
        assert normalised(name) == reference, name
    # And each copies every workspace member's pyproject.toml (uv sync --locked checks the whole workspace).
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
