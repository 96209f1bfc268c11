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
from celery import Celery
from scipy import stats
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from statsmodels.stats.multitest import multipletests

from core.config import Settings
from core.report.render import md_escape
from core.spec import ComparisonSpec
from core.store.db import make_engine
from core.store.tables import Trial
from core.trials.comparisons import create_comparison
from core.trials.queue import celery_config, enqueue_trials
from core.trials.validation import validate_comparison
from tests.support.helpers import small_mlp, tiny_spec, wait_done
from tests.support.services import ROOT, Service

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

    by_seed: dict[str, dict[int, float]] = {}
    for t in trials:
        by_seed.setdefault(t["variant"], {})[t["seed"]] = t["test_accuracy"]
    values = {name: list(xs.values()) for name, xs in by_seed.items()}
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

    _check_curves_and_costs(variants, trials, metrics)
    _check_pairs_and_ranking(report, by_seed, report["design"]["equivalence_margin"])
    spec = json.loads((ROOT / "examples" / "article.json").read_text())
    assert report["design"]["baseline"] == spec.get("baseline")
    if spec.get("baseline") == "conv128":  # the verdict answers the article's question first
        assert report["verdict"].startswith(("conv128 ", "conv64x2 "))


def _approx_or_none(x: float | None) -> Any:
    return None if x is None else pytest.approx(x, rel=1e-9, abs=1e-12)


def _check_curves_and_costs(
    variants: dict[str, Any], trials: list[dict[str, Any]], metrics: list[dict[str, Any]]
) -> None:
    """Every per-variant figure of the report, recomputed from ``/trials`` and ``/metrics``."""
    for name, v in variants.items():
        mine = [t for t in trials if t["variant"] == name]
        losses = [t["test_loss"] for t in mine]
        half = stats.t.ppf(0.975, len(losses) - 1) * statistics.stdev(losses) / np.sqrt(3)
        mean_loss = statistics.mean(losses)
        assert v["test_loss"]["mean"] == pytest.approx(mean_loss)
        assert v["test_loss"]["std"] == pytest.approx(statistics.stdev(losses), abs=1e-12)
        if v["test_loss"]["ci95"] is not None:
            assert v["test_loss"]["ci95"] == pytest.approx([mean_loss - half, mean_loss + half])
        finals, to95, aucs, per_epoch = [], [], [], []
        for t in mine:
            curve = sorted(
                (m for m in metrics if m["trial_id"] == t["id"]), key=lambda m: m["epoch"]
            )
            assert [m["epoch"] for m in curve] == list(range(1, t["epochs_done"] + 1))
            accs = [m["val_accuracy"] for m in curve]
            finals.append(accs[-1])
            to95.append(next(m["epoch"] for m in curve if m["val_accuracy"] >= 0.95 * max(accs)))
            aucs.append(statistics.mean(accs))
            per_epoch.append(statistics.mean(m["seconds"] for m in curve))
        assert v["final_val_accuracy"]["mean"] == pytest.approx(statistics.mean(finals))
        assert v["epochs_to_95pct_best"] == pytest.approx(statistics.mean(to95))
        assert v["auc_val_accuracy"] == pytest.approx(statistics.mean(aucs))
        assert v["seconds_per_epoch_mean"] == pytest.approx(statistics.mean(per_epoch))
        train = statistics.mean(t["train_seconds"] for t in mine)
        assert v["train_seconds_mean"] == pytest.approx(train)
        inference = [t["inference_ms_per_sample"] for t in mine]
        assert all(x is not None and x > 0 for x in inference), (name, inference)  # every seed
        assert v["inference_ms_per_sample_mean"] == pytest.approx(statistics.mean(inference))
        assert v["flops"] == mine[0]["flops"]


