"""CKA's control and interval from stored Grams (SQLite), recomputed from the activations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from sqlalchemy.orm import Session

from core.report.cka import cka_features, gram_linear, pack_gram
from core.report.similarity import last_hidden_cka, similarity
from core.status import TrialStatus
from core.store.tables import Comparison, Trial, TrialLayerGram
from tests.support.helpers import stored_spec

PROBE = 24


def _store(session: Session, seeds: int, replicates: int) -> dict[tuple[str, int, int], np.ndarray]:
    """Trials of a and b whose hidden layer is a seed's shared features plus the variant's
    own and the run's noise; returns each trial's hidden activations."""
    rng = np.random.default_rng(seeds * 10 + replicates)
    session.add(Comparison(id="c", tenant="t", name="n", spec=stored_spec()))
    hidden: dict[tuple[str, int, int], np.ndarray] = {}
    base = rng.normal(size=(PROBE, 6))
    for s in range(seeds):
        shared = rng.normal(size=(PROBE, 6))  # the data seed's effect
        for index, variant in enumerate("ab"):
            own = rng.normal(size=(PROBE, 6)) * (0.5 + index)
            for r in range(1 + replicates):
                x = base + shared + own + rng.normal(size=(PROBE, 6)) * 0.8
                trial_id = f"{variant}{s}{r}"
                hidden[(variant, s, r)] = x
                session.add(
                    Trial(
                        id=trial_id,
                        comparison_id="c",
                        variant=variant,
                        variant_index=index,
                        seed=s,
                        replicate=r,
                        status=TrialStatus.SUCCEEDED,
                    )
                )
                out = x @ rng.normal(size=(6, 3))
                for i, act in enumerate((x, out)):
                    session.add(
                        TrialLayerGram(
                            trial_id=trial_id,
                            layer_index=i,
                            layer=f"layer_{i}",
                            kind="Dense",
                            probe_size=PROBE,
                            probe_hash="probe",
                            gram=pack_gram(gram_linear(act)),
                        )
                    )
    session.flush()
    return hidden


def test_with_replicates_cka_is_read_against_a_replicate_at_the_same_seed(
    session: Session,
) -> None:
    hidden = _store(session, seeds=4, replicates=1)
    [(_, got)] = last_hidden_cka(session, "c", [("a", "b")]).items()
    cross = [cka_features(hidden[("a", s, 0)], hidden[("b", s, 0)]) for s in range(4)]
    mean = np.mean(cross)
    half = stats.t.ppf(0.975, 3) * np.std(cross, ddof=1) / 2
    assert got["cka"] == pytest.approx(mean, abs=2e-3)
    assert got["ci95"] == pytest.approx([mean - half, mean + half], abs=2e-3)
    for v in "ab":
        within = [cka_features(hidden[(v, s, 0)], hidden[(v, s, 1)]) for s in range(4)]
        assert got[f"within_{v}"] == pytest.approx(np.mean(within), abs=2e-3)
    matrices = similarity(session, "c", "a", "b")
    assert matrices["control"] == "replicates"
    within_a = np.mean([cka_features(hidden[("a", s, 0)], hidden[("a", s, 1)]) for s in range(4)])
    assert matrices["within_a"][0][0] == pytest.approx(within_a, abs=2e-3)


def test_without_replicates_the_baseline_is_every_pair_of_seeds(session: Session) -> None:
    hidden = _store(session, seeds=4, replicates=0)
    [(_, got)] = last_hidden_cka(session, "c", [("a", "b")]).items()
    for v in "ab":
        pairs = [
            cka_features(hidden[(v, s, 0)], hidden[(v, u, 0)])
            for s, u in itertools.combinations(range(4), 2)
        ]
        assert got[f"within_{v}"] == pytest.approx(np.mean(pairs), abs=2e-3)
    matrices = similarity(session, "c", "a", "b")
    assert matrices["control"] == "seeds"


def test_debiased_cka_of_unrelated_layers_can_fall_below_zero_and_is_kept() -> None:
    rng = np.random.default_rng(0)
    values = [cka_features(rng.normal(size=(16, 40)), rng.normal(size=(16, 40))) for _ in range(20)]
    assert min(values) < 0.0
