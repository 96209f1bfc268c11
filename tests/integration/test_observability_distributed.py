"""/metrics after a real comparison, JSON log lines with ids, and `archbench sweep`.

Most on the shared ``distributed`` fixture (Postgres, Redis, an api and a worker subprocess
whose output goes to files, so their logs are the non-TTY JSON form). A private stack
(``tests.stack``: its own database and Redis, live MLflow on, a 1 s heartbeat) serves what
needs a process restarted or other settings: an idle worker's heartbeat, following events
through an api restart, and live MLflow logging of trials no worker task ended.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from archbench import Client
from core.store.tables import MlflowRun, Trial
from tests.support.helpers import small_mlp, tiny_spec, wait_done
from tests.support.services import ROOT, Service, start
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.services, pytest.mark.worker]

# TensorFlow's C++ (absl) logging writes to fd 2 before Python logging can see it, and ignores
# TF_CPP_MIN_LOG_LEVEL for messages logged before absl::InitializeLog(): tolerate only those.
NATIVE_TF_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWEF]\d{4} [\d:. ]+\d+ \S+:\d+\])"
)


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _value(samples: dict[str, Any], name: str, **labels: str) -> float:
    for got, value in samples.get(name, []):
        if all(got.get(k) == v for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no sample {name}{labels}; have {sorted(samples)}")


@pytest.fixture(scope="module")
def finished(distributed: Service) -> dict[str, Any]:
    """One comparison run to the end, with /metrics scraped while it ran."""
    running_seen: list[dict[str, str]] = []
    with distributed.client() as client:
        resp = client.post("/v1/comparisons", json=tiny_spec("observability", seeds=[0]))
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        deadline = time.monotonic() + 300
        while True:
            scrape = _samples(client.get("/metrics").text)
            running_seen += [
                labels for labels, v in scrape.get("archbench_worker_running_trials", []) if v > 0
            ]
            c = client.get(f"/v1/comparisons/{cid}").json()
            if c["status"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, c
            time.sleep(0.3)
        assert c["status"] == "succeeded", distributed.log("worker")[-3000:]
        trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
    return {"id": cid, "trials": trials, "running_seen": running_seen}


def test_metrics_after_a_comparison(distributed: Service, finished: dict[str, Any]) -> None:
    resp = httpx.get(distributed.url + "/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    m = _samples(resp.text)
    assert _value(m, "archbench_comparisons", status="succeeded") >= 1
    assert _value(m, "archbench_trials", status="succeeded") >= len(finished["trials"])
    # Request counts and latency by route template, never by raw path.
    route = "/v1/comparisons/{comparison_id}"
    assert _value(m, "archbench_http_requests_total", method="GET", route=route, status="200") >= 1
    assert _value(m, "archbench_http_requests_total", method="POST", route="/v1/comparisons") >= 1
    assert _value(m, "archbench_http_request_duration_seconds_count", route=route) >= 1
    assert not any(
        finished["id"] in labels.get("route", "")
        for labels, _ in m["archbench_http_requests_total"]
    )
    # Epoch durations: every stored epoch, cumulative buckets.
    epochs = sum(t["epochs_done"] for t in finished["trials"])
    count = _value(m, "archbench_epoch_duration_seconds_count")
    assert count >= epochs
    assert _value(m, "archbench_epoch_duration_seconds_bucket", le="+Inf") == count
    assert _value(m, "archbench_epoch_duration_seconds_sum") > 0
    # Queue depth from Redis (nothing waiting now), and the broker answered.
    assert _value(m, "archbench_broker_up") == 1
    assert _value(m, "archbench_queue_depth", queue="archbench") == 0
    # Workers: running trials were seen by worker while it ran, and its last sign of life.
    workers = {t["worker"] for t in finished["trials"]}
    assert finished["running_seen"], "no scrape saw a running trial"
    assert {labels["worker"] for labels in finished["running_seen"]} <= workers
    for w in workers:
        seen = _value(m, "archbench_worker_last_seen_timestamp_seconds", worker=w)
        assert time.time() - 600 < seen <= time.time() + 5
    # Every worker process heartbeats (busy or idle), and counts its trials by status.
    pid = str(distributed.procs["worker"].pid)
    beats = [(labels, v) for labels, v in m["archbench_worker_heartbeat_timestamp_seconds"]]
    name = next(labels["worker"] for labels, _ in beats if labels["pid"] == pid)
    assert name.startswith("test@"), beats
    beat = _value(m, "archbench_worker_heartbeat_timestamp_seconds", worker=name, pid=pid)
    assert time.time() - 120 < beat <= time.time() + 5
    assert _value(m, "archbench_worker_concurrency", worker=name, pid=pid) == 1
    succeeded = _value(m, "archbench_worker_trials", worker=name, status="succeeded")
    assert succeeded >= len(finished["trials"])


def _json_lines(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    records, other = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            other.append(line)
    return records, other


def test_worker_and_api_logs_are_json_with_ids(
    distributed: Service, finished: dict[str, Any]
) -> None:
    records, other = _json_lines(distributed.log("worker"))
    assert not [line for line in other if not NATIVE_TF_LINE.match(line)], other[:10]
    assert len(other) <= 12, other
    for r in records:
        assert {"ts", "level", "logger", "msg"} <= r.keys(), r
    assert any(r["logger"].startswith("celery") for r in records), "celery's own lines are missing"
    for t in finished["trials"]:
        mine = [r for r in records if t["id"] in r["msg"] and r["logger"] == "archbench.worker"]
        assert mine, f"no worker log line for trial {t['id']}"
        for r in mine:
            assert r.get("trial_id") == t["id"], r
            assert r.get("comparison_id") == finished["id"], r
    api_records, api_other = _json_lines(distributed.log("api"))
    assert not api_other, api_other[:10]
    assert any(r["logger"].startswith("uvicorn") for r in api_records)
    # The api's own lines carry the comparison id: the submit, and one line per request.
    mine = [r for r in api_records if r.get("comparison_id") == finished["id"]]
    submitted = [r for r in mine if r["msg"].startswith("comparison submitted")]
    assert len(submitted) == 1, mine[:5]
    assert submitted[0]["tenant"] == "default"
    polls = [r for r in mine if r["logger"] == "archbench.api.access"]
    route = "/v1/comparisons/{comparison_id}"
    assert any(r["route"] == route and r["method"] == "GET" and r["status"] == 200 for r in polls)
    assert all(isinstance(r["duration_ms"], float) for r in polls)
    assert not any(finished["id"] in r["route"] for r in polls)


def test_sweep_command_once(distributed: Service) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "sweep"],
        env=distributed.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"requeued", "failed", "enqueued", "finalized"} <= result.keys()


ARCHBENCH = [sys.executable, "-m", "cli.main"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    """A private stack with live MLflow logging into a SQLite store and a 1 s heartbeat."""
    data_dir = tmp_path_factory.mktemp("live-stack")
    store = data_dir / "mlflow.db"
    settings = {
        "ARCHBENCH_MLFLOW_TRACKING_URI": f"sqlite:///{store}",
        "ARCHBENCH_MLFLOW_POLL_SECONDS": "1",
        "ARCHBENCH_WORKER_HEARTBEAT_SECONDS": "1",
    }
    with process_stack(data_dir, **settings) as stack:
        yield stack, store


def _heartbeat(url: str, pid: int) -> tuple[str, float, float] | None:
    """(worker name, last heartbeat, concurrency) of the worker process ``pid`` in /metrics."""
    m = _samples(httpx.get(url + "/metrics", timeout=10).text)
    for labels, value in m.get("archbench_worker_heartbeat_timestamp_seconds", []):
        if labels["pid"] == str(pid):
            slots = _value(m, "archbench_worker_concurrency", **labels)
            return labels["worker"], float(value), slots
    return None


def test_an_idle_worker_heartbeats_in_metrics(live: tuple[Stack, Path]) -> None:
    stack, _ = live
    pid = stack.procs["w1"].pid
    deadline = time.monotonic() + 90
    while (first := _heartbeat(stack.url, pid)) is None:
        assert stack.procs["w1"].poll() is None, stack.log("w1")[-3000:]
        assert time.monotonic() < deadline, "worker w1 never showed a heartbeat"
        time.sleep(0.5)
    name, beat, slots = first
    assert name.startswith("w1@")
    assert slots == 1
    with stack.client() as c:
        assert c.get("/v1/comparisons").json()["items"] == []  # nothing to do: it is idle
    while (later := _heartbeat(stack.url, pid)) is not None and later[1] <= beat:
        assert time.monotonic() < deadline, "the idle worker's heartbeat stopped"
        time.sleep(0.5)
    assert later is not None
    assert time.time() - 10 < later[1] <= time.time() + 2


def test_events_and_cli_follow_through_an_api_restart(live: tuple[Stack, Path]) -> None:
    """The api dies mid-stream and comes back: the client and `archbench wait` reconnect and
    see every event once (a new stream replays the comparison from its start)."""
    stack, _ = live
    spec = tiny_spec("restart", seeds=[0, 1], epochs=6, samples=600, variants=[small_mlp()])
    with stack.client() as c:
        cid = c.post("/v1/comparisons", json=spec).json()["id"]
    out = stack.data_dir / "wait.out"
    env = {**stack.env, "ARCHBENCH_URL": stack.url}
    with out.open("wb") as fh:
        cli = subprocess.Popen(
            [*ARCHBENCH, "wait", cid, "--timeout", "300"],
            env=env,
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    port = stack.url.rsplit(":", 1)[1]
    events = []
    restarted_after = 0
    with Client(stack.url) as ab:
        for event in ab.events(cid, timeout=300):
            events.append(event)
            if not restarted_after and event.event == "epoch":
                restarted_after = len(events)
                stack.kill("api")  # SIGKILL: the open streams break mid-body
                stack.logs["api2"] = stack.data_dir / "api2.log"
                stack.procs["api"] = start(
                    [*ARCHBENCH, "api", "--port", port], stack.env, stack.logs["api2"]
                )
    try:
        assert cli.wait(timeout=120) == 0, out.read_text()
    finally:
        if cli.poll() is None:
            cli.kill()
    assert restarted_after, "no epoch event before the end"
    assert len(events) > restarted_after, "nothing arrived after the restart"
    assert events[-1].event == "comparison_finished"
    assert events[-1].data["status"] == "succeeded"
    epochs = Counter((e.data["trial_id"], e.data["epoch"]) for e in events if e.event == "epoch")
    assert len(epochs) == 2 * 6
    assert set(epochs.values()) == {1}, epochs
    kinds = Counter(e.event for e in events)
    assert (kinds["trial_started"], kinds["trial_finished"]) == (2, 2), kinds
    assert kinds["comparison_finished"] == 1
    printed = out.read_text()
    for seed in (0, 1):
        for epoch in range(1, 7):
            assert printed.count(f"mlp seed {seed} epoch {epoch}/6:") == 1, printed
    assert printed.count("mlp seed 0 succeeded") == 1, printed
    assert f"comparison {cid} succeeded" in printed


def test_live_mlflow_logs_trials_no_task_ended(live: tuple[Stack, Path]) -> None:
    """Live MLflow, from the worker: a trained trial, trials cancelled while queued, and a trial
    answered at submit from the trained one (reused), each logged once."""
    from mlflow import MlflowClient

    stack, store = live
    trained_spec = tiny_spec(
        "ml-trained", seeds=[0], epochs=5, samples=1000, variants=[small_mlp("m")]
    )
    trained_spec["reuse"] = True
    queued_spec = tiny_spec(
        "ml-cancelled", seeds=[7, 8], epochs=1, samples=200, variants=[small_mlp("m")]
    )
    with stack.client() as c:
        trained = c.post("/v1/comparisons", json=trained_spec).json()["id"]
        # The worker (one process) is busy with the trial above: these two wait in the queue.
        cancelled = c.post("/v1/comparisons", json=queued_spec).json()["id"]
        assert c.post(f"/v1/comparisons/{cancelled}/cancel").status_code == 202
        never_ran = c.get(f"/v1/comparisons/{cancelled}/trials").json()["items"]
        assert [(t["status"], t["started_at"]) for t in never_ran] == [("cancelled", None)] * 2
        assert wait_done(c, trained, timeout=240)["status"] == "succeeded"
        resp = c.post("/v1/comparisons", json={**trained_spec, "name": "ml-reused"})
        assert resp.status_code == 202, resp.text
        reused = resp.json()["id"]
        assert resp.json()["status"] == "succeeded"  # answered at submit: no task ran
        [reused_trial] = c.get(f"/v1/comparisons/{reused}/trials").json()["items"]
        [trained_trial] = c.get(f"/v1/comparisons/{trained}/trials").json()["items"]
    assert reused_trial["reused_from"] == trained_trial["id"]

    ids = (trained, cancelled, reused)
    deadline = time.monotonic() + 120
    while True:
        with stack.db() as s:
            marked = s.scalar(
                select(func.count())
                .select_from(MlflowRun)
                .join(Trial, Trial.id == MlflowRun.trial_id)
                .where(Trial.comparison_id.in_(ids), MlflowRun.run_id.is_not(None))
            )
        if marked == 4:
            break
        assert time.monotonic() < deadline, (
            f"{marked} of 4 trials logged\n{stack.log('w1')[-3000:]}"
        )
        time.sleep(0.5)
    time.sleep(2.5)  # two more passes: nothing is logged twice

    ml = MlflowClient(tracking_uri=f"sqlite:///{store}")

    def runs(name: str) -> list[Any]:
        """The trials' runs; each comparison also has its parent run, checked here."""
        experiment = ml.get_experiment_by_name(f"archbench/{name}")
        assert experiment is not None, name
        found = list(ml.search_runs([experiment.experiment_id]))
        [parent] = [r for r in found if r.data.tags.get("archbench.role") == "comparison"]
        children = [r for r in found if r is not parent]
        for r in children:
            assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        return children

    [first] = runs("ml-trained")
    # The reused trial is the trained one's work: not logged twice, its run is that one.
    assert runs("ml-reused") == []
    with stack.db() as s:
        reused_run = s.scalar(
            select(MlflowRun.run_id).where(MlflowRun.trial_id == reused_trial["id"])
        )
    assert reused_run == first.info.run_id
    killed = runs("ml-cancelled")
    assert sorted(r.data.tags["archbench.seed"] for r in killed) == ["7", "8"]
    for r in killed:
        assert r.info.status == "KILLED"
        assert r.data.tags["archbench.comparison_id"] == cancelled
        assert r.data.tags["archbench.status"] == "cancelled"
    assert first.data.tags["archbench.trial_id"] == trained_trial["id"]
    for r in (first,):
        assert r.info.status == "FINISHED"
        assert r.data.tags["archbench.variant"] == "m"
        assert r.data.params["epochs"] == "5"
        assert r.data.metrics["test_accuracy"] == pytest.approx(trained_trial["test_accuracy"])
        history = ml.get_metric_history(r.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
