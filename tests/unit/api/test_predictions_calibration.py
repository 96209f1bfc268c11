"""The report's calibration figures recomputed from ``GET /predictions`` alone.

A comparison is submitted through the api (TestClient on SQLite, no worker), its trials are
ended by hand with stored predictions (what worker.analysis writes), and each variant's ECE
and NLL in the report are recomputed here from the served ``p_true`` and ``confidence``, with
binning written out again (not core.report.differences' function), in JSON, CSV and Parquet.
``?probabilities=full`` serves the whole vector, from which both columns follow.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from core.store.db import session_scope
from core.store.tables import Comparison, Trial, utcnow
from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_api

SEEDS = [0, 1, 2]
N_TEST = 60
CLASSES = 10


@pytest.fixture
def ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str]]:
    """A finished comparison of two variants x three seeds whose trials kept predictions."""
    from core.report.similarity import encode_predictions

    with in_process_api("sqlite", tmp_path, monkeypatch) as client:
        spec = tiny_spec("calibration", seeds=SEEDS, variants=[small_mlp("a"), small_mlp("b")])
        spec["analysis"] = {"predictions": True, "similarity": False}
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        rng = np.random.default_rng(11)
        with session_scope() as s:
            trials = s.query(Trial).filter(Trial.comparison_id == cid).all()
            for t in trials:
                examples = np.arange(N_TEST) + 1000 * t.seed
                labels = rng.integers(0, CLASSES, N_TEST)
                sharp = 3.0 if t.variant == "a" else 0.7  # one over-, one under-confident
                logits = rng.normal(size=(N_TEST, CLASSES)) * sharp
                logits[np.arange(N_TEST), labels] += 1.5
                probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
                s.add(encode_predictions(t.id, examples, labels, probs))
                t.status = "succeeded"
                t.epochs_done = t.epochs_planned
                t.finished_at = utcnow()
                t.test_accuracy = float(np.mean(probs.argmax(axis=1) == labels))
                t.test_loss = float(-np.mean(np.log(probs[np.arange(N_TEST), labels])))
            s.execute(
                update(Comparison)
                .where(Comparison.id == cid)
                .values(status="succeeded", finished_at=utcnow())
            )
        yield client, cid


def _ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE, written out: equal-width bins on [0, 1], 1.0 in the last bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence >= lo) & ((confidence < hi) | ((hi == 1.0) & (confidence <= hi)))
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            total += inside.mean() * gap
    return float(total)


def _per_variant(df: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """variant -> (ECE, NLL), each computed per trial and averaged over its seeds."""
    out = {}
    for variant, rows in df.groupby("variant"):
        eces, nlls = [], []
        for _, trial in rows.groupby("trial_id"):
            correct = (trial.predicted == trial.label).to_numpy(dtype=float)
            eces.append(_ece(trial.confidence.to_numpy(dtype=float), correct))
            nlls.append(float(-np.mean(np.log(np.clip(trial.p_true.to_numpy(float), 1e-12, 1)))))
        out[str(variant)] = (float(np.mean(eces)), float(np.mean(nlls)))
    return out


def test_report_ece_and_nll_recomputed_from_predictions(ended: tuple[TestClient, str]) -> None:
    client, cid = ended
    report = client.get(f"/v1/comparisons/{cid}/report").json()
    [d] = report["differences"]
    assert (d["a"], d["b"]) == ("a", "b")
    frames = {
        "json": pd.DataFrame(client.get(f"/v1/comparisons/{cid}/predictions").json()["items"]),
        "csv": pd.read_csv(
            io.StringIO(client.get(f"/v1/comparisons/{cid}/predictions?format=csv").text)
        ),
        "parquet": pd.read_parquet(
            io.BytesIO(client.get(f"/v1/comparisons/{cid}/predictions?format=parquet").content)
        ),
    }
    for how, df in frames.items():
        assert list(df.columns) == [
            "trial_id",
            "variant",
            "seed",
            "example",
            "label",
            "predicted",
            "p_true",
            "confidence",
        ], how
        assert len(df) == 2 * len(SEEDS) * N_TEST, how
        got = _per_variant(df)
        # Exactly the report's figures: the served values are the stored ones, unrounded.
        assert got["a"] == pytest.approx((d["ece_a"], d["nll_a"]), rel=1e-9, abs=1e-12), how
        assert got["b"] == pytest.approx((d["ece_b"], d["nll_b"]), rel=1e-9, abs=1e-12), how
    # The two variants are told apart (one over-confident): the check is not vacuous.
    assert abs(d["ece_a"] - d["ece_b"]) > 0.05
    # Rounded to 4 decimals, as the rows used to be served, ECE does not come out exactly.
    rounded = frames["json"].assign(confidence=frames["json"].confidence.round(4))
    assert _per_variant(rounded)["a"][0] != pytest.approx(d["ece_a"], rel=1e-9, abs=1e-12)


def test_full_probabilities_on_request(ended: tuple[TestClient, str]) -> None:
    client, cid = ended
    items: list[dict[str, Any]] = client.get(
        f"/v1/comparisons/{cid}/predictions", params={"probabilities": "full", "variant": "b"}
    ).json()["items"]
    assert len(items) == len(SEEDS) * N_TEST
    for row in items:
        probs = np.array(row["probabilities"])
        assert probs.shape == (CLASSES,)
        assert probs.sum() == pytest.approx(1.0, abs=5e-3)  # 16-bit floats, as stored
        assert probs[row["label"]] == row["p_true"]
        assert probs.max() == row["confidence"]
        assert int(np.argmax(probs)) == row["predicted"]
    as_csv = pd.read_csv(
        io.StringIO(
            client.get(
                f"/v1/comparisons/{cid}/predictions",
                params={"probabilities": "full", "format": "csv"},
            ).text
        )
    )
    assert json.loads(as_csv.probabilities.iloc[0]) == pytest.approx(
        client.get(f"/v1/comparisons/{cid}/predictions", params={"probabilities": "full"}).json()[
            "items"
        ][0]["probabilities"]
    )
    as_parquet = pd.read_parquet(
        io.BytesIO(
            client.get(
                f"/v1/comparisons/{cid}/predictions",
                params={"probabilities": "full", "format": "parquet", "variant": "b"},
            ).content
        )
    )
    assert [list(p) for p in as_parquet.probabilities] == [r["probabilities"] for r in items]
    bad = client.get(f"/v1/comparisons/{cid}/predictions", params={"probabilities": "all"})
    assert assert_problem(bad, 422)["errors"][0]["loc"] == ["query", "probabilities"]
