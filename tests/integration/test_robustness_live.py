"""Robustness end to end on a real worker (Postgres, Redis, tiny data, one epoch, two
corruptions at one severity): every trial is scored on each corrupted copy, the copies are
made once per data seed and shared by its variants, ``/robustness`` serves the scores, the
report's figures are recomputed here from it, and a reused trial brings its scores along."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.support.helpers import small_cnn, small_mlp, tiny_spec, wait_done
from tests.support.services import Service

pytestmark = [pytest.mark.services, pytest.mark.worker]

CORRUPTIONS = ["impulse_noise", "rotate"]
SEEDS = [0, 1, 2]


def _spec(name: str) -> dict[str, Any]:
    spec = tiny_spec(name, seeds=SEEDS, epochs=1, samples=200, variants=[small_cnn(), small_mlp()])
    spec["baseline"] = "cnn"
    spec["reuse"] = True  # the second run reads the first's trials
    spec["analysis"] = {"predictions": False, "similarity": False}
    spec["robustness"] = {"corruptions": CORRUPTIONS, "severities": [3]}
    return spec


def _run(client: Any, spec: dict[str, Any]) -> str:
    resp = client.post("/v1/comparisons", json=spec)
    assert resp.status_code == 202, resp.text
    cid: str = resp.json()["id"]
    done = wait_done(client, cid, timeout=600)
    assert done["status"] == "succeeded", done
    return cid


@pytest.fixture(scope="module")
def robust(distributed: Service) -> dict[str, Any]:
    with distributed.client() as client:
        cid = _run(client, _spec("robust live"))
        rows = client.get(f"/v1/comparisons/{cid}/robustness").json()["items"]
        trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
        report = client.get(f"/v1/comparisons/{cid}/report").json()
    return {"id": cid, "rows": pd.DataFrame(rows), "trials": trials, "report": report}


def test_every_trial_is_scored_on_every_copy(robust: dict[str, Any]) -> None:
    df = robust["rows"]
    by_id = {t["id"]: t for t in robust["trials"]}
    assert set(df.trial_id) == set(by_id)
    for trial_id, rows in df.groupby("trial_id"):
        assert sorted(zip(rows.corruption, rows.severity, strict=True)) == [
            ("clean", 0),
            ("impulse_noise", 3),
            ("rotate", 3),
        ]
        clean = rows[rows.corruption == "clean"].iloc[0]
        assert clean.accuracy == pytest.approx(by_id[str(trial_id)]["test_accuracy"])
    assert set(df.n) == {40}  # 200 samples x 0.2 test split
    assert df.accuracy.between(0, 1).all()


def test_a_seeds_variants_share_its_corrupted_copies(
    distributed: Service, robust: dict[str, Any]
) -> None:
    copies = sorted((distributed.data_dir / "corruptions").glob("*.npy"))
    # One copy per (data seed, corruption), not per trial: the variants read the same file.
    assert len(copies) == len(SEEDS) * len(CORRUPTIONS)
    assert {p.name.split("-")[1] for p in copies} == {str(s) for s in SEEDS}
    assert "scored on 2 corrupted copies" in distributed.log("worker")


def test_the_reports_figures_are_recomputed_from_robustness(robust: dict[str, Any]) -> None:
    section = robust["report"]["robustness"]
    df = robust["rows"]
    corrupted = df[df.corruption != "clean"].groupby(["variant", "seed"]).accuracy.mean()
    clean = df[df.corruption == "clean"].set_index(["variant", "seed"]).accuracy
    (pair,) = section["pairs"]
    assert (pair["a"], pair["b"]) == ("cnn", "mlp")
    d = (corrupted.loc["cnn"] - corrupted.loc["mlp"]).to_numpy()
    assert pair["corrupted"]["diff"] == pytest.approx(d.mean())
    if np.ptp(d) > 0:
        p = stats.ttest_rel(corrupted.loc["cnn"], corrupted.loc["mlp"]).pvalue
        assert pair["corrupted"]["p_adjusted"] == pytest.approx(p)  # a family of one
    drops = clean - corrupted
    by_name = {v["name"]: v for v in section["variants"]}
    for v in ("cnn", "mlp"):
        assert by_name[v]["drop"] == pytest.approx(drops.loc[v].mean())
    err = 1 - df[df.corruption != "clean"].groupby(["variant", "corruption"]).accuracy.mean()
    ce = [err.loc["mlp", c] / err.loc["cnn", c] for c in CORRUPTIONS if err.loc["cnn", c] > 0]
    assert by_name["mlp"]["mce"] == pytest.approx(np.mean(ce))
    assert pair["sentence"] in robust["report"]["verdict"]


def test_a_reused_trial_serves_the_scores_it_was_reused_from(
    distributed: Service, robust: dict[str, Any]
) -> None:
    with distributed.client() as client:
        again = _run(client, _spec("robust live again"))
        trials = client.get(f"/v1/comparisons/{again}/trials").json()["items"]
        rows = pd.DataFrame(client.get(f"/v1/comparisons/{again}/robustness").json()["items"])
    assert all(t["reused_from"] for t in trials)
    first = robust["rows"].set_index(["variant", "seed", "corruption"]).accuracy.sort_index()
    second = rows.set_index(["variant", "seed", "corruption"]).accuracy.sort_index()
    pd.testing.assert_series_equal(first, second)
