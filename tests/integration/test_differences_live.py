"""Do they differ? The article's models on a real worker (2 seeds, tiny data, 1 epoch):
predictions for every trial and test example, similarity matrices, the heatmap PNG, and the
report's differences recomputed here from ``GET /predictions``."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from tests.support.helpers import assert_problem, wait_done
from tests.support.services import ROOT, Service
from worker.datasets import load_dataset, make_split

pytestmark = [pytest.mark.services, pytest.mark.worker]

SAMPLES = 200  # mnist_5k: 40 test digits per trial
PROBE = 30


@pytest.fixture(scope="module")
def article(distributed: Service) -> dict[str, Any]:
    spec = json.loads((ROOT / "examples" / "article.json").read_text())
    spec["name"] = "article: do they differ? ($2 conv$ check)"
    spec["dataset"]["max_samples"] = SAMPLES
    spec["training"]["epochs"] = 1
    spec["seeds"] = [0, 1]
    spec["reuse"] = False
    spec["analysis"] = {"predictions": True, "similarity": True, "probe_size": PROBE}
    with distributed.client() as client:
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        done = wait_done(client, cid, timeout=600)
        assert done["status"] == "succeeded", done
        trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
        report = client.get(f"/v1/comparisons/{cid}/report").json()
    design = report["design"]["split"]
    return {"id": cid, "spec": spec, "trials": trials, "report": report, "design": design}


def _predictions(client: Any, cid: str) -> pd.DataFrame:
    resp = client.get(f"/v1/comparisons/{cid}/predictions")
    assert resp.status_code == 200, resp.text
    return pd.DataFrame(resp.json()["items"])


def test_predictions_for_every_trial_and_test_example(
    distributed: Service, article: dict[str, Any], tmp_path: Path
) -> None:
    cid = article["id"]
    with distributed.client() as client:
        df = _predictions(client, cid)
        as_csv = client.get(f"/v1/comparisons/{cid}/predictions", params={"format": "csv"})
        as_parquet = client.get(f"/v1/comparisons/{cid}/predictions", params={"format": "parquet"})
        one = client.get(f"/v1/comparisons/{cid}/predictions", params={"variant": "conv128"})
        bad = client.get(f"/v1/comparisons/{cid}/predictions", params={"variant": "nope"})
    assert list(df.columns) == [
        "trial_id",
        "variant",
        "seed",
        "example",
        "label",
        "predicted",
        "p_true",
        "confidence",
    ]
    # Every test example of every trial: the ids are those of the split the worker made
    # (worker.datasets, recomputed here with the comparison's split design and probe).
    d = article["spec"]["dataset"]
    ds = load_dataset("mnist_5k", cache_dir=tmp_path)
    assert set(df.trial_id) == {t["id"] for t in article["trials"]}
    by_id = {t["id"]: t for t in article["trials"]}
    for trial_id, rows in df.groupby("trial_id"):
        split = make_split(
            ds,
            test_split=d["test_split"],
            validation_split=d["validation_split"],
            split_seed=d["split_seed"],
            max_samples=SAMPLES,
            design=article["design"],
            seed=by_id[trial_id]["seed"],
            probe_size=PROBE,
        )
        assert sorted(rows.example) == sorted(split.test_index.tolist()), trial_id
        truth = dict(zip(split.test_index.tolist(), split.y_test.tolist(), strict=True))
        assert [truth[e] for e in rows.example] == rows.label.tolist()
    # The same seed sees the same test examples in every variant (ids line up).
    for _, rows in df.groupby("seed"):
        sets = [frozenset(r.example) for _, r in rows.groupby("variant")]
        assert len(set(sets)) == 1
    assert df.label.between(0, 9).all()
    assert df.predicted.between(0, 9).all()
    assert df.p_true.between(0.0, 1.0).all()
    assert (df.confidence >= df.p_true).all()
    # Accuracy from the predictions is the trial's test accuracy.
    for t in article["trials"]:
        rows = df[df.trial_id == t["id"]]
        assert (rows.predicted == rows.label).mean() == pytest.approx(t["test_accuracy"], abs=1e-6)
    assert as_csv.status_code == 200
    from_csv = pd.read_csv(io.StringIO(as_csv.text))
    pd.testing.assert_frame_equal(from_csv, df, check_dtype=False, atol=1e-4)
    assert as_parquet.headers["content-type"].startswith("application/vnd.apache.parquet")
    from_parquet = pd.read_parquet(io.BytesIO(as_parquet.content))
    pd.testing.assert_frame_equal(from_parquet, df, check_dtype=False, atol=1e-3)
    assert set(pd.DataFrame(one.json()["items"]).variant) == {"conv128"}
    assert assert_problem(bad, 422)["errors"][0]["loc"] == ["query", "variant"]


def test_report_differences_recomputed_from_predictions(
    distributed: Service, article: dict[str, Any]
) -> None:
    with distributed.client() as client:
        df = _predictions(client, article["id"])
    differences = article["report"]["differences"]
    names = [v["name"] for v in article["spec"]["variants"]]
    baseline = article["spec"]["baseline"]  # the baseline's pairs are the tested family
    assert baseline == names[0]
    assert [(d["a"], d["b"]) for d in differences] == [(baseline, n) for n in names[1:]]
    raw = []
    for d in differences:
        a, b = df[df.variant == d["a"]], df[df.variant == d["b"]]
        m = a.merge(b, on=["seed", "example"], suffixes=("_a", "_b"))
        assert d["disagreement"] == pytest.approx((m.predicted_a != m.predicted_b).mean())
        lo, hi = d["disagreement_ci95"]
        assert lo <= d["disagreement"] <= hi
        wrong_a, wrong_b = m.predicted_a != m.label_a, m.predicted_b != m.label_b
        if wrong_a.sum():
            assert d["error_overlap"] == pytest.approx((wrong_a & wrong_b).sum() / wrong_a.sum())
        s0, s1 = a[a.seed == 0], a[a.seed == 1]
        j = s0.merge(s1, on="example")
        assert d["within_a"] == pytest.approx((j.predicted_x != j.predicted_y).mean())
        ps = []
        for _, ms in m.groupby("seed"):
            ca, cb = ms.predicted_a == ms.label_a, ms.predicted_b == ms.label_b
            table = [[(ca & cb).sum(), (ca & ~cb).sum()], [(~ca & cb).sum(), (~ca & ~cb).sum()]]
            off = table[0][1] + table[1][0]
            ps.append(mcnemar(table, exact=True).pvalue if off else 1.0)
        raw.append(min(1.0, len(ps) * min(ps)))
        for row in d["per_class"]:
            sub = a[a.label == row["label"]]
            assert row["accuracy_a"] == pytest.approx((sub.predicted == sub.label).mean())
            sub = b[b.label == row["label"]]
            assert row["accuracy_b"] == pytest.approx((sub.predicted == sub.label).mean())
        assert d["ece_a"] is not None
        assert 0.0 <= d["ece_a"] <= 1.0
        assert d["sentence"].startswith(f"{d['a']} and {d['b']} disagree on ")
        assert d["sentence"].rstrip(".") in article["report"]["verdict"]
        for key in ("cka_last_hidden", "cka_last_hidden_within_a", "cka_last_hidden_within_b"):
            assert d[key] is not None
            assert 0.0 <= d[key] <= 1.0
    adjusted = multipletests(raw, method="holm")[1]
    assert [d["mcnemar_p_adjusted"] for d in differences] == pytest.approx(list(adjusted))


def test_similarity_matrices_and_heatmaps(distributed: Service, article: dict[str, Any]) -> None:
    cid = article["id"]
    with distributed.client() as client:
        sim = client.get(
            f"/v1/comparisons/{cid}/similarity", params={"a": "conv128", "b": "conv64x2"}
        ).json()
        png = client.get(
            f"/v1/comparisons/{cid}/similarity.png", params={"a": "conv128", "b": "conv64x2"}
        )
        bad = client.get(f"/v1/comparisons/{cid}/similarity", params={"a": "conv128", "b": "x"})
    assert sim["layers_a"] == ["conv2d", "dense"]
    assert sim["layers_b"] == ["conv2d", "conv2d_1", "max_pooling2d", "dense"]
    assert sim["probe_size"] == PROBE
    assert sim["seeds"] == [0, 1]
    for key, shape in (("cka", (2, 4)), ("within_a", (2, 2)), ("within_b", (4, 4))):
        m = np.array(sim[key], dtype=float)
        assert m.shape == shape, key
        assert np.all((m >= 0.0) & (m <= 1.0)), (key, m)
        if key != "cka":
            np.testing.assert_allclose(m, m.T, atol=1e-6)
    # The report's last hidden figures are these matrices' cells (the layer before the output).
    [d] = [
        d for d in article["report"]["differences"] if (d["a"], d["b"]) == ("conv128", "conv64x2")
    ]
    assert d["cka_last_hidden"] == pytest.approx(sim["cka"][0][2], abs=1e-3)
    assert d["cka_last_hidden_within_a"] == pytest.approx(sim["within_a"][0][0], abs=1e-3)
    assert d["cka_last_hidden_within_b"] == pytest.approx(sim["within_b"][2][2], abs=1e-3)
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    keep = os.environ.get("ARCHBENCH_KEEP_PNG")
    if keep:  # to look at it
        Path(keep).write_bytes(png.content)
    assert assert_problem(bad, 422)["errors"][0]["loc"] == ["query", "b"]


def test_probe_larger_than_the_test_set_is_refused_before_anything_is_queued(
    distributed: Service, article: dict[str, Any]
) -> None:
    spec = dict(article["spec"], name="too big a probe")
    spec["analysis"] = {"probe_size": 41}  # the test set has 40
    with distributed.client() as client:
        before = client.get("/v1/comparisons").json()["items"]
        body = assert_problem(client.post("/v1/comparisons", json=spec), 422)
        after = client.get("/v1/comparisons").json()["items"]
    assert body["errors"][0]["loc"] == ["body", "analysis", "probe_size"]
    assert [c["id"] for c in after] == [c["id"] for c in before]


def test_client_returns_predictions_as_a_dataframe(
    distributed: Service, article: dict[str, Any]
) -> None:
    from archbench import Client

    cid = article["id"]
    with distributed.client() as client:
        expected = _predictions(client, cid)
    with Client(distributed.url) as ab:
        frame = ab.predictions(cid)
        only = ab.predictions(cid, variant="conv64x2")
        sim = ab.similarity(cid, "conv128", "conv64x2")
    assert isinstance(frame, pd.DataFrame)
    pd.testing.assert_frame_equal(frame, expected)
    assert set(only.variant) == {"conv64x2"}
    assert len(only) == int((expected.variant == "conv64x2").sum())
    assert sim["layers_a"] == ["conv2d", "dense"]
