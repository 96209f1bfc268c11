"""The compose files: each service's health check means something for it, and the CPU host's
file is the reference one without the GPU reservation (generated, and kept so)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / name).read_text()))


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("cpu_compose", ROOT / "deploy" / "cpu_compose.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_service_inherits_the_api_images_http_check() -> None:
    """migrate and the sweeper run the api image, whose HEALTHCHECK asks port 8000."""
    services = _load("docker-compose.yml")["services"]
    assert services["migrate"]["healthcheck"] == {"disable": True}
    sweeper = services["sweeper"]
    assert "--alive-file" in sweeper["command"]
    alive = sweeper["command"][sweeper["command"].index("--alive-file") + 1]
    kind, *check = sweeper["healthcheck"]["test"]
    assert kind == "CMD"
    assert alive in " ".join(check)
    assert "8000" not in " ".join(check)
    for name, svc in services.items():  # every service of the api image says what it checks
        if svc.get("image", "").startswith("archbench-api"):
            assert "healthcheck" in svc, name


def test_the_cpu_file_is_the_reference_without_the_gpu_reservation() -> None:
    gpu, cpu = _load("docker-compose.yml"), _load("docker-compose.cpu.yml")
    assert "deploy" in gpu["services"]["worker"]
    assert "deploy" not in cpu["services"]["worker"]
    assert cpu["services"]["worker"]["command"] == ["archbench", "worker", "--concurrency", "1"]
    del gpu["services"]["worker"]["deploy"]
    gpu["services"]["worker"]["command"] = cpu["services"]["worker"]["command"]
    assert cpu == gpu  # everything else as in the reference file
    text = (ROOT / "docker-compose.cpu.yml").read_text()
    assert text == _generator().render((ROOT / "docker-compose.yml").read_text()), (
        "docker-compose.cpu.yml is stale: run `python deploy/cpu_compose.py`"
    )


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.cpu.yml"])
def test_compose_accepts_the_file(name: str) -> None:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose checks the files (apt-get install docker-compose)"
    proc = subprocess.run(
        [compose, "-f", name, "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_the_smoke_script_parses_and_passes_shellcheck() -> None:
    script = ROOT / "deploy" / "smoke.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck lints deploy/smoke.sh (apt-get install shellcheck)"
    proc = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_the_worker_check_needs_only_the_broker_and_the_api_gets_time_to_start() -> None:
    """`celery -A worker.celery_app` imports the report's statistics before it pings: over a
    minute on the slow host the compose stack was run on, past the 20 s timeout, so every
    worker showed unhealthy. The api's two uvicorn workers took over two minutes to start
    there, past its ten retries."""
    services = _load("docker-compose.yml")["services"]
    kind, check = services["worker"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    assert 'celery --broker "$$ARCHBENCH_BROKER_URL" inspect ping' in check
    assert "-A" not in check.split()
    assert "worker.celery_app" not in check
    # Its own node, not any: containers sharing a hostname (host networking) differ by their
    # PID namespace, which the node name carries (cli.main.node_name).
    assert "readlink /proc/self/ns/pid" in check
    assert "-pidns-$$n" in check
    api = services["api"]["healthcheck"]
    assert int(api["start_period"].removesuffix("s")) >= 120
