"""The committed event catalog and API documents match what the code generates."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from laifaxin_shared.topics import TOPICS

ROOT = Path(__file__).resolve().parents[3]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_committed_documents_match_the_code() -> None:
    generated = load_generator().documents()
    stale = [
        str(p.relative_to(ROOT)) for p, text in generated.items() if not p.exists() or p.read_text() != text
    ]
    assert not stale, f"regenerate with `uv run python docs/generate.py`: {stale}"


def test_every_topic_is_in_the_catalog() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    for name in TOPICS:
        assert f"`{name}`" in text
