"""The archbench command as people run it: migrate, api, worker --gpus, submit --wait, report."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.routes.health import READY_CACHE_SECONDS
from tests.support.helpers import tiny_spec
from tests.support.services import CI, ROOT, Service, base_env, free_port, start, stop, wait_http

ARCHBENCH = [sys.executable, "-m", "cli.main"]


def run(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ARCHBENCH, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_api_and_worker_refuse_a_database_that_is_behind(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    for command in (["api", "--port", str(free_port())], ["worker"]):
        proc = run(command, env, timeout=60)
        assert proc.returncode == 1, (command, proc.stderr)
        assert "run `archbench migrate` first" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert run(["migrate"], env).returncode == 0


@pytest.mark.parametrize("command", ["api", "migrate"])
def test_unreachable_database_is_one_clear_line(tmp_path: Path, command: str) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://archbench:secret@127.0.0.1:{port}/nowhere"
    proc = run([command], base_env(tmp_path, ARCHBENCH_DATABASE_URL=url), timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"archbench: cannot use the database at 127.0.0.1:{port}/nowhere: ")
    assert "ARCHBENCH_DATABASE_URL" in lines[0]
    assert "secret" not in proc.stderr


def test_database_ahead_of_the_code_says_upgrade_not_migrate(tmp_path: Path) -> None:
    import sqlite3

    env = base_env(tmp_path)
    assert run(["migrate"], env).returncode == 0
    with sqlite3.connect(tmp_path / "archbench.db") as db:  # as a newer archbench would leave it
        db.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    for command in (["api", "--port", str(free_port())], ["migrate"]):
        proc = run(command, env, timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "9999_from_the_future" in proc.stderr
        assert "the code is older than the schema" in proc.stderr
        assert "Upgrade archbench" in proc.stderr
        assert "run `archbench migrate`" not in proc.stderr
    with sqlite3.connect(tmp_path / "archbench.db") as db:
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == "9999_from_the_future"


def test_gpus_without_a_gpu_is_a_clear_error(tmp_path: Path) -> None:
    # base_env hides every GPU (CUDA_VISIBLE_DEVICES=""), so this runs on GPU machines too.
    proc = run(["worker", "--gpus", "all"], base_env(tmp_path), timeout=60)
    assert proc.returncode != 0
    assert "no GPU is visible" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run(["worker", "--trials-per-gpu", "2"], base_env(tmp_path), timeout=60)
    assert proc.returncode != 0
    assert "--trials-per-gpu needs --gpus" in proc.stderr


@pytest.mark.services
@pytest.mark.worker
def test_submit_wait_and_report(distributed: Service, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec("cli", seeds=[0], epochs=1)))
    env = {**distributed.env, "ARCHBENCH_URL": distributed.url}
    proc = run(["submit", str(spec), "--wait", "--timeout", "300"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    comparison_id = proc.stdout.splitlines()[0].strip()
    assert "succeeded" in proc.stdout
    for fmt, needle in (("text", "cnn"), ("md", "|"), ("csv", "name,"), ("json", '"verdict"')):
        out = run(["report", comparison_id, "--format", fmt], env)
        assert out.returncode == 0, out.stderr
        assert needle in out.stdout

    bad = tmp_path / "bad.json"
    broken = tiny_spec("cli-bad")
    broken["variants"][0]["layers"][0]["filters"] = 0
    bad.write_text(json.dumps(broken))
    proc = run(["submit", str(bad)], env)
    assert proc.returncode == 2
    assert "variants.0.layers.0.filters" in proc.stderr


def test_compose_file_is_valid() -> None:
    for cmd in (["docker", "compose", "config", "--quiet"], ["docker-compose", "config", "-q"]):
        if shutil.which(cmd[0]) is None:
            continue
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        if cmd[1] == "compose" and proc.returncode == 125:  # docker without the compose plugin
            continue
        assert proc.returncode == 0, proc.stderr
        return
    if CI:
        pytest.fail(
            "neither `docker compose` nor `docker-compose` is installed; .ci/run installs it"
        )
    pytest.skip("no docker compose to check the file with")


def _compose() -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_builds_every_local_image_from_a_dockerfile_stage() -> None:
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.M))
    assert {"api", "worker"} <= stages
    services = _compose()["services"]
    local = {n: svc for n, svc in services.items() if svc.get("image", "").startswith("archbench")}
    assert {"migrate", "api", "worker", "sweeper"} <= set(local)
    for name, svc in local.items():
        assert svc.get("build", {}).get("context") == ".", name
        assert svc["build"]["target"] in stages, name
        assert svc["image"].startswith(f"archbench-{svc['build']['target']}:"), name
    for name in ("postgres", "redis", "api", "worker"):
        assert "healthcheck" in services[name], name


@pytest.mark.services
@pytest.mark.worker
def test_compose_worker_healthcheck_pings_this_hosts_worker(distributed: Service) -> None:
    """The worker's health check, run as Docker would (sh -c, $$ -> $), against a live worker."""
    kind, command = _compose()["services"]["worker"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    command = command.replace("$$", "$")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # the venv's celery
    retries = int(_compose()["services"]["worker"]["healthcheck"]["retries"])
    for hostname, healthy in ((socket.gethostname(), True), ("no-such-container", False)):
        env = {**distributed.env, "PATH": path, "HOSTNAME": hostname}
        # As Docker runs it: unhealthy only after `retries` failures in a row (a ping's 5 s
        # can pass while a loaded host's worker is busy); another container's name never
        # passes.
        answers = []
        for _ in range(retries):
            proc = subprocess.run(
                ["sh", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
            )
            answers.append((proc.returncode, proc.stdout, proc.stderr))
            if proc.returncode == 0:
                break
        assert any(code == 0 for code, _, _ in answers) == healthy, (hostname, answers)


def test_readyz_is_503_while_the_broker_is_down(tmp_path: Path) -> None:
    """A served api whose broker does not answer is not ready (and says which part is down)."""
    closed = free_port()  # nothing listens there
    env = base_env(tmp_path, ARCHBENCH_BROKER_URL=f"redis://127.0.0.1:{closed}/0")
    assert run(["migrate"], env).returncode == 0
    port = free_port()
    log = tmp_path / "api.log"
    proc = start([*ARCHBENCH, "api", "--port", str(port)], env, log)
    try:
        wait_http(f"http://127.0.0.1:{port}", proc, log)
        resp = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
    finally:
        stop(proc)
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("down")


def test_readyz_follows_the_schema_of_a_served_database(tmp_path: Path) -> None:
    """A running api stays ready while a newer archbench migrates its database ahead (rolling
    upgrade, additive revisions) and says so; a database moved behind it is not ready."""
    import sqlite3

    env = base_env(tmp_path)
    assert run(["migrate"], env).returncode == 0
    port = free_port()
    log = tmp_path / "api.log"
    proc = start([*ARCHBENCH, "api", "--port", str(port)], env, log)
    answers = []
    try:
        wait_http(f"http://127.0.0.1:{port}", proc, log)
        for version in (None, "9999_from_the_future", "0001"):
            if version:
                with sqlite3.connect(tmp_path / "archbench.db") as db:
                    db.execute("UPDATE alembic_version SET version_num = ?", (version,))
                time.sleep(READY_CACHE_SECONDS + 0.2)  # the last answer is kept that long
            answers.append(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30))
    finally:
        stop(proc)
    current, ahead, behind = answers
    assert current.status_code == 200, current.text
    assert current.json()["checks"]["database"] == "ok"
    assert ahead.status_code == 200, ahead.text
    assert ahead.json()["checks"]["database"].startswith(
        "ok: schema ahead of this code (revision 9999_from_the_future"
    )
    assert behind.status_code == 503, behind.text
    assert behind.json()["checks"]["database"] == "behind"


def test_compose_sweeper_healthcheck_follows_its_sweeps(tmp_path: Path) -> None:
    """The sweeper's health check, run as Docker would, against a real sweeper: healthy once
    a sweep reached the database, unhealthy when its last one is over a minute old."""
    sweeper = _compose()["services"]["sweeper"]
    command = [
        c.replace("/tmp/archbench-sweeper.alive", str(tmp_path / "alive"))
        for c in sweeper["command"]
    ]
    kind, *check = sweeper["healthcheck"]["test"]
    check = [c.replace("/tmp/archbench-sweeper.alive", str(tmp_path / "alive")) for c in check]
    assert (kind, check[0]) == ("CMD", "python")
    env = base_env(tmp_path)
    assert run(["migrate"], env).returncode == 0

    def healthy() -> bool:
        proc = subprocess.run([sys.executable, *check[1:]], capture_output=True, timeout=30)
        return proc.returncode == 0

    assert not healthy()  # no sweep yet
    assert command[:2] == ["archbench", "sweep"]
    log = tmp_path / "sweeper.log"
    proc = start([*ARCHBENCH, *command[1:], "--interval", "0.5"], env, log)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "alive").exists():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        assert healthy()
    finally:
        stop(proc)
    stale = time.time() - 120
    os.utime(tmp_path / "alive", (stale, stale))
    assert not healthy()
