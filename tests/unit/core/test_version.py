"""One version: pyproject.toml's, which the installed package and the api's OpenAPI report."""

from __future__ import annotations

import tomllib
from pathlib import Path

from api.app import create_app
from core.version import __version__

ROOT = Path(__file__).resolve().parents[3]


def test_the_app_reports_pyprojects_version() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == declared  # else the installed metadata is stale: pip install -e .
    app = create_app(check_migrations=False)
    assert app.version == declared
    assert app.openapi()["info"]["version"] == declared
