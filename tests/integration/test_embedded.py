"""The embedded default through `archbench up` as a subprocess: SQLite, SQL broker, one worker."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.helpers import assert_trained, tiny_spec, wait_done
from tests.support.services import ROOT, Service, base_env, free_port, start, stop, wait_http

pytestmark = [pytest.mark.worker]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = base_env(data_dir)
    svc = Service(url=f"http://127.0.0.1:{port}", env=env, data_dir=data_dir)
    svc.logs = {"up": data_dir / "up.log"}
    cmd = [sys.executable, "-m", "cli.main", "up", "--port", str(port), "--data-dir", str(data_dir)]
    svc.procs["up"] = start(cmd, env, svc.logs["up"])
    try:
        wait_http(svc.url, svc.procs["up"], svc.logs["up"], timeout=90)
        yield svc
    finally:
        stop(svc.procs["up"], sig=signal.SIGINT)


def test_embedded_end_to_end(embedded: Service) -> None:
    assert (embedded.data_dir / "archbench.db").exists()
    spec = tiny_spec("embedded")
    with embedded.client() as client:
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        done = wait_done(client, cid)
        assert done["status"] == "succeeded", embedded.log("up")[-4000:]
        trials = assert_trained(client, cid, spec)
        assert len(trials) == 4
        ready = client.get("/readyz").json()
        assert ready["checks"] == {"database": "ok", "broker": "ok"}
    assert "authentication is OFF" in embedded.log("up")


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def test_openapi_examples_are_the_articles_and_valid(embedded: Service, tmp_path: Path) -> None:
    """/openapi.json carries the article's examples, and each one is accepted as it stands."""
    from core.config import Settings
    from core.spec import ComparisonSpec
    from core.validation import validate_comparison

    article = json.loads((ROOT / "examples" / "article.json").read_text())
    with embedded.client() as client:
        doc = client.get("/openapi.json").json()
        submit = doc["paths"]["/v1/comparisons"]["post"]
        examples = submit["requestBody"]["content"]["application/json"]["examples"]
        assert examples["article"]["value"] == _without_nulls(article)  # OpenAPI drops nulls
        location = submit["responses"]["202"]["headers"]["Location"]
        assert location["schema"]["type"] == "string"

        analyze = doc["paths"]["/v1/architectures/analyze"]["post"]
        variants = analyze["requestBody"]["content"]["application/json"]["examples"]
        assert set(variants) == {v["name"] for v in article["variants"]}
        params = {}
        for name, example in variants.items():
            assert example["value"]["dataset"] == {"name": "mnist_5k"}
            resp = client.post("/v1/architectures/analyze", json=example["value"])
            assert resp.status_code == 200, resp.text
            params[name] = resp.json()["params"]
    # Conv2D(128, 3x3) on 28x28x1: 1,280; Dense(10) on 26*26*128: 865,290.
    assert params["conv128"] == 866_570
    # 640 + 36,928 (+ 36,928) for the convolutions; Dense(10) on 12*12*64 (11*11*64).
    assert params["conv64x2"] == 640 + 36_928 + 92_170
    assert params["conv64x3"] == 640 + 2 * 36_928 + 77_450
    # The submit example validates as a whole (posting it would train nine trials).
    validated = validate_comparison(
        ComparisonSpec.model_validate(examples["article"]["value"]), Settings(data_dir=tmp_path)
    )
    assert len(validated.spec["variants"]) * len(validated.spec["seeds"]) == 9


def _readme_tour() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- tour:start -->(.*?)<!-- tour:end -->", text, re.S)
    assert match, "README.md has no tour section"
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", match.group(1), re.S)
    assert blocks, "the README tour has no shell blocks"
    return "\n".join(blocks)


def test_readme_tour_runs(embedded: Service, tmp_path: Path) -> None:
    """The README's curl tour, run as written (on the quick example, to keep the suite fast)."""
    if shutil.which("curl") is None or shutil.which("jq") is None:
        pytest.fail("the README tour needs curl and jq; .ci/run installs them")
    script = _readme_tour().replace("examples/article.json", str(ROOT / "examples/quick.json"))
    env = {**os.environ, "ARCHBENCH_URL": embedded.url}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("trial_id,variant,seed,epoch,loss,accuracy")
    assert len(metrics) == 1 + 4 * 2


def test_up_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path)
    log = tmp_path / "up.log"
    proc = start(
        [sys.executable, "-m", "cli.main", "up", "--port", str(port), "--data-dir", str(tmp_path)],
        env,
        log,
    )
    try:
        # "archbench is up at ..." is printed only once the api answers: when the line shows,
        # /healthz already answers (the api was polled before printing it).
        deadline = time.monotonic() + 90
        while "archbench is up at" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        wait_http(f"http://127.0.0.1:{port}", proc, log, timeout=90)
        children = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        assert len(children) == 2  # the api and one worker
    finally:
        proc.send_signal(signal.SIGINT)  # the parent alone, as a terminal's Ctrl-C would reach it
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
