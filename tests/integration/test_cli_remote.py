"""The client commands through a subprocess: live progress, exit codes, export, MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, Service, free_port
from tests.helpers import small_mlp, tiny_spec

pytestmark = [pytest.mark.services, pytest.mark.worker]

ARCHBENCH = [sys.executable, "-m", "cli.main"]


def run(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ARCHBENCH, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_submit_wait_ls_status_export_and_mlflow(distributed: Service, tmp_path: Path) -> None:
    env = {**distributed.env, "ARCHBENCH_URL": distributed.url}
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            tiny_spec("cli-remote", seeds=[0, 1], epochs=2, samples=200, variants=[small_mlp()])
        )
    )
    proc = run(["submit", str(spec), "--wait", "--timeout", "300"], env)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    cid = out.splitlines()[0].strip()
    uuid.UUID(cid)
    # Progress as plain lines (stdout is not a terminal): epochs with metrics, trials, totals.
    assert "mlp seed 0 epoch 1/2: loss=" in out
    assert "val_accuracy=" in out
    assert "mlp seed 1 succeeded: test_accuracy=" in out
    assert "succeeded: trials 2/2 done (0 failed, 0 running), epochs 4/4" in out
    assert f"comparison {cid} succeeded" in out
    assert "mlp" in out.split("epochs 4/4", 1)[1]  # the report table after the progress

    ls = run(["ls", "--name", "cli-remote"], env)
    assert ls.returncode == 0
    assert cid in ls.stdout
    status = run(["status", cid], env)
    assert status.returncode == 0
    assert "status   succeeded" in status.stdout
    assert json.loads(run(["status", cid, "--json"], env).stdout)["id"] == cid
    assert '"verdict"' in run(["report", cid, "--format", "json"], env).stdout

    out_dir = tmp_path / "export"
    db = tmp_path / "mlflow.db"
    exp = run(["export", cid, "--out", str(out_dir), "--mlflow", f"sqlite:///{db}"], env)
    assert exp.returncode == 0, exp.stderr
    names = {p.name for p in out_dir.iterdir()}
    assert names == {"trials.csv", "metrics.csv", "report.json", "report.md", "report.png"}
    assert (out_dir / "trials.csv").read_text().startswith("id,")
    assert len((out_dir / "metrics.csv").read_text().strip().splitlines()) == 1 + 4
    assert json.loads((out_dir / "report.json").read_text())["comparison_id"] == cid
    assert (out_dir / "report.png").read_bytes().startswith(b"\x89PNG")
    assert "logged 2 run(s)" in exp.stdout

    from mlflow import MlflowClient

    ml = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = ml.get_experiment_by_name("archbench/cli-remote")
    assert experiment is not None
    runs = ml.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.tags["archbench.comparison_id"] == cid
        assert r.data.tags["archbench.variant"] == "mlp"
        seed = r.data.tags["archbench.seed"]
        assert r.data.params["seed"] == seed
        assert r.data.params["epochs"] == "2"
        assert r.data.params["architecture"].startswith("Flatten > Dense(units=16")
        assert 0.0 <= r.data.metrics["test_accuracy"] <= 1.0
        history = ml.get_metric_history(r.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [1, 2]
    # Exporting again logs nothing twice.
    again = run(["export", cid, "--mlflow", f"sqlite:///{db}"], env)
    assert again.returncode == 0, again.stderr
    assert len(ml.search_runs([experiment.experiment_id])) == 2
    # Live logging by the worker: see test_observability_distributed.py.


def test_exit_codes(distributed: Service, tmp_path: Path) -> None:
    env = {**distributed.env, "ARCHBENCH_URL": distributed.url}
    missing = run(["submit", str(tmp_path / "nope.json")], env)
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    unknown = run(["status", str(uuid.uuid4())], env)
    assert unknown.returncode == 2
    assert "Not found (404)" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    nowhere = run(["ls", "--url", f"http://127.0.0.1:{free_port()}"], env)
    assert nowhere.returncode == 1
    assert "cannot reach" in nowhere.stderr
    assert run(["export", str(uuid.uuid4())], env).returncode == 2

    spec = tmp_path / "slow.json"
    spec.write_text(json.dumps(tiny_spec("cli-timeout", seeds=[0, 1, 2], epochs=3)))
    timed_out = run(["submit", str(spec), "--wait", "--timeout", "0.5"], env)
    assert timed_out.returncode == 3, timed_out.stdout + timed_out.stderr
    assert "timed out" in timed_out.stderr
    cid = timed_out.stdout.splitlines()[0].strip()
    cancel = run(["cancel", cid], env)
    assert cancel.returncode == 0, cancel.stderr
    waited = run(["wait", cid, "--timeout", "120"], env)
    assert waited.returncode == 3, waited.stdout + waited.stderr
    assert f"comparison {cid} cancelled" in waited.stdout
    again = run(["cancel", cid], env)
    assert again.returncode == 2
    assert "Conflict (409)" in again.stderr