def _check_pairs_and_ranking(
    report: dict[str, Any], values: dict[str, dict[int, float]], margin: float
) -> None:
    """Paired t (same seeds) or Welch, Holm, the adjusted interval, TOST, Hedges' g, the
    conclusion, tiers and ranks, recomputed from ``/trials`` with scipy and statsmodels."""
    names = list(values)
    baseline = report["design"]["baseline"]
    if baseline is not None:
        family = [(baseline, n) for n in names if n != baseline]
    else:
        family = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    assert {(p["a"], p["b"]) for p in report["pairwise"]} == set(family)
    m = len(family)
    raw: list[float] = []
    eq_raw: list[float] = []
    for pair in report["pairwise"]:
        sa, sb = values[pair["a"]], values[pair["b"]]
        a, b = list(sa.values()), list(sb.values())
        assert pair["diff"] == pytest.approx(statistics.mean(a) - statistics.mean(b))
        if sorted(sa) == sorted(sb):
            seeds = sorted(sa)
            a, b = [sa[s] for s in seeds], [sb[s] for s in seeds]
            res = stats.ttest_rel(a, b)
            assert pair["test"] == "paired_t"
            d = np.subtract(a, b)
            low = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
            high = stats.ttest_1samp(d, margin, alternative="less").pvalue
        else:
            res = stats.ttest_ind(a, b, equal_var=False)
            assert pair["test"] == "welch"
            low = stats.ttest_ind(np.add(a, margin), b, equal_var=False, alternative="greater")
            high = stats.ttest_ind(np.subtract(a, margin), b, equal_var=False, alternative="less")
            low, high = low.pvalue, high.pvalue
        if pair["p_value"] is None:
            raw.append(1.0)
            eq_raw.append(1.0)
            continue
        assert pair["p_value"] == pytest.approx(res.pvalue, rel=1e-6)
        assert pair["ci95"] == pytest.approx(list(res.confidence_interval(0.95)), rel=1e-6)
        adjusted = res.confidence_interval(1 - 0.05 / m)
        assert pair["ci95_adjusted"] == pytest.approx(list(adjusted), rel=1e-6)
        assert pair["equivalence_p"] == pytest.approx(max(low, high), rel=1e-6)
        raw.append(pair["p_value"])
        eq_raw.append(pair["equivalence_p"])
    holm = multipletests(raw, method="holm")[1]
    eq_holm = multipletests(eq_raw, method="holm")[1]
    for pair, p_adj, q_adj in zip(report["pairwise"], holm, eq_holm, strict=True):
        if pair["p_value"] is None:
            continue
        assert pair["p_adjusted"] == pytest.approx(p_adj)
        assert pair["equivalence_p_adjusted"] == pytest.approx(q_adj)
        if p_adj < 0.05:
            want = "a_better" if pair["diff"] > 0 else "b_better"
        elif q_adj < 0.05:
            want = "equivalent"
        else:
            want = "inconclusive"
        assert pair["conclusion"] == want
        assert pair["significant"] is (want in ("a_better", "b_better"))
    means = {name: statistics.mean(xs.values()) for name, xs in values.items()}
    assert report["ranking"] == sorted(means, key=lambda n: -means[n])
    variants = {v["name"]: v for v in report["variants"]}
    for name in names:
        better = sum(means[o] > means[name] for o in names)
        assert variants[name]["rank"] == 1 + better
    assert variants[report["ranking"][0]]["tier"] == 1


