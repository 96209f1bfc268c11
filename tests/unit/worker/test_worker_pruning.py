"""The worker's pruning question, over the stored rows: a tuning trial whose validation score
after an epoch is below the median of its variant's finished tuning trials at that epoch is
stopped (``worker.tuning.prune_now``), one above it trains on, and nothing is pruned without a
pruner or in another variant's light."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.status import TrialStage, TrialStatus
from core.store.db import session_scope
from core.store.tables import Comparison, EpochMetric, Trial
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import in_process_api
from worker.tuning import prune_now

FINISHED = [0.80, 0.84, 0.86]  # the variant's finished tuning trials, epoch 1


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


def _comparison(client: TestClient, pruner: str | None) -> str:
    body = tiny_spec("pruned", seeds=[0, 1], epochs=3, variants=[small_mlp("a"), small_mlp("b")])
    body["dataset"] = {**body["dataset"], "split": "fixed"}
    body["tuning"] = {
        "space": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}},
        "trials": 4,
        "epochs": 2,
        "sampler": "random",
        "pruner": pruner,
    }
    resp = client.post("/v1/comparisons", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _tuning_trial(
    comparison_id: str, variant: str, seed: int, status: str, scores: list[float]
) -> str:
    with session_scope() as s:
        trial = Trial(
            comparison_id=comparison_id,
            variant=variant,
            variant_index=0 if variant == "a" else 1,
            seed=seed,
            stage=TrialStage.TUNING,
            config={"learning_rate": 0.0001 * (1 + seed % 500)},
            status=status,
            epochs_planned=2,
            epochs_done=len(scores),
        )
        s.add(trial)
        s.flush()
        for epoch, value in enumerate(scores, start=1):
            s.add(EpochMetric(trial_id=trial.id, epoch=epoch, values={"val_accuracy": value}))
        return str(trial.id)


def _ask(comparison_id: str, trial_id: str) -> bool:
    with session_scope() as s:
        comparison = s.get(Comparison, comparison_id)
        assert comparison is not None
        spec = comparison.spec
        config: dict[str, Any] | None = s.get(Trial, trial_id).config  # type: ignore[union-attr]
    return prune_now(spec, comparison_id, trial_id, config)


def _finished(comparison_id: str, variant: str = "a") -> None:
    for k, score in enumerate(FINISHED):
        _tuning_trial(comparison_id, variant, 9000 + k, TrialStatus.SUCCEEDED, [score, score])


def test_a_trial_below_the_median_is_pruned_one_above_trains_on(client: TestClient) -> None:
    cid = _comparison(client, "median")
    _finished(cid)
    low = _tuning_trial(cid, "a", 8000, TrialStatus.RUNNING, [0.50])
    high = _tuning_trial(cid, "a", 8001, TrialStatus.RUNNING, [0.90])
    assert _ask(cid, low) is True
    assert _ask(cid, high) is False


def test_no_pruner_prunes_nothing(client: TestClient) -> None:
    cid = _comparison(client, None)
    _finished(cid)
    low = _tuning_trial(cid, "a", 8000, TrialStatus.RUNNING, [0.50])
    assert _ask(cid, low) is False


def test_another_variants_trials_are_not_the_yardstick(client: TestClient) -> None:
    """Only the variant's own tuning trials judge it: b's strong trials prune nothing of a."""
    cid = _comparison(client, "median")
    _finished(cid, variant="b")
    low = _tuning_trial(cid, "a", 8000, TrialStatus.RUNNING, [0.50])
    assert _ask(cid, low) is False
