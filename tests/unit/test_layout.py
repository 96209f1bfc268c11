"""The tests mirror the source (README "Development"): tests/unit/<package>/, helpers in
tests/support, fixtures in conftest.py files that nobody imports."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
PACKAGES = {"api", "archbench", "bench", "cli", "core", "models", "worker"}
REPOSITORY_LEVEL = {"test_compose_files.py", "test_layout.py", "test_packaging.py"}


def test_unit_tests_sit_under_their_package() -> None:
    unit = TESTS / "unit"
    assert {p.name for p in unit.iterdir() if p.is_dir() and p.name != "__pycache__"} <= PACKAGES
    loose = {p.name for p in unit.glob("*.py")}
    assert loose <= REPOSITORY_LEVEL, (
        f"move these under tests/unit/<package>/: {loose - REPOSITORY_LEVEL}"
    )


def test_nothing_imports_a_conftest() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+tests(\.\w+)*\.conftest\b", re.MULTILINE)
    offenders = [
        str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py") if pattern.search(p.read_text())
    ]
    assert offenders == [], "import helpers from tests.support, not from a conftest"
