"""Robustness through the api in process (TestClient on SQLite, no worker): the spec's
``robustness`` refused where it cannot apply, stored with the dataset's defaults, counted in
the submit's estimate; ``/robustness`` as JSON, CSV and Parquet from rows written here as the
worker writes them; the report's section and ``/robustness.png``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from core.config import Settings
from core.data.corruptions import DEFAULT_CORRUPTIONS
from core.datasets import BUILTIN_DATASETS, DatasetInfo
from core.spec import ComparisonSpec
from core.store.db import session_scope
from core.store.tables import Trial, TrialCorruptionScore
from core.trials.advice import estimated_seconds, robustness_seconds
from core.trials.robustness_checks import robustness_errors
from core.trials.validation import validate_comparison
from tests.support.helpers import assert_problem, small_cnn, small_mlp, tiny_spec


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from tests.support.services import in_process_api

    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


def _spec(robustness: Any, seeds: list[int] | None = None) -> dict[str, Any]:
    spec = tiny_spec("robust", seeds=seeds or [0, 1, 2], variants=[small_cnn("a"), small_mlp("b")])
    spec["robustness"] = robustness
    return spec


def test_unknown_corruptions_and_severities_are_located(client: TestClient) -> None:
    body = _spec({"corruptions": ["rotate"], "severities": [2, 6]})
    problem = assert_problem(client.post("/v1/comparisons", json=body), 422)
    assert ["body", "robustness", "severities", 1] in [e["loc"] for e in problem["errors"]]
    body = _spec({"corruptions": ["rotate", "sepia"]})
    problem = assert_problem(client.post("/v1/comparisons", json=body), 422)
    locs = {tuple(e["loc"]): e["msg"] for e in problem["errors"]}
    assert "unknown corruption 'sepia'" in locs[("body", "robustness", "corruptions", 1)]
    repeated = _spec({"corruptions": ["rotate", "rotate"]})
    problem = assert_problem(client.post("/v1/comparisons", json=repeated), 422)
    assert ["body", "robustness", "corruptions"] in [e["loc"] for e in problem["errors"]]


def test_data_that_are_not_images_are_refused_with_the_reason() -> None:
    flat = DatasetInfo("tabular", (20,), 3, 500, "a table of 20 features")
    spec = ComparisonSpec.model_validate(_spec({}))
    errors = robustness_errors(spec, flat, ["body"])
    assert [e["loc"] for e in errors] == [["body", "robustness"]]
    assert "apply to images" in errors[0]["msg"]
    assert "shape 20" in errors[0]["msg"]
    assert robustness_errors(spec, BUILTIN_DATASETS["digits"], ["body"]) == []
    assert robustness_errors(spec, BUILTIN_DATASETS["cifar10"], ["body"]) == []


def test_the_stored_spec_names_the_default_subset(client: TestClient) -> None:
    resp = client.post("/v1/comparisons", json=_spec({}))
    assert resp.status_code == 202, resp.text
    stored = client.get(f"/v1/comparisons/{resp.json()['id']}").json()["spec"]
    assert stored["robustness"] == {
        "corruptions": list(DEFAULT_CORRUPTIONS["grey"]),
        "severities": [3],
    }
    given = client.post("/v1/comparisons", json=_spec({"severities": [1, 5]}))
    stored = client.get(f"/v1/comparisons/{given.json()['id']}").json()["spec"]
    assert stored["robustness"]["severities"] == [1, 5]
    plain = client.post("/v1/comparisons", json=tiny_spec("plain"))
    assert "robustness" not in client.get(f"/v1/comparisons/{plain.json()['id']}").json()["spec"]


def test_the_submit_estimate_counts_the_scoring() -> None:
    with_it = ComparisonSpec.model_validate(_spec({"corruptions": ["rotate"], "severities": [1]}))
    without = ComparisonSpec.model_validate(_spec(None))
    mnist = BUILTIN_DATASETS["mnist_5k"]
    analyses = validate_comparison(without, Settings()).analyses
    flops = sum(a.flops for a in analyses.values())
    extra = robustness_seconds(with_it, mnist, analyses)
    # 60 test images (300 samples x 0.2), one copy: made at 1e-4 s each, and one forward pass
    # of each variant over each.
    assert extra == pytest.approx(60 * 1e-4 + flops * 60 / 2e10)
    assert robustness_seconds(without, mnist, analyses) == 0.0
    assert estimated_seconds(with_it, mnist, analyses) == pytest.approx(
        estimated_seconds(without, mnist, analyses) + 3 * extra
    )


def _finish(cid: str) -> list[tuple[str, str, int]]:
    """Succeed every trial with scores under two copies, as a worker would store them:
    a's accuracy 0.9 clean, b's 0.8; corrupted 0.1 and 0.2 lower at severity 1 and 3."""
    out = []
    with session_scope() as s:
        trials = s.execute(select(Trial.id, Trial.variant, Trial.seed)).all()
        for tid, variant, seed in trials:
            clean = (0.9 if variant == "a" else 0.8) + 0.01 * seed
            s.execute(
                update(Trial)
                .where(Trial.id == tid)
                .values(status="succeeded", test_accuracy=clean, test_loss=0.3)
            )
            for severity, lost in ((1, 0.1), (3, 0.2)):
                s.add(
                    TrialCorruptionScore(
                        trial_id=tid,
                        corruption="rotate",
                        severity=severity,
                        accuracy=clean
                        - lost * (1 if variant == "a" else 2)
                        + 0.004 * ((seed * (2 if variant == "a" else 1)) % 3),
                        loss=None,
                        n=60,
                    )
                )
            out.append((tid, variant, int(seed)))
    return out


def test_robustness_is_served_as_json_csv_and_parquet(client: TestClient) -> None:
    body = _spec({"corruptions": ["rotate"], "severities": [1, 3]})
    cid = client.post("/v1/comparisons", json=body).json()["id"]
    assert client.get(f"/v1/comparisons/{cid}/robustness").json()["items"] == []
    trials = _finish(cid)
    items = client.get(f"/v1/comparisons/{cid}/robustness").json()["items"]
    assert len(items) == len(trials) * 3  # clean, severity 1, severity 3
    first = items[0]
    assert first["corruption"] == "clean"
    assert first["severity"] == 0
    assert first["n"] == 60
    as_csv = client.get(f"/v1/comparisons/{cid}/robustness", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    as_parquet = client.get(
        f"/v1/comparisons/{cid}/robustness",
        headers={"Accept": "application/vnd.apache.parquet"},
    )
    frames = [
        pd.DataFrame(items),
        pd.read_csv(io.StringIO(as_csv.text)),
        pd.read_parquet(io.BytesIO(as_parquet.content)),
    ]
    for df in frames:
        assert list(df.columns) == [
            "trial_id",
            "variant",
            "seed",
            "corruption",
            "severity",
            "accuracy",
            "loss",
            "n",
        ]
        assert df.accuracy.tolist() == pytest.approx(frames[0].accuracy.tolist())
    assert client.get("/v1/comparisons/nope/robustness").status_code == 404


def test_the_report_answers_more_robust_from_the_served_rows(client: TestClient) -> None:
    body = _spec({"corruptions": ["rotate"], "severities": [1, 3]})
    body["baseline"] = "a"
    cid = client.post("/v1/comparisons", json=body).json()["id"]
    _finish(cid)
    report = client.get(f"/v1/comparisons/{cid}/report").json()
    section = report["robustness"]
    df = pd.DataFrame(client.get(f"/v1/comparisons/{cid}/robustness").json()["items"])
    corrupted = df[df.corruption != "clean"].groupby("variant").accuracy.mean()
    by_name = {v["name"]: v for v in section["variants"]}
    assert by_name["a"]["corrupted_accuracy"] == pytest.approx(corrupted["a"])
    assert by_name["b"]["corrupted_accuracy"] == pytest.approx(corrupted["b"])
    # b loses twice a's accuracy, and it is the less accurate on clean data too.
    pair = section["pairs"][0]
    assert (pair["a"], pair["b"], pair["degrades_less"]) == ("a", "b", "a")
    assert pair["sentence"] in report["verdict"]
    assert report["answers"]["robustness"] == pair["sentence"]
    # mCE: errors summed over severities, relative to a's.
    err = 1 - df[df.corruption == "rotate"].groupby("variant").accuracy.mean()
    assert by_name["b"]["mce"] == pytest.approx(err["b"] / err["a"])
    md = client.get(f"/v1/comparisons/{cid}/report", params={"format": "md"}).text
    assert "## More robust?" in md
    png = client.get(f"/v1/comparisons/{cid}/robustness.png")
    assert png.status_code == 200
    assert png.content.startswith(b"\x89PNG")
