"""pyproject.toml as pip reads it: the license is an SPDX expression (no deprecation warning
from setuptools), with a setuptools that understands it; `make up PORT=...` reaches the port."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_license_is_an_spdx_string_and_setuptools_is_new_enough() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"  # not a {text = ...} table (deprecated)
    assert not any("License ::" in c for c in meta["project"].get("classifiers", []))
    (setuptools,) = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools)
    assert minimum, setuptools
    assert int(minimum.group(1)) >= 77  # PEP 639 license expressions


def test_make_up_passes_port_and_host() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is needed for the README's commands")
    # Run as a top-level make even under `make test` (whose MAKELEVEL/MAKEFLAGS would make
    # this a sub-make that prints "Entering/Leaving directory" lines around the recipe).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "up", "PORT=8123", "HOST=0.0.0.0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1].endswith("archbench up --host 0.0.0.0 --port 8123")
    default = subprocess.run(
        ["make", "--no-print-directory", "-n", "up"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert default.strip().splitlines()[-1].endswith("archbench up --host 127.0.0.1 --port 8000")
