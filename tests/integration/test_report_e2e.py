"""The article's comparison, on a small subset, through the api: report, png, csv, md, events."""

from __future__ import annotations

import csv
import io
import json
import statistics
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import stats

from tests.conftest import ROOT, Service
from tests.helpers import wait_done

pytestmark = [pytest.mark.services, pytest.mark.worker]


@pytest.fixture(scope="module")
def article(distributed: Service) -> dict[str, Any]:
    spec = json.loads((ROOT / "examples" / "article.json").read_text())
    spec["name"] = "article, small subset"
    spec["dataset"]["max_samples"] = 300
    spec["training"]["epochs"] = 2
    with distributed.client() as client:
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        # Follow the events stream while it trains; it must end when the comparison does.
        events: list[tuple[str, dict[str, Any]]] = []
        with client.stream("GET", f"/v1/comparisons/{cid}/events", timeout=600) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: ") and name:
                    events.append((name, json.loads(line[len("data: ") :])))
        done = wait_done(client, cid, timeout=60)
    return {"id": cid, "comparison": done, "events": events}


def test_report_matches_the_stored_rows(distributed: Service, article: dict[str, Any]) -> None:
    cid = article["id"]
    assert article["comparison"]["status"] == "succeeded"
    with distributed.client() as client:
        report = client.get(f"/v1/comparisons/{cid}/report").json()
        trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
        metrics = client.get(f"/v1/comparisons/{cid}/metrics").json()["items"]
    assert report["final"] is True
    assert report["primary_metric"] == "test_accuracy"
    assert set(report["ranking"]) == {"conv128", "conv64x2", "conv64x3"}
    assert isinstance(report["verdict"], str)
    assert report["verdict"]

    values: dict[str, list[float]] = {}
    for t in trials:
        values.setdefault(t["variant"], []).append(t["test_accuracy"])
    variants = {v["name"]: v for v in report["variants"]}
    for name, xs in values.items():
        v = variants[name]
        assert v["n"] == 3
        assert v["mean"] == pytest.approx(statistics.mean(xs))
        assert v["std"] == pytest.approx(statistics.stdev(xs), abs=1e-12)
        half = stats.t.ppf(0.975, 2) * statistics.stdev(xs) / np.sqrt(3)
        if v["ci95"] is not None:
            assert v["ci95"][0] == pytest.approx(statistics.mean(xs) - half)
        best_val = [
            max(m["val_accuracy"] for m in metrics if m["trial_id"] == t["id"])
            for t in trials
            if t["variant"] == name
        ]
        assert v["best_val_accuracy"]["mean"] == pytest.approx(statistics.mean(best_val))
    assert variants["conv128"]["params"] == 866_570
    assert variants["conv64x2"]["params"] == 129_738
    assert variants["conv64x3"]["params"] == 151_946
    # The article calls these "seemingly equivalent in terms of parameter count".
    assert any("6.7x" in n and "conv128" in n for n in report["notes"]), report["notes"]

    for pair in report["pairwise"]:
        a, b = values[pair["a"]], values[pair["b"]]
        assert pair["diff"] == pytest.approx(statistics.mean(a) - statistics.mean(b))
        if pair["p_value"] is not None:
            expected = stats.ttest_ind(a, b, equal_var=False).pvalue
            assert pair["p_value"] == pytest.approx(expected, rel=1e-6)
            assert pair["p_adjusted"] >= pair["p_value"]


def test_report_formats(distributed: Service, article: dict[str, Any]) -> None:
    cid = article["id"]
    with distributed.client() as client:
        as_csv = client.get(f"/v1/comparisons/{cid}/report", params={"format": "csv"})
        md = client.get(f"/v1/comparisons/{cid}/report", params={"format": "md"})
        text = client.get(f"/v1/comparisons/{cid}/report", params={"format": "text"})
        png = client.get(f"/v1/comparisons/{cid}/report.png")
        verdict = client.get(f"/v1/comparisons/{cid}/report").json()["verdict"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert sorted(r["name"] for r in rows) == ["conv128", "conv64x2", "conv64x3"]
    assert md.headers["content-type"].startswith("text/markdown")
    assert "conv64x3" in md.text
    assert verdict in md.text
    assert verdict.split(";")[0][:40] in text.text.replace("\n", " ")
    assert png.headers["content-type"] == "image/png"
    from PIL import Image

    image = Image.open(io.BytesIO(png.content))
    assert image.size[0] >= 800
    assert image.size[1] >= 400
    assert np.asarray(image.convert("L"), dtype=float).std() > 10


def test_events_tell_the_story(article: dict[str, Any]) -> None:
    names = [n for n, _ in article["events"]]
    assert names[-1] == "comparison_finished"
    assert article["events"][-1][1]["status"] == "succeeded"
    assert names.count("trial_finished") == 9
    epochs = [d for n, d in article["events"] if n == "epoch"]
    assert len(epochs) == 18
    assert {"trial_id", "epoch", "loss", "val_accuracy"} <= epochs[0].keys()
    assert "progress" in names


def test_unknown_comparison_is_a_problem(distributed: Service) -> None:
    with httpx.Client(base_url=distributed.url) as client:
        for path in ("report", "report.png", "events", "trials", "metrics"):
            r = client.get(f"/v1/comparisons/00000000-0000-0000-0000-000000000000/{path}")
            assert r.status_code == 404
            assert r.headers["content-type"].startswith("application/problem+json")
        r = client.get("/v1/comparisons/not-a-uuid/report")
        assert r.status_code == 404
