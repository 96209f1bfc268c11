"""The client commands through a subprocess: live progress, exit codes, export, MLflow."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import ROOT, Service, free_port

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
    assert "logged 2 new run(s)" in exp.stdout
    assert "0 already there" in exp.stdout

    from mlflow import MlflowClient

    ml = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = ml.get_experiment_by_name("archbench/cli-remote")
    assert experiment is not None
    every = ml.search_runs([experiment.experiment_id])
    [parent] = [r for r in every if r.data.tags.get("archbench.role") == "comparison"]
    report = json.loads((out_dir / "report.json").read_text())
    assert parent.data.tags["archbench.verdict"] == report["verdict"]
    assert parent.data.params["seeds"] == "[0,1]"
    artifacts = {a.path for a in ml.list_artifacts(parent.info.run_id)}
    assert {"report.json", "report.md", "report.png"} <= artifacts
    runs = [r for r in every if r is not parent]
    assert len(runs) == 2
    for r in runs:
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
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
    assert "logged 0 new run(s)" in again.stdout
    assert "2 already there from an earlier export" in again.stdout
    assert len(ml.search_runs([experiment.experiment_id])) == 3
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


def test_a_comparison_that_fails_in_training_exits_1(distributed: Service, tmp_path: Path) -> None:
    """Valid at submit, failing at train time: the uploaded dataset's file is gone when the
    worker loads it. `submit --wait` follows it to the end and exits 1."""
    rng = np.random.default_rng(int(time.time() * 1000) % 2**32)  # a file of its own
    y = np.arange(60) % 3
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.random((60, 8, 8)).astype(np.float32), y_train=y)
    with httpx.Client(base_url=distributed.url, timeout=30) as c:
        resp = c.post("/v1/datasets", files={"file": ("gone.npz", buf.getvalue())})
    assert resp.status_code == 201, resp.text
    dataset = resp.json()
    (distributed.data_dir / "uploads" / f"{dataset['content_hash']}.npz").unlink()
    spec = tiny_spec("cli-fails", seeds=[0], epochs=1, variants=[small_mlp()])
    spec["dataset"] = {"name": dataset["name"]}
    spec["variants"][0]["layers"][-1]["units"] = 3
    path = tmp_path / "fails.json"
    path.write_text(json.dumps(spec))
    env = {**distributed.env, "ARCHBENCH_URL": distributed.url}
    proc = run(["submit", str(path), "--wait", "--timeout", "240"], env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cid = proc.stdout.splitlines()[0].strip()
    assert "mlp seed 0 failed" in proc.stdout
    assert f"comparison {cid} failed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def test_submit_wait_on_a_terminal_draws_the_rich_bar(distributed: Service, tmp_path: Path) -> None:
    """On a terminal (a pty here), `submit --wait` shows rich's live bar, not plain lines."""
    import fcntl
    import pty
    import struct
    import termios

    spec = tmp_path / "tty.json"
    spec.write_text(
        json.dumps(tiny_spec("cli-tty", seeds=[0, 1], epochs=2, variants=[small_mlp()]))
    )
    env = {**distributed.env, "ARCHBENCH_URL": distributed.url, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    env["COLUMNS"] = "160"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(
        [*ARCHBENCH, "submit", str(spec), "--wait", "--timeout", "240"],
        env=env,
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    raw = b"".join(chunks).decode(errors="replace")
    screen = ANSI.sub("", raw)
    assert code == 0, screen[-3000:]
    assert "\x1b[" in raw, "no terminal control codes: the plain output was used"
    assert "cli-tty" in screen
    assert "━" in screen  # the bar itself
    assert "4/4 epochs · 2/2 trials (succeeded)" in screen, screen[-3000:]
    assert "epoch 1/2:" not in screen  # the plain per-epoch lines are for pipes
    assert "comparison " in screen
    assert " succeeded" in screen


def test_datasets_upload_cancel_and_a_closed_pipe(distributed: Service, tmp_path: Path) -> None:
    """`archbench datasets upload FILE --name` makes a name a spec can give; `cancel` prints
    the state after the cancel; `ls` into a reader that went away ends quietly."""
    env = {**distributed.env, "ARCHBENCH_URL": distributed.url + "/v1"}  # /v1 is accepted
    rng = np.random.default_rng(int(time.time() * 1000) % 2**32)
    name = f"cli-grid-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "grid.npz"
    np.savez(data, x_train=rng.random((60, 8, 8)).astype(np.float32), y_train=np.arange(60) % 3)
    up = run(["datasets", "upload", str(data), "--name", name], env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"({name}): 60 samples of shape (8, 8, 1), 3 classes" in up.stdout
    assert f'a spec uses it as "dataset": {{"name": "{name}"}}' in up.stdout
    again = run(["datasets", "upload", str(data), "--name", name], env)
    assert again.returncode == 2
    assert f"at body.name: you already have an upload named '{name}'" in again.stderr
    listed = run(["datasets", "ls"], env)
    assert name in listed.stdout

    spec = tiny_spec("cli-by-name", seeds=[0, 1], epochs=3, variants=[small_mlp()])
    spec["dataset"] = {"name": name}
    spec["variants"][0]["layers"][-1]["units"] = 3
    path = tmp_path / "by-name.json"
    path.write_text(json.dumps(spec))
    submitted = run(["submit", str(path)], env)
    assert submitted.returncode == 0, submitted.stderr
    cid = submitted.stdout.strip()  # the id alone: the warnings go to stderr
    assert "archbench: warning at body.seeds: 2 seed(s) per variant" in submitted.stderr
    cancel = run(["cancel", cid], env)
    assert cancel.returncode == 0, cancel.stderr
    assert cancel.stdout.strip() in (
        f"{cid} cancelled",
        f"{cid} cancelling: running trials "
        f"stop at their next batch (`archbench wait {cid}` follows it)",
    )
    assert run(["wait", cid, "--timeout", "120"], env).returncode == 3  # it ends cancelled

    proc = subprocess.Popen(
        [*ARCHBENCH, "ls"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
