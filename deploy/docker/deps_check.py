"""Does each service run on what it declares? Install it alone, as its image does, and import all of its code.

Usage::

    uv run python deploy/docker/deps_check.py                 # every service (what `make deps-check` runs)
    uv run python deploy/docker/deps_check.py notify sync     # some of them
    uv run python deploy/docker/deps_check.py --root DIR      # another copy of the workspace (the tests do)

The workspace's one virtualenv (``uv sync --all-packages``) holds every member's dependencies at once, so a
module that imports a package its own service never declared still works in development and in the tests; it
fails only in the service's image, where ``uv sync --package laifaxin-<service>`` installs that service's
dependency closure and nothing else. This check reproduces the image's install and fails first.

For each service, in a fresh temporary environment (``UV_PROJECT_ENVIRONMENT``):

1. ``uv sync --locked --no-dev --no-editable --package laifaxin-<service>``: the Dockerfile's builder command,
   so the service and ``laifaxin_shared`` are installed as wheels (a file missing from a wheel fails too);
2. with that environment's interpreter, isolated (``python -I``, started outside the repository so the sources
   are not on ``sys.path``):

   - every module of ``laifaxin_<service>`` and ``laifaxin_shared`` is imported (``pkgutil.walk_packages``),
     except ``__main__``, which starts the service when imported;
   - every ``import`` statement of those modules, ``__main__`` and imports inside functions included, is
     resolved (imported), so a lazy import of an undeclared package fails as well. Imports under
     ``if TYPE_CHECKING:`` and in a ``try:`` whose handler catches ``ImportError`` are optional and skipped;
   - the entry points: ``python -m laifaxin_<service>`` (its ``__main__``, resolved as above without running
     it) and every ``[project.scripts]`` entry of the service's pyproject (``module:attribute`` resolved).

A failure names the module, the file and line of the import, and the error (``No module named 'aioimaplib'``).
The fix is to declare the package in the pyproject of the member whose code imports it (``shared/`` for
``laifaxin_shared``) and run ``uv lock``.

Exit status: 0 when every service passes, 1 when one fails, 2 when uv itself fails (a stale lock, no network
for a package that is not in uv's cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs inside the service's own environment, so it uses the standard library only.
PROBE = r'''
import ast, importlib, json, pkgutil, sys, traceback
from pathlib import Path

packages, scripts = json.loads(sys.argv[1])
failures = []
checked = {"modules": 0, "imports": 0, "entry_points": 0}


def short(exc):
    return f"{type(exc).__name__}: {exc}"


def optional_lines(tree):
    """Line numbers of imports under `if TYPE_CHECKING:` or in a try body that catches ImportError."""
    lines = set()
    for node in ast.walk(tree):
        body = []
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                body = node.body
        elif isinstance(node, ast.Try):
            caught = set()
            for handler in node.handlers:
                kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                caught |= {getattr(k, "id", getattr(k, "attr", None)) for k in kinds if k is not None}
                if handler.type is None:
                    caught.add("ImportError")
            if caught & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}:
                body = node.body
        for stmt in body:
            for sub in ast.walk(stmt):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    lines.add(sub.lineno)
    return lines


def resolve(module, attr):
    """Import `module` and, for `from module import attr`, find attr as an attribute or a submodule."""
    mod = importlib.import_module(module)
    if attr is None or attr == "*" or hasattr(mod, attr):
        return
    importlib.import_module(f"{module}.{attr}")


def check_imports(name, path, is_package):
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError) as exc:
        failures.append({"module": name, "where": path, "error": short(exc)})
        return
    skip = optional_lines(tree)
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            targets = [(base, alias.name) for alias in node.names]
        for module, attr in targets:
            checked["imports"] += 1
            try:
                resolve(module, attr)
            except Exception as exc:  # an import can fail with anything its module raises
                what = module if attr is None else f"{module} import {attr}"
                failures.append(
                    {"module": name, "where": f"{path}:{node.lineno}", "import": what, "error": short(exc)}
                )


for top in packages:
    try:
        pkg = importlib.import_module(top)
    except Exception as exc:
        failures.append({"module": top, "where": "(package)", "error": short(exc)})
        continue
    check_imports(top, pkg.__file__, True)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{top}."):
        spec = importlib.util.find_spec(info.name)
        origin = spec.origin if spec else None
        if info.name.rpartition(".")[2] == "__main__":
            checked["entry_points"] += 1  # `python -m`: resolve its imports, never run it
            if origin:
                check_imports(info.name, origin, False)
            continue
        checked["modules"] += 1
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            where = next((f"{f.filename}:{f.lineno}" for f in reversed(tb) if "laifaxin_" in f.filename), "")
            failures.append({"module": info.name, "where": where, "error": short(exc)})
        if origin and origin.endswith(".py"):  # also when the import failed: lazy imports further down
            check_imports(info.name, origin, info.ispkg)

for script, target in scripts.items():
    checked["entry_points"] += 1
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module.strip())
        for part in attr.strip().split("."):
            if part:
                obj = getattr(obj, part)
    except Exception as exc:
        failures.append({"module": module, "where": f"[project.scripts] {script}", "error": short(exc)})

unique = {}
for f in failures:  # a failing top-level import is found both by importing the module and in its source
    unique.setdefault((f["module"], f["where"], f["error"]), f)
print(json.dumps({"failures": list(unique.values()), "checked": checked}))
'''


@dataclass
class Result:
    """One service's outcome: what was checked, how long it took, and each failure found."""

    service: str
    sync_seconds: float = 0.0
    probe_seconds: float = 0.0
    checked: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures and not self.error


