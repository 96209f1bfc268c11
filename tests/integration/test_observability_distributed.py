"""/metrics after a real comparison, JSON log lines with ids, and `archbench sweep`.

All on the shared ``distributed`` fixture (Postgres, Redis, an api and a worker subprocess
whose output goes to files, so their logs are the non-TTY JSON form).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, Service
from tests.helpers import tiny_spec

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
