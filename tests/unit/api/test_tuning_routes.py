"""The tuning section over HTTP, from stored rows: a comparison whose spec has a tuning block
and whose tuning trials (``stage == "tuning"``) are in the database gets the section in its
report (JSON and Markdown), its sentence in the verdict and ``tuning.png``; the tuning trials
stay out of the tested statistics; without a tuning stage ``tuning.png`` is a 404 problem."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from core.status import TrialStage, TrialStatus
from core.store.db import session_scope
from core.store.tables import Comparison, EpochMetric, Trial
from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_api

TUNING: dict[str, Any] = {
    "space": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}},
    "trials": 3,
    "sampler": "random",
    "metric": "val_accuracy",
}
SCORES = {"a": [0.61, 0.83, 0.74], "b": [0.52, 0.55, 0.90]}


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


def _submit(client: TestClient) -> str:
    resp = client.post(
        "/v1/comparisons", json=tiny_spec(seeds=[0, 1], variants=[small_mlp("a"), small_mlp("b")])
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _add_tuning(comparison_id: str) -> None:
    """The tuning block in the stored spec, and three succeeded tuning trials per variant
    with their configurations, scores and per-epoch validation accuracies."""
    with session_scope() as s:
        comparison = s.get(Comparison, comparison_id)
        assert comparison is not None
        comparison.spec = comparison.spec.model_copy(update={"tuning": TUNING})
        for index, (variant, scores) in enumerate(SCORES.items()):
            for k, score in enumerate(scores):
                trial = Trial(
                    comparison_id=comparison_id,
                    variant=variant,
                    variant_index=index,
                    seed=1000 + k,
                    stage=TrialStage.TUNING,
                    config={"learning_rate": 10 ** (-3 + 0.5 * k)},
                    status=TrialStatus.SUCCEEDED,
                    best_val_accuracy=score,
                    epochs_planned=2,
                    epochs_done=2,
                )
                s.add(trial)
                s.flush()
                for epoch, value in ((1, score - 0.1), (2, score)):
                    s.add(
                        EpochMetric(trial_id=trial.id, epoch=epoch, values={"val_accuracy": value})
                    )


def test_the_report_carries_the_tuning_section_from_the_stored_trials(client: TestClient) -> None:
    cid = _submit(client)
    before = client.get(f"/v1/comparisons/{cid}/report").json()
    assert before["tuning"] is None
    _add_tuning(cid)
    report = client.get(f"/v1/comparisons/{cid}/report").json()
    section = report["tuning"]
    assert [v["name"] for v in section["variants"]] == ["a", "b"]
    a, b = section["variants"]
    assert (a["selected"], a["validation_score"]) == ({"learning_rate": 10**-2.5}, 0.83)
    assert (b["selected"], b["validation_score"]) == ({"learning_rate": 10**-2}, 0.90)
    assert [p["trials"] for p in a["expected_best"]] == [1, 2, 3]
    assert a["expected_best"][0]["mean"] == pytest.approx(sum(SCORES["a"]) / 3)
    assert report["verdict"].endswith(section["verdict"])
    assert section["verdict"].startswith("The comparison was made at tuned settings with equal")
    # The tuning trials are not seeds of the tested comparison.
    assert [v["n"] + v["n_running"] for v in report["variants"]] == [2, 2]
    with session_scope() as s:
        stages = s.scalars(select(Trial.stage).where(Trial.comparison_id == cid)).all()
    assert sorted(stages).count("tuning") == 6
    md = client.get(f"/v1/comparisons/{cid}/report?format=md").text
    assert "## Tuning" in md


def test_tuning_png_draws_the_budget_curves(client: TestClient, tmp_path: Path) -> None:
    cid = _submit(client)
    _add_tuning(cid)
    resp = client.get(f"/v1/comparisons/{cid}/tuning.png")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    (tmp_path / "tuning.png").write_bytes(resp.content)
    image = np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGB"))
    assert image.shape == (500, 900, 3)
    # Not blank: the two lines' colours cover a share of the plot.
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    assert (image != 255).any(axis=2).mean() > 0.02


def test_tuning_png_without_a_tuning_stage_is_a_404_problem(client: TestClient) -> None:
    cid = _submit(client)
    body = assert_problem(client.get(f"/v1/comparisons/{cid}/tuning.png"), 404)
    assert "has no tuning stage" in body["detail"]


def test_metrics_tell_tuning_epochs_from_tested_ones(client: TestClient) -> None:
    """Every epoch row of /metrics (JSON, CSV, Parquet) names its trial's stage and replicate:
    the tuning trials' validation curves are not mistaken for the tested trials'."""
    cid = _submit(client)
    _add_tuning(cid)
    items = client.get(f"/v1/comparisons/{cid}/metrics").json()["items"]
    with session_scope() as s:
        stage_of = dict(
            s.execute(select(Trial.id, Trial.stage).where(Trial.comparison_id == cid))
            .tuples()
            .all()
        )
    tuning = [m for m in items if stage_of[m["trial_id"]] == "tuning"]
    assert len(tuning) == 12  # 2 variants x 3 tuning trials x 2 epochs
    assert all(m["stage"] == stage_of[m["trial_id"]] and m["replicate"] == 0 for m in items)
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/v1/comparisons/{cid}/metrics?format=csv").text))
    )
    assert sorted(r["stage"] for r in rows) == sorted(m["stage"] for m in items)
    table = pq.read_table(
        io.BytesIO(client.get(f"/v1/comparisons/{cid}/metrics?format=parquet").content)
    )
    assert sorted(table.column("stage").to_pylist()) == sorted(m["stage"] for m in items)
    assert set(table.column("replicate").to_pylist()) == {0}
