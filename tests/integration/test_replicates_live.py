"""Replicates on a real worker (Postgres, Redis, a worker process; tiny data, 1 epoch): a
comparison with ``analysis.replicates: 1`` trains a replicate of every variant at every seed,
on the same data seed with another initialisation; the report's scores leave them out, and
its differences use them as the control (recomputed here from ``GET /predictions``); an
identical comparison reuses each trial, replicates included, from one of the same seed and
replicate."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.support.helpers import small_mlp, tiny_spec, wait_done
from tests.support.services import Service

pytestmark = [pytest.mark.services, pytest.mark.worker]


def _spec(reuse: bool) -> dict[str, Any]:
    spec = tiny_spec("replicates live", seeds=[0, 1, 2], epochs=1, samples=200)
    spec["variants"] = [small_mlp("a"), small_mlp("b")]
    spec["analysis"] = {"predictions": True, "similarity": True, "probe_size": 16, "replicates": 1}
    spec["reuse"] = reuse
    return spec


@pytest.fixture(scope="module")
def comparison(distributed: Service) -> dict[str, Any]:
    with distributed.client() as client:
        resp = client.post("/v1/comparisons", json=_spec(reuse=False))
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        done = wait_done(client, cid, timeout=600)
        assert done["status"] == "succeeded", done
        trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
        report = client.get(f"/v1/comparisons/{cid}/report").json()
        predictions = pd.DataFrame(client.get(f"/v1/comparisons/{cid}/predictions").json()["items"])
        similarity = client.get(
            f"/v1/comparisons/{cid}/similarity", params={"a": "a", "b": "b"}
        ).json()
    return {
        "id": cid,
        "done": done,
        "trials": trials,
        "report": report,
        "predictions": predictions,
        "similarity": similarity,
    }


def test_a_replicate_of_every_variant_at_every_seed_is_trained(comparison: dict[str, Any]) -> None:
    assert comparison["done"]["progress"]["trials_total"] == 12
    trials = comparison["trials"]
    assert sorted((t["variant"], t["seed"], t["replicate"]) for t in trials) == sorted(
        (v, s, r) for v in "ab" for s in (0, 1, 2) for r in (0, 1)
    )
    assert {t["status"] for t in trials} == {"succeeded"}
    # Same data seed, another initialisation: the replicate's probabilities are its own.
    p = comparison["predictions"].merge(
        pd.DataFrame(trials)[["id", "replicate"]], left_on="trial_id", right_on="id"
    )
    for (variant, seed), g in p.groupby(["variant", "seed"]):
        first = g[g.replicate == 0].set_index("example").p_true
        second = g[g.replicate == 1].set_index("example").p_true
        assert list(first.index) == list(second.index), (variant, seed)  # the same test split
        assert (first != second).any(), (variant, seed)


def test_the_scores_leave_the_replicates_out_and_the_differences_use_them(
    comparison: dict[str, Any],
) -> None:
    report = comparison["report"]
    assert {v["name"]: v["n"] for v in report["variants"]} == {"a": 3, "b": 3}
    [d] = report["differences"]
    assert d["control"] == "replicates"
    assert d["control_seeds"] == [0, 1, 2]
    # Recomputed from /predictions: each variant's trial against its replicate, same seed.
    p = comparison["predictions"].merge(
        pd.DataFrame(comparison["trials"])[["id", "replicate"]], left_on="trial_id", right_on="id"
    )
    for variant in "ab":
        x = p[p.variant == variant]
        j = x[x.replicate == 0].merge(x[x.replicate == 1], on=["seed", "example"])
        assert d[f"within_{variant}"] == pytest.approx((j.predicted_x != j.predicted_y).mean())
    main = p[p.replicate == 0]
    cross = main[main.variant == "a"].merge(main[main.variant == "b"], on=["seed", "example"])
    assert d["disagreement"] == pytest.approx((cross.predicted_x != cross.predicted_y).mean())
    assert d["disagreement_ci95_seeds"] is not None
    assert "two initialisations of one model on the same data" in d["sentence"]
    assert comparison["similarity"]["control"] == "replicates"


def test_an_identical_comparison_reuses_each_trial_from_its_own_counterpart(
    distributed: Service, comparison: dict[str, Any]
) -> None:
    first = {t["id"]: (t["variant"], t["seed"], t["replicate"]) for t in comparison["trials"]}
    with distributed.client() as client:
        resp = client.post("/v1/comparisons", json=_spec(reuse=True))
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        done = wait_done(client, cid, timeout=120)
        trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
    assert done["status"] == "succeeded", done
    assert len(trials) == 12
    # a and b have the same layers, so either may be the source; the seed and the replicate
    # (the initialisation seed) must be the trial's own.
    for t in trials:
        assert first[t["reused_from"]][1:] == (t["seed"], t["replicate"])
