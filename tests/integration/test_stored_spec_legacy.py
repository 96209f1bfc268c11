"""A comparison stored by version 1.0 (no ``dataset.split``, no ``analysis``) on today's code,
on a real Postgres, with the worker's trial path in this process and TensorFlow training.

Before the spec was parsed once into ``core.spec.StoredSpec``, the worker read the stored
dataset with the request's model, whose default is today's per-seed split: a 1.0 trial
trained after an upgrade (queued through it, or retried) drew a split its comparison never
had. Now the stored spec loads as what it ran, the fixed split, everywhere: the worker's
data, the report's design, the resource the api shows and the trial's reuse key.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import JSON, type_coerce, update

from api.schemas import comparison_out
from core.config import get_settings
from core.report.load import load_report
from core.report.similarity import decode_predictions
from core.spec import ComparisonSpec
from core.store.db import session_scope
from core.store.tables import Comparison, Trial, TrialPrediction
from core.trials.comparisons import create_comparison
from core.trials.reuse import library_versions
from core.trials.validation import validate_comparison
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import fresh_database, in_process_database
from tests.support.stored import dict_hash, legacy_of

pytestmark = [pytest.mark.services, pytest.mark.training]


@pytest.fixture
def worker_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    with fresh_database("archbench_legacy") as url, in_process_database(url, monkeypatch):
        yield


def test_a_1_0_comparison_trains_and_reports_on_its_fixed_split(worker_db: None) -> None:
    import worker.tasks as tasks
    from worker.datasets import load_dataset, make_split

    body = tiny_spec("legacy", seeds=[0], epochs=1, samples=200, variants=[small_mlp()])
    validated = validate_comparison(ComparisonSpec.model_validate(body), get_settings())
    legacy = legacy_of(validated.spec.dump())
    with session_scope() as s:
        c, (tid,), _ = create_comparison(
            s, tenant="default", validated=validated, idempotency_key=None, request_hash="x"
        )
        cid = c.id
        # The row as 1.0 wrote it: raw JSON, past the typed column.
        s.execute(
            update(Comparison).where(Comparison.id == cid).values(spec=type_coerce(legacy, JSON))
        )

    assert tasks.run_trial(tid) == "succeeded"

    ds = load_dataset("mnist_5k", cache_dir=get_settings().dataset_cache)
    split = partial(
        make_split, ds, test_split=0.2, validation_split=0.1, split_seed=0, max_samples=200
    )
    fixed = split(design="fixed", seed=0, probe_size=256)
    per_seed = split(design="per_seed", seed=0, probe_size=256)
    assert set(fixed.test_index) != set(per_seed.test_index)  # the check can tell them apart
    with session_scope() as s:
        examples, *_ = decode_predictions(s.get_one(TrialPrediction, tid))
        trial_hash = s.get_one(Trial, tid).trial_hash
        comparison = s.get_one(Comparison, cid)
        shown = comparison_out(comparison, {"succeeded": 1}).spec
        report, _ = load_report(s, comparison)
    np.testing.assert_array_equal(np.sort(examples), np.sort(fixed.test_index))
    assert shown["dataset"]["split"] == "fixed"
    assert shown["analysis"] is None
    assert report["design"]["split"] == "fixed"
    # The worker rewrote the key with its versions: the one 1.0's JSON gives.
    assert trial_hash == dict_hash(legacy, 0, 0, library_versions())
