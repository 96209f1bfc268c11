"""Reuse by reference and the tenant's storage quota, through the submit route on SQLite: a
reused trial refers to the stored analysis of the trial it reuses (no copy), what a tenant
stores is counted at submit with what the comparison would add, and the stored rows go with
the last trial that refers to them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from core.report.similarity import load_predictions
from core.store.db import session_scope
from core.store.tables import Comparison, Trial, TrialLayerGram, TrialPrediction
from core.trials.reuse import collect_unreferenced
from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.reuse_rows import finish_with_analysis
from tests.support.services import in_process_api, queued_messages

MIB = 1024 * 1024
# mnist_5k at 5,000 samples and test_split 0.2: 1,000 test examples of 10 classes, the default
# probe of 256, and small_mlp's two Dense layers analysed.
N_TEST, PROBE, GRAMS = 1000, 256, 2
PER_TRIAL = N_TEST * (8 + 4 + 4 + 2 * 10) + GRAMS * PROBE * (PROBE + 1)  # 167,584 bytes
ROW, EPOCH = 2048, 512


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ARCHBENCH_TENANT_STORAGE_MB", "1")
    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


def _spec(name: str, seeds: list[int], *, reuse: bool = True) -> dict[str, Any]:
    wider = small_mlp("b")
    wider["layers"][1] = {**wider["layers"][1], "units": 24}
    spec = tiny_spec(name, seeds=seeds, epochs=1, samples=5000, variants=[small_mlp("a"), wider])
    return {**spec, "reuse": reuse}


def _count(table: type[Any]) -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def _mb(n: int) -> str:
    return f"{n / MIB:,.1f}"


def test_a_reused_comparison_refers_to_the_stored_analysis_and_the_quota_counts_it_once(
    client: TestClient, tmp_path: Path
) -> None:
    first = client.post("/v1/comparisons", json=_spec("first", [0, 1]))
    assert first.status_code == 202, first.text  # 4 x 167,584 + rows: 0.65 of 1 MiB
    written = finish_with_analysis(
        first.json()["id"], n_test=N_TEST, probe=PROBE, grams=GRAMS, epochs=1
    )
    assert written == 4 * PER_TRIAL
    rows = (_count(TrialPrediction), _count(TrialLayerGram))

    again = client.post("/v1/comparisons", json=_spec("again", [0, 1]))
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "succeeded"
    assert (_count(TrialPrediction), _count(TrialLayerGram)) == rows  # nothing copied
    with session_scope() as s:
        refs = s.execute(
            select(Trial.trial_hash, Trial.analysis_id).where(
                Trial.comparison_id == again.json()["id"]
            )
        ).all()
        sources = s.execute(
            select(Trial.trial_hash, Trial.id).where(Trial.comparison_id == first.json()["id"])
        ).all()
        assert len(refs) == 4
        assert dict(refs) == dict(sources)
        mine = {(p.variant, p.seed): p for p in load_predictions(s, again.json()["id"])}
        theirs = {(p.variant, p.seed): p for p in load_predictions(s, first.json()["id"])}
    assert mine.keys() == theirs.keys()
    assert len(mine) == 4
    for key, p in mine.items():
        assert np.array_equal(p.p_true, theirs[key].p_true)
        assert p.trial_id != theirs[key].trial_id

    # Two comparisons of 4 trials each, one analysis: what the tenant stores.
    used = written + 8 * (ROW + EPOCH)
    sent = len(queued_messages(tmp_path / "broker.db"))
    grow = client.post("/v1/comparisons", json=_spec("grow", [0, 1, 2, 3]))
    problem = assert_problem(grow, 429)
    adds = 4 * PER_TRIAL + 8 * (ROW + EPOCH)  # 4 trials to train, 8 trials' rows
    assert problem["type"].endswith("/storage-quota-exceeded")
    assert f"would store about {_mb(adds)} MB" in problem["detail"]
    assert f"the tenant stores {_mb(used)} MB of its 1 MB quota" in problem["detail"]
    assert f"{_mb(MIB - used)} MB left" in problem["detail"]
    assert "ARCHBENCH_TENANT_STORAGE_MB" in problem["detail"]
    # Trained again instead of reused, the same 4 trials do not fit either.
    fresh = client.post("/v1/comparisons", json=_spec("fresh", [0, 1], reuse=False))
    assert re.search(r"would store about 0\.6 MB", assert_problem(fresh, 429)["detail"])
    assert _count(Comparison) == 2
    assert _count(Trial) == 8
    assert len(queued_messages(tmp_path / "broker.db")) == sent


def test_stored_analysis_goes_with_the_last_trial_that_refers_to_it(client: TestClient) -> None:
    first = client.post("/v1/comparisons", json=_spec("first", [0]))
    finish_with_analysis(first.json()["id"], n_test=N_TEST, probe=PROBE, grams=GRAMS)
    again = client.post("/v1/comparisons", json=_spec("again", [0])).json()
    assert again["status"] == "succeeded"
    with session_scope() as s:
        s.execute(delete(Comparison).where(Comparison.id == first.json()["id"]))
    with session_scope() as s:
        assert collect_unreferenced(s) == 0  # the reusing trials still refer to it
        assert len(load_predictions(s, again["id"])) == 2
    assert (_count(TrialPrediction), _count(TrialLayerGram)) == (2, 4)
    with session_scope() as s:
        s.execute(delete(Comparison).where(Comparison.id == again["id"]))
    with session_scope() as s:
        assert collect_unreferenced(s) == 6
    assert (_count(TrialPrediction), _count(TrialLayerGram)) == (0, 0)