def services(root: Path) -> list[str]:
    """The workspace's services: every ``services/<name>/pyproject.toml``."""
    return sorted(p.parent.name for p in (root / "services").glob("*/pyproject.toml"))


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names its own binary in $UV
    if not uv:
        raise SystemExit("deps-check: uv is needed (make deps-check installs it)")
    return uv


def _scripts(root: Path, service: str) -> dict[str, str]:
    data = tomllib.loads((root / "services" / service / "pyproject.toml").read_text(encoding="utf-8"))
    scripts: dict[str, str] = data.get("project", {}).get("scripts", {})
    return scripts


def check_service(service: str, root: Path = REPO, *, uv: str | None = None) -> Result:
    """Install ``laifaxin-<service>`` alone into a temporary environment and import all of its code.

    Returns:
        The result; ``error`` holds uv's message when the install itself failed (a stale lock, a package
        that cannot be downloaded), ``failures`` each module or import that failed.
    """
    result = Result(service)
    uv = uv or _uv()
    with tempfile.TemporaryDirectory(prefix=f"deps-check-{service}-") as scratch:
        venv = Path(scratch) / "venv"
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"}
        }
        env |= {
            "UV_PROJECT_ENVIRONMENT": str(venv),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_LINK_MODE": env.get("UV_LINK_MODE", "hardlink"),
        }
        started = time.monotonic()
        proc = subprocess.run(  # noqa: S603  # uv with fixed arguments
            [
                *(uv, "sync", "--locked", "--no-dev", "--no-editable", "--quiet"),
                *("--package", f"laifaxin-{service}"),
                # uv reuses a built wheel of a local project until its pyproject.toml changes: rebuild ours,
                # so the check sees the code as it is now.
                *("--reinstall-package", f"laifaxin-{service}", "--reinstall-package", "laifaxin-shared"),
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        result.sync_seconds = time.monotonic() - started
        if proc.returncode != 0:
            result.error = f"uv sync --package laifaxin-{service} failed:\n{proc.stderr.strip()}"
            return result
        started = time.monotonic()
        spec = json.dumps([[f"laifaxin_{service}", "laifaxin_shared"], _scripts(root, service)])
        probe = subprocess.run(  # noqa: S603  # the service environment's own interpreter, our probe
            [str(venv / "bin" / "python"), "-I", "-c", PROBE, spec],
            cwd=scratch,  # not the repository: its sources must not be importable from the working directory
            env={k: v for k, v in env.items() if not k.startswith("UV_")},
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        result.probe_seconds = time.monotonic() - started
        try:
            report = json.loads(probe.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            result.error = (
                f"the import probe crashed (exit {probe.returncode}):\n{probe.stderr.strip()[-2000:]}"
            )
            return result
        result.checked = report["checked"]
        # Paths inside the throwaway environment read better from site-packages on.
        result.failures = [
            {k: v.split("site-packages/", 1)[-1] for k, v in f.items()} for f in report["failures"]
        ]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", help="services to check (default: all)")
    parser.add_argument("--root", type=Path, default=REPO, help="the workspace to check (default: this one)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    names = args.services or services(root)
    unknown = sorted(set(names) - set(services(root)))
    if unknown:
        parser.error(f"no such service: {', '.join(unknown)}")
    started = time.monotonic()
    status = 0
    for name in names:
        r = check_service(name, root)
        counts = ", ".join(f"{n} {k}" for k, n in r.checked.items())
        timing = f"sync {r.sync_seconds:.1f} s, imports {r.probe_seconds:.1f} s"
        if r.error:
            print(f"ERROR {name}: {r.error}")
            status = max(status, 2)
            continue
        print(f"{'ok  ' if r.ok else 'FAIL'} laifaxin-{name} alone: {counts} ({timing})")
        for f in r.failures:
            what = f" ({f['import']})" if "import" in f else ""
            print(f"     {f['module']}{what} at {f['where']}: {f['error']}")
        if not r.ok:
            status = max(status, 1)
    if status == 1:
        print(
            "deps-check: a service imports a package its pyproject does not declare; add it to the pyproject "
            "of the member whose code imports it (shared/ for laifaxin_shared) and run `uv lock`"
        )
    print(f"deps-check: {len(names)} services in {time.monotonic() - started:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