def test_report_formats(distributed: Service, article: dict[str, Any]) -> None:
    cid = article["id"]
    with distributed.client() as client:
        as_csv = client.get(f"/v1/comparisons/{cid}/report", params={"format": "csv"})
        md = client.get(f"/v1/comparisons/{cid}/report", params={"format": "md"})
        text = client.get(f"/v1/comparisons/{cid}/report", params={"format": "text"})
        png = client.get(f"/v1/comparisons/{cid}/report.png")
        report = client.get(f"/v1/comparisons/{cid}/report").json()
        pairs_csv = client.get(
            f"/v1/comparisons/{cid}/report", params={"format": "csv", "table": "pairwise"}
        )
        openapi = client.get("/openapi.json").json()
    verdict = report["verdict"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {r["tier"] for r in rows} >= {"1"}
    pair_rows = list(csv.DictReader(io.StringIO(pairs_csv.text)))
    assert [(r["a"], r["b"], r["conclusion"]) for r in pair_rows] == [
        (p["a"], p["b"], p["conclusion"]) for p in report["pairwise"]
    ]
    # The typed report: /openapi.json documents the new fields.
    schemas = openapi["components"]["schemas"]
    assert {"conclusion", "ci95_adjusted", "effect_size_ci95", "mde", "seeds_needed"} <= set(
        schemas["PairwiseResult"]["properties"]
    )
    assert {"tier", "n_diverged"} <= set(schemas["VariantSummary"]["properties"])
    assert {"interim", "design", "differences"} <= set(schemas["Report"]["properties"])
    words = {"a_better": "A better", "b_better": "B better"}
    for p in report["pairwise"]:
        assert words.get(p["conclusion"], p["conclusion"]) in text.text
        assert words.get(p["conclusion"], p["conclusion"]) in md.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert sorted(r["name"] for r in rows) == ["conv128", "conv64x2", "conv64x3"]
    assert md.headers["content-type"].startswith("text/markdown")
    assert "conv64x3" in md.text
    assert md_escape(verdict) in md.text
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
    # The last progress says how the comparison ended, as the comparison_finished after it.
    last_progress = [d for n, d in article["events"] if n == "progress"][-1]
    assert last_progress["status"] == "succeeded"
    assert last_progress["trials_succeeded"] == 9
    # Every trial's story is complete and in order: started, epochs 1 and 2, finished.
    assert names.count("trial_started") == 9
    story: dict[str, list[str]] = {}
    for name, data in article["events"]:
        if name == "epoch":
            story.setdefault(data["trial_id"], []).append(f"epoch {data['epoch']}")
        elif name in ("trial_started", "trial_finished"):
            story.setdefault(data["id"], []).append(name)
    assert len(story) == 9
    for trial_id, told in story.items():
        assert told == ["trial_started", "epoch 1", "epoch 2", "trial_finished"], (trial_id, told)


def test_unknown_comparison_is_a_problem(distributed: Service) -> None:
    with httpx.Client(base_url=distributed.url) as client:
        for path in ("report", "report.png", "events", "trials", "metrics"):
            r = client.get(f"/v1/comparisons/00000000-0000-0000-0000-000000000000/{path}")
            assert r.status_code == 404
            assert r.headers["content-type"].startswith("application/problem+json")
        r = client.get("/v1/comparisons/not-a-uuid/report")
        assert r.status_code == 404


def test_inference_is_timed_by_a_later_seed_when_the_first_fails(distributed: Service) -> None:
    """Every trial that trains times inference, whatever happened to the others: seed 0
    ended without a measurement, seed 1 has its own, and the report's mean is seed 1's."""
    url = distributed.env["ARCHBENCH_DATABASE_URL"]
    settings = Settings(database_url=url, broker_url=distributed.env["ARCHBENCH_BROKER_URL"])
    spec = tiny_spec("first-seed-fails", seeds=[0, 1], epochs=1, variants=[small_mlp()])
    validated = validate_comparison(ComparisonSpec.model_validate(spec), settings)
    with Session(make_engine(url)) as db:
        comparison, trial_ids, _ = create_comparison(
            db, tenant="default", validated=validated, idempotency_key=None, request_hash="x"
        )
        cid = comparison.id
        rows = db.execute(select(Trial.id, Trial.seed).where(Trial.comparison_id == cid))
        seeds = {trial_id: seed for trial_id, seed in rows}
        first = next(t for t, seed in seeds.items() if seed == 0)
        # Seed 0 ended without a measurement, as a crash past the attempt limit leaves it.
        db.execute(
            update(Trial)
            .where(Trial.id == first)
            .values(status="failed", error={"title": "Trial failed", "detail": "test"})
        )
        db.commit()
    app = Celery("test-client")
    app.conf.update(celery_config(settings))
    enqueue_trials([t for t in trial_ids if t != first], app=app)
    with distributed.client() as client:
        wait_done(client, cid)
        trials = {t["seed"]: t for t in client.get(f"/v1/comparisons/{cid}/trials").json()["items"]}
        report = client.get(f"/v1/comparisons/{cid}/report").json()
    assert trials[0]["inference_ms_per_sample"] is None
    assert trials[1]["status"] == "succeeded"
    assert trials[1]["inference_ms_per_sample"] is not None
    assert trials[1]["inference_ms_per_sample"] > 0
    assert report["variants"][0]["inference_ms_per_sample_mean"] == pytest.approx(
        trials[1]["inference_ms_per_sample"]
    )
