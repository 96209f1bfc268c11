"""The streamed differences (core.report.streamed) give compute_differences' figures, reading
two trials at a time, and their peak memory does not grow with the number of trials."""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.report import build
from core.report.differences import compute_differences
from core.report.similarity import encode_predictions, load_predictions
from core.report.streamed import PerExample, streamed_differences
from core.store.tables import Comparison, Trial, TrialPrediction
from tests.support.finished import finished_comparison


def _close(x: Any, y: Any, where: str = "") -> None:
    """Equal, floats to 1e-9 relative (the sums are taken in another order)."""
    if isinstance(x, dict):
        assert isinstance(y, dict), where
        assert x.keys() == y.keys(), where
        for k in x:
            _close(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list | tuple):
        assert isinstance(y, list | tuple), where
        assert len(x) == len(y), where
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            _close(a, b, f"{where}[{i}]")
    elif isinstance(x, float) and isinstance(y, float):
        assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), (where, x, y)
    else:
        assert x == y, (where, x, y)


def _both(s: Session, c: Comparison, *, interim: bool = False) -> tuple[Any, Any]:
    pairs = build.tested_pairs(c.spec.variant_names, c.spec.baseline)
    whole = compute_differences(load_predictions(s, c.id), pairs, interim=interim)
    streamed = streamed_differences(s, c.id, pairs, interim=interim)
    return whole, streamed


def _rewrite(
    s: Session, c: Comparison, make: Callable[[Trial], tuple[Any, Any, Any] | None]
) -> None:
    """Replace each trial's predictions with ``make(trial)`` (None: none stored)."""
    for t in s.scalars(select(Trial).where(Trial.comparison_id == c.id)).all():
        s.execute(delete(TrialPrediction).where(TrialPrediction.trial_id == t.id))
        made = make(t)
        if made is not None:
            s.add(encode_predictions(t.id, *made))
    s.commit()


def test_the_streamed_figures_are_compute_differences_figures(session: Session) -> None:
    c = finished_comparison(session, variants=3, seeds=4, n_test=300)
    whole, streamed = _both(session, c)
    assert len(streamed) == 3
    assert streamed[0]["beyond_seeds_p"] is not None
    _close(streamed, whole)
    _close(*reversed(_both(session, c, interim=True)))


def test_other_test_sets_per_seed_and_missing_seeds_give_the_same_figures(
    session: Session,
) -> None:
    c = finished_comparison(session, variants=3, seeds=5, n_test=10)
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, 500)

    def make(t: Trial) -> tuple[Any, Any, Any] | None:
        if t.variant == "v1" and t.seed == 2:
            return None  # one seed of v1 kept no predictions
        if t.variant == "v2" and t.seed > 1:
            return None  # v2 has two seeds: no beyond-seeds test
        ids = np.sort(rng.choice(500, 220 + 10 * int(t.seed), replace=False))
        probs = rng.dirichlet(np.ones(4) * 0.3, len(ids))
        probs[np.arange(len(ids)), truth[ids]] += 0.8 * (t.variant_index + 1) / 3
        return ids, truth[ids], probs / probs.sum(axis=1, keepdims=True)

    _rewrite(session, c, make)
    whole, streamed = _both(session, c)
    assert streamed[0]["beyond_seeds_p"] is not None
    assert streamed[1]["beyond_seeds_p"] is None
    _close(streamed, whole)


def test_no_predictions_give_no_differences(session: Session) -> None:
    c = finished_comparison(session, variants=2, seeds=3, n_test=10)
    _rewrite(session, c, lambda t: None)
    assert streamed_differences(session, c.id, [("v0", "v1")]) == []


def test_per_example_sums_grow_their_keys_and_keep_what_was_added() -> None:
    sums = PerExample("k", "m")
    sums.add(np.array([5, 1, 9]), k=np.array([1.0, 0.0, 1.0]), m=None)
    sums.add(np.array([3, 5]), k=np.array([1.0, 1.0]), m=None)
    assert sums.keys.tolist() == [1, 3, 5, 9]
    assert sums.sums["k"].tolist() == [0.0, 1.0, 2.0, 1.0]
    assert sums.sums["m"].tolist() == [1.0, 1.0, 2.0, 1.0]


def _peak(run: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


N_TEST = 20_000


@pytest.fixture(scope="module")
def peaks() -> dict[tuple[str, int], int]:
    """Peak traced memory of the differences of 2 variants x k seeds of N_TEST examples."""
    from sqlalchemy import create_engine

    from core.store.tables import Base

    out: dict[tuple[str, int], int] = {}
    pairs = [("v0", "v1")]
    for seeds in (3, 12):
        engine = create_engine("sqlite://")
        Base.metadata.create_all(engine)
        with Session(engine) as s:
            cid = finished_comparison(s, variants=2, seeds=seeds, n_test=N_TEST).id

            def streamed(s: Session = s, cid: str = cid) -> object:
                return streamed_differences(s, cid, pairs)

            def whole(s: Session = s, cid: str = cid) -> object:
                return compute_differences(load_predictions(s, cid), pairs)

            out[("streamed", seeds)] = _peak(streamed)
            out[("whole", seeds)] = _peak(whole)
        engine.dispose()
    return out


def test_the_streamed_peak_does_not_grow_with_the_number_of_trials(
    peaks: dict[tuple[str, int], int],
) -> None:
    # One trial as read: ids (8 bytes), labels and predictions (4 + 4), probabilities (2 x 10).
    trial = N_TEST * (8 + 4 + 4 + 20)
    assert peaks[("streamed", 12)] < 1.2 * peaks[("streamed", 3)], peaks
    # Bounded by a few trials' worth: two read, their alignment, one pair's sums.
    assert peaks[("streamed", 12)] < 8 * trial, peaks
    # Reading every trial at once (what the report did) grows with them.
    assert peaks[("whole", 12)] > 3 * peaks[("whole", 3)], peaks
    assert peaks[("whole", 12)] > 3 * peaks[("streamed", 12)], peaks
