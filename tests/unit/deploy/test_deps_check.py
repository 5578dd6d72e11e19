"""deploy/docker/deps_check.py: each service runs on the dependencies it declares, and the check catches one
that does not.

The first test is the gate CI relies on: every service is installed alone (``uv sync --package
laifaxin-<service> --no-dev --no-editable``, as its image is) into a temporary environment and all of its code
and ``laifaxin_shared`` is imported there. The others run the same check on a copy of the workspace where
notify's code imports packages notify does not declare (they are in the lock for other members, so ``uv sync
--locked`` still succeeds, exactly as in the workspace's shared virtualenv).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.docker import deps_check

pytestmark = pytest.mark.timeout(600)

REPO = deps_check.REPO


@pytest.mark.parametrize("service", deps_check.services(REPO))
def test_service_imports_on_its_own_dependencies(service: str) -> None:
    result = deps_check.check_service(service)
    assert not result.error, result.error
    assert result.ok, "\n".join(f"{f['module']} at {f['where']}: {f['error']}" for f in result.failures)
    assert result.checked["modules"] > 10 and result.checked["imports"] > 100
    assert result.checked["entry_points"] >= 1  # python -m laifaxin_<service>


def _workspace_copy(tmp_path: Path) -> Path:
    """What the image build context holds: the root pyproject, the lock, shared/ and services/."""
    root = tmp_path / "ws"
    root.mkdir()
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(REPO / name, root / name)
    ignore = shutil.ignore_patterns("__pycache__", ".venv", "data")
    for name in ("shared", "services"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    return root


UNDECLARED = '''"""A throwaway module for the test: imports that notify's pyproject does not declare."""
from typing import TYPE_CHECKING

import imapclient  # sync's dependency, not notify's

if TYPE_CHECKING:
    import mypy  # type-checking only: never imported at run time, so not a dependency

try:
    import trustme  # optional: the module copes without it
except ImportError:
    trustme = None


def lazily() -> None:
    import sklearn  # classifier's dependency, imported only when this function runs

    del sklearn
'''


def test_an_undeclared_import_fails(tmp_path: Path) -> None:
    root = _workspace_copy(tmp_path)
    (root / "services/notify/src/laifaxin_notify/undeclared.py").write_text(UNDECLARED, encoding="utf-8")
    result = deps_check.check_service("notify", root)
    assert not result.error, result.error
    assert not result.ok
    by_module = {(f["module"], f.get("import", "")): f for f in result.failures}
    top = by_module[("laifaxin_notify.undeclared", "")]
    assert top["where"].endswith("laifaxin_notify/undeclared.py:4")
    assert top["error"] == "ModuleNotFoundError: No module named 'imapclient'"
    # The lazy import inside the function fails too (found in the source, not by running it).
    lazy = by_module[("laifaxin_notify.undeclared", "sklearn")]
    assert lazy["where"].endswith("laifaxin_notify/undeclared.py:16")
    assert "No module named 'sklearn'" in lazy["error"]
    # TYPE_CHECKING and try/except ImportError imports are optional: not reported.
    assert not [f for f in result.failures if "mypy" in f["error"] or "trustme" in f["error"]]
    # Nothing else of notify is blamed.
    assert {f["module"] for f in result.failures} == {"laifaxin_notify.undeclared"}


def test_an_undeclared_import_in_shared_fails_every_service_that_reaches_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _workspace_copy(tmp_path)
    (root / "shared/src/laifaxin_shared/undeclared.py").write_text(
        "import imapclient  # sync's dependency, not shared's\n", encoding="utf-8"
    )
    status = deps_check.main(["--root", str(root), "notify", "sync"])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL laifaxin-notify alone" in out
    assert "laifaxin_shared.undeclared at laifaxin_shared/undeclared.py:1" in out
    # sync declares imapclient, so it passes with the same shared package.
    assert "ok   laifaxin-sync alone" in out
    assert "add it to the pyproject of the member whose code imports it" in out


def test_a_stale_lock_is_an_error_not_a_pass(tmp_path: Path) -> None:
    root = _workspace_copy(tmp_path)
    pyproject = root / "services/notify/pyproject.toml"
    pyproject.write_text(
        pyproject.read_text(encoding="utf-8").replace(
            '"apprise>=2.2.0",', '"apprise>=2.2.0",\n    "imapclient>=4.1.0",'
        ),
        encoding="utf-8",
    )
    result = deps_check.check_service("notify", root)
    assert not result.ok
    assert "uv sync --package laifaxin-notify failed" in result.error
    assert deps_check.main(["--root", str(root), "notify"]) == 2
