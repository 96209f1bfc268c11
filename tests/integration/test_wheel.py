"""A wheel built from the repository, installed in a fresh virtualenv, migrates and serves
from a directory that is not the source tree (alembic's files travel inside the package).

The fresh virtualenv gets the wheel alone (``--no-deps``); its dependencies come from this
interpreter's site-packages through a ``.pth`` line, so nothing is downloaded again. A path
line in a ``.pth`` file does not run the ``.pth`` files of that directory, so the editable
install of the checkout there stays out: every ``core`` import is the wheel's (checked).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.support.services import ROOT, base_env, free_port, stop, wait_http

pytestmark = pytest.mark.slow


def _source_copy(dest: Path) -> None:
    """The files git would ship (tracked, or new and not ignored), as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())


def test_a_wheel_migrates_and_serves_outside_the_source_tree(tmp_path: Path) -> None:
    src, dist, venv, elsewhere = (tmp_path / d for d in ("src", "dist", "venv", "elsewhere"))
    for d in (src, elsewhere):
        d.mkdir()
    _source_copy(src)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], check=True)
    (wheel,) = dist.glob("archbench-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", str(wheel)], check=True
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = base_env(elsewhere / "data")
    env.pop("PYTHONPATH", None)
    where = subprocess.run(
        [str(python), "-c", "import api, cli, core; print(core.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(site), f"core was imported from {where}, not from the wheel"
    # Alembic's revisions are the top-level package the layout fixes (migrations/), installed.
    assert (Path(site) / "migrations" / "script.py.mako").exists()
    assert list((Path(site) / "migrations" / "versions").glob("2026_*.py"))

    archbench = str(venv / "bin" / "archbench")
    migrated = subprocess.run(
        [archbench, "migrate"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "(head)" in migrated.stdout + migrated.stderr

    port = free_port()
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [archbench, "up", "--port", str(port), "--cpu"],
            cwd=elsewhere,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, proc, log, timeout=120)
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        assert httpx.get(url + "/openapi.json").json()["info"]["version"] == version
    finally:
        stop(proc, timeout=30)
    assert os.listdir(elsewhere) == ["data"]  # it wrote only where it was told
