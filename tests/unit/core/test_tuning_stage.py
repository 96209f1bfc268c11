"""The tuning stage's wiring: the submit's located refusals, the tuning seeds, the steps of
the search and the selection (on a real SQLite database, trials ended by hand), the config
applied to the training settings and layers, and the reuse key of a tuned trial."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import InvalidInput
from core.seeds import MAX_SEED
from core.spec import ComparisonSpec, StoredSpec, TrainingSpec
from core.status import ComparisonStatus, StopReason, TrialStage, TrialStatus
from core.store.tables import Comparison, EpochMetric, Trial
from core.trials.finalize import finalize_comparison
from core.trials.reuse import trial_hash
from core.trials.tuned import apply_config, trial_setup
from core.trials.tuning import (
    observation_of,
    select_config,
    selected_configs,
    tuning_observations,
    tuning_seeds,
)
from core.trials.validation import ValidatedComparison, validate_comparison
from core.tuning.search import Observation, suggest
from tests.support.helpers import small_cnn, stored_spec, tiny_spec

SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")
VERSIONS = {"tensorflow": "2.x", "keras": "3.x", "numpy": None}
SPACE = {"learning_rate": {"log_uniform": [1e-4, 1e-1]}, "batch_size": {"choice": [16, 32]}}


def _dropout_mlp(name: str = "mlp_drop") -> dict[str, Any]:
    return {
        "name": name,
        "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 16, "activation": "relu"},
            {"type": "Dropout", "rate": 0.5, "name": "drop"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }


def _body(tuning: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    body = tiny_spec(epochs=3, variants=[small_cnn(), _dropout_mlp()])
    body["dataset"] = {**body["dataset"], "split": "fixed"}  # tuning needs one fixed split
    body.update(extra)
    if tuning is not None:
        body["tuning"] = tuning
    return body


def _validated(tuning: dict[str, Any], **extra: Any) -> ValidatedComparison:
    return validate_comparison(ComparisonSpec.model_validate(_body(tuning, **extra)), SETTINGS)


def _errors(tuning: dict[str, Any], **extra: Any) -> list[tuple[tuple[str | int, ...], str]]:
    try:
        _validated(tuning, **extra)
    except InvalidInput as exc:
        return [(tuple(e["loc"]), e["msg"]) for e in exc.errors]
    return []


# --------------------------------------------------------------------------- submit


def test_a_tuned_spec_is_stored_and_counts_its_tuning_trials() -> None:
    validated = _validated({"space": SPACE, "trials": 4, "epochs": 1})
    assert validated.spec.tuning is not None
    assert validated.spec.tuning.trials == 4
    assert validated.spec.dump()["tuning"]["space"]["batch_size"] == {"choice": [16, 32]}
    # 2 variants x (2 seeds + 4 tuning trials); epochs: 2 x (2 x 3 + 4 x 1).
    assert (validated.trials_total, validated.epochs_total) == (12, 20)
    assert validated.spec.design.tuning == validated.spec.tuning


def test_a_spec_without_tuning_stores_no_tuning_key() -> None:
    validated = validate_comparison(ComparisonSpec.model_validate(_body(None)), SETTINGS)
    assert "tuning" not in validated.spec.dump()
    assert StoredSpec.load(validated.spec.dump()).tuning is None


@pytest.mark.parametrize(
    ("tuning", "extra", "loc", "words"),
    [
        ({"space": SPACE, "epochs": 3}, {}, ("body", "tuning", "epochs"), "fewer than"),
        (
            {"space": {"dropout.nowhere": {"uniform": [0.1, 0.5]}}},
            {},
            ("body", "tuning", "space", "dropout.nowhere"),
            "no variant has a Dropout layer named 'nowhere'",
        ),
        (
            {"space": {"momentum": {"uniform": [0.1, 0.9]}}},
            {},
            ("body", "tuning", "space", "momentum"),
            "has no momentum",
        ),
        (
            {"space": {"learning_rate": {"choice": [0.1, 0.01]}}, "trials": 3, "sampler": "grid"},
            {},
            ("body", "tuning", "trials"),
            "grid has only 2",
        ),
        (
            {"space": SPACE, "epochs": 1},
            {"dataset": {"name": "mnist_5k", "split": "per_seed", "max_samples": 300}},
            ("body", "dataset", "split"),
            "scored on",
        ),
        (
            {"space": SPACE, "epochs": 1},
            {
                "dataset": {
                    "name": "mnist_5k",
                    "split": "fixed",
                    "validation_split": 0.0,
                    "max_samples": 300,
                }
            },
            ("body", "dataset", "validation_split"),
            "validation split",
        ),
        (
            {"space": SPACE, "trials": 256, "epochs": 2},
            {"training": {"epochs": 3, "batch_size": 32}},
            ("body", "tuning", "trials"),
            "trial-epochs",
        ),
    ],
)
def test_a_bad_tuning_block_is_refused_where_it_is_wrong(
    tuning: dict[str, Any], extra: dict[str, Any], loc: tuple[str, ...], words: str
) -> None:
    settings = SETTINGS
    if "trial-epochs" in words:
        settings = Settings(
            database_url="sqlite://", data_dir="/tmp/archbench-unused", max_trial_epochs=500
        )
    try:
        validate_comparison(ComparisonSpec.model_validate(_body(tuning, **extra)), settings)
    except InvalidInput as exc:
        found = [(tuple(e["loc"]), e["msg"]) for e in exc.errors]
    else:
        found = []
    assert any(where == loc and words in msg for where, msg in found), found


def test_a_dropout_knob_naming_a_real_layer_passes() -> None:
    assert _errors({"space": {"dropout.drop": {"uniform": [0.1, 0.6]}}, "epochs": 1}) == []


# --------------------------------------------------------------------------- seeds


def test_tuning_seeds_count_down_past_the_comparisons_seeds() -> None:
    tuning = {"space": SPACE, "trials": 4}
    listed = stored_spec(seeds=[0, MAX_SEED - 1, 5], tuning=tuning)
    assert tuning_seeds(listed) == [MAX_SEED, MAX_SEED - 2, MAX_SEED - 3, MAX_SEED - 4]
    schedule = stored_spec(seeds={"min": 2, "max": MAX_SEED - 3, "step": 1}, tuning=tuning)
    assert tuning_seeds(schedule) == [MAX_SEED, MAX_SEED - 1, MAX_SEED - 2, MAX_SEED - 3]
    crowded = stored_spec(seeds={"min": 2, "max": MAX_SEED - 1, "step": 1}, tuning=tuning)
    with pytest.raises(ValueError, match="no room"):
        tuning_seeds(crowded)
    assert tuning_seeds(stored_spec()) == []
    # Deterministic: the same spec, the same seeds.
    assert tuning_seeds(listed) == tuning_seeds(StoredSpec.load(listed.dump()))


# --------------------------------------------------------------------------- config


def test_a_config_sets_the_knobs_and_the_named_dropout_rate_only() -> None:
    training = TrainingSpec.model_validate({"optimizer": "sgd", "epochs": 5})
    layers = [
        {"type": "Dense", "units": 4, "name": "d"},
        {"type": "Dropout", "rate": 0.5, "name": "drop"},
        {"type": "Dropout", "rate": 0.2, "name": "other"},
    ]
    config = {
        "learning_rate": 0.02,
        "weight_decay": 0.001,
        "momentum": 0.8,
        "batch_size": 16,
        "dropout.drop": 0.25,
    }
    tuned, new_layers = apply_config(training, layers, config, epochs=2)
    assert (tuned.learning_rate, tuned.weight_decay, tuned.momentum) == (0.02, 0.001, 0.8)
    assert (tuned.batch_size, tuned.epochs, tuned.optimizer) == (16, 2, "sgd")
    assert [layer.get("rate") for layer in new_layers] == [None, 0.25, 0.2]
    # The inputs are unchanged; no config changes nothing.
    assert layers[1]["rate"] == 0.5
    assert training.learning_rate == 0.001
    assert apply_config(training, layers, None) == (training, layers)


def test_a_tuning_trial_trains_the_tuning_epochs_a_final_one_trainings() -> None:
    spec = stored_spec(training={"epochs": 4}, tuning={"space": SPACE, "epochs": 2})
    tuned, _ = trial_setup(spec, 0, stage=TrialStage.TUNING, config={"learning_rate": 0.01})
    final, _ = trial_setup(spec, 0, stage=TrialStage.TEST, config={"learning_rate": 0.01})
    assert (tuned.epochs, final.epochs) == (2, 4)
    assert tuned.learning_rate == final.learning_rate == 0.01


def test_the_reuse_key_covers_the_config_and_the_stage() -> None:
    spec = stored_spec(tuning={"space": SPACE})
    plain = trial_hash(spec, 0, 0, VERSIONS)
    assert plain == trial_hash(stored_spec(), 0, 0, VERSIONS)  # no config: the old key
    a = trial_hash(spec, 0, 0, VERSIONS, config={"learning_rate": 0.01})
    b = trial_hash(spec, 0, 0, VERSIONS, config={"learning_rate": 0.02})
    tuning = trial_hash(
        spec, 0, 0, VERSIONS, stage=TrialStage.TUNING, config={"learning_rate": 0.01}
    )
    assert len({plain, a, b, tuning}) == 4
    assert a == trial_hash(spec, 0, 0, VERSIONS, config={"learning_rate": 0.01})


# --------------------------------------------------------------------------- observations


def _trial(status: str, stop_reason: str | None = None) -> Trial:
    return Trial(status=status, stop_reason=stop_reason, config={"learning_rate": 0.01})


def test_an_observation_is_the_best_validation_score_over_the_epochs() -> None:
    epochs = {1: {"val_accuracy": 0.5, "val_loss": 1.0}, 2: {"val_accuracy": 0.4, "val_loss": 0.7}}
    acc = observation_of(_trial(TrialStatus.SUCCEEDED), epochs, "val_accuracy")
    assert (acc.state, acc.value, dict(acc.intermediate)) == ("complete", 0.5, {1: 0.5, 2: 0.4})
    loss = observation_of(_trial(TrialStatus.SUCCEEDED), epochs, "val_loss")
    assert (loss.state, loss.value) == ("complete", 0.7)
    assert observation_of(_trial(TrialStatus.RUNNING), epochs, "val_accuracy").state == "running"
    assert observation_of(_trial(TrialStatus.QUEUED), {}, "val_accuracy").state == "running"
    pruned = observation_of(_trial(TrialStatus.SUCCEEDED, StopReason.PRUNED), epochs, "val_loss")
    assert (pruned.state, pruned.value) == ("pruned", None)
    assert observation_of(_trial(TrialStatus.FAILED), epochs, "val_accuracy").state == "failed"
    nan = {1: {"val_accuracy": float("nan")}}
    assert observation_of(_trial(TrialStatus.SUCCEEDED), nan, "val_accuracy").state == "failed"


def test_selection_takes_the_best_complete_score_and_the_first_on_a_tie() -> None:
    obs = [
        Observation({"lr": 1}, "complete", 0.6),
        Observation({"lr": 2}, "pruned", None, {1: 0.99}),
        Observation({"lr": 3}, "complete", 0.8),
        Observation({"lr": 4}, "complete", 0.8),
        Observation({"lr": 5}, "failed"),
    ]
    assert select_config(obs, maximize=True) == ({"lr": 3}, 0.8)
    assert select_config(obs, maximize=False) == ({"lr": 1}, 0.6)
    assert select_config(obs[1:2], maximize=True) == (None, None)


# --------------------------------------------------------------------------- the steps


def _comparison(session: Session, tuning: dict[str, Any], **extra: Any) -> Comparison:
    validated = _validated(tuning, **extra)
    row = Comparison(
        tenant="t",
        name="tuned",
        status=ComparisonStatus.QUEUED,
        spec=validated.spec,
        analyses=validated.analyses,
        trials_total=validated.trials_total,
        epochs_total=validated.epochs_total,
    )
    session.add(row)
    session.flush()
    return row


def _rows(session: Session, comparison_id: str, stage: str) -> list[Trial]:
    return list(
        session.scalars(
            select(Trial)
            .where(Trial.comparison_id == comparison_id, Trial.stage == stage)
            .order_by(Trial.variant_index, Trial.seed.desc())
        )
    )


def _end(session: Session, trial: Trial, scores: list[float]) -> None:
    trial.status = TrialStatus.SUCCEEDED
    trial.epochs_done = len(scores)
    for epoch, score in enumerate(scores, start=1):
        session.add(EpochMetric(trial_id=trial.id, epoch=epoch, values={"val_accuracy": score}))
    session.flush()


def test_the_stage_asks_step_by_step_then_trains_the_selected_configs(session: Session) -> None:
    comparison = _comparison(session, {"space": SPACE, "trials": 3, "epochs": 1})
    cid = comparison.id
    spec = comparison.spec
    scores = {"cnn": [0.3, 0.9, 0.5], "mlp_drop": [0.7, 0.2, 0.7]}
    for k in range(3):
        assert finalize_comparison(session, cid) is None  # a step is added, nothing ends
        tuning = _rows(session, cid, TrialStage.TUNING)
        assert len(tuning) == 2 * (k + 1)
        fresh = [t for t in tuning if t.status == TrialStatus.QUEUED]
        assert [t.variant for t in fresh] == ["cnn", "mlp_drop"]
        assert {int(t.seed) for t in fresh} == {tuning_seeds(spec)[k]}
        assert all(t.epochs_planned == 1 and t.trial_hash for t in fresh)
        # Asked from the variant's stored trials, as a restarted process would ask.
        for t in fresh:
            history = tuning_observations(session, cid)[t.variant][:k]
            assert t.config == suggest(spec.tuning, history, seed=spec.dataset.split_seed)  # type: ignore[arg-type]
        assert not _rows(session, cid, TrialStage.TEST)
        assert finalize_comparison(session, cid) is None  # active trials: nothing asked
        assert len(_rows(session, cid, TrialStage.TUNING)) == 2 * (k + 1)
        for t in fresh:
            _end(session, t, [scores[t.variant][k]])
    assert finalize_comparison(session, cid) is None
    finals = _rows(session, cid, TrialStage.TEST)
    assert sorted((t.variant, int(t.seed)) for t in finals) == [
        ("cnn", 0),
        ("cnn", 1),
        ("mlp_drop", 0),
        ("mlp_drop", 1),
    ]
    tuned = {
        v: [t.config for t in _rows(session, cid, TrialStage.TUNING) if t.variant == v]
        for v in scores
    }
    expected = {"cnn": tuned["cnn"][1], "mlp_drop": tuned["mlp_drop"][0]}  # best; first on a tie
    assert selected_configs(session, comparison) == expected
    assert {t.variant: t.config for t in finals} == expected
    assert all(t.epochs_planned == 3 for t in finals)
    for t in finals:
        _end(session, t, [0.5])
    assert finalize_comparison(session, cid) == ComparisonStatus.SUCCEEDED
    assert len(_rows(session, cid, TrialStage.TUNING)) == 6  # nothing asked after the stage


def test_a_failed_tuning_trial_ends_the_stage_and_fails_the_comparison(session: Session) -> None:
    comparison = _comparison(session, {"space": SPACE, "trials": 3, "epochs": 1})
    finalize_comparison(session, comparison.id)
    first, second = _rows(session, comparison.id, TrialStage.TUNING)
    _end(session, first, [0.5])
    second.status = TrialStatus.FAILED
    session.flush()
    assert finalize_comparison(session, comparison.id) == ComparisonStatus.FAILED
    assert len(_rows(session, comparison.id, TrialStage.TUNING)) == 2
    assert not _rows(session, comparison.id, TrialStage.TEST)


def test_sixteen_trials_are_asked_two_at_a_time_with_distinct_configs(session: Session) -> None:
    comparison = _comparison(session, {"space": SPACE, "trials": 16, "epochs": 1})
    finalize_comparison(session, comparison.id)
    tuning = _rows(session, comparison.id, TrialStage.TUNING)
    assert [t.variant for t in tuning] == ["cnn", "cnn", "mlp_drop", "mlp_drop"]
    assert tuning[0].config != tuning[1].config


def test_an_adaptive_round_trains_its_new_seeds_at_the_selected_configs(session: Session) -> None:
    comparison = _comparison(
        session, {"space": SPACE, "trials": 1, "epochs": 1}, seeds={"min": 3, "max": 4}
    )
    cid = comparison.id
    finalize_comparison(session, cid)
    for t in _rows(session, cid, TrialStage.TUNING):
        _end(session, t, [0.5])
    finalize_comparison(session, cid)
    finals = _rows(session, cid, TrialStage.TEST)
    assert len(finals) == 6
    scores = {"cnn": [0.50, 0.60, 0.55], "mlp_drop": [0.52, 0.58, 0.56]}  # undecided
    for t in finals:
        _end(session, t, [0.5])
        t.test_accuracy = scores[t.variant][int(t.seed)]
    session.flush()
    assert finalize_comparison(session, cid) is None  # the next round, not the end
    added = [t for t in _rows(session, cid, TrialStage.TEST) if int(t.seed) == 3]
    configs = selected_configs(session, comparison)
    assert sorted(t.variant for t in added) == ["cnn", "mlp_drop"]
    assert all(t.config == configs[t.variant] is not None for t in added)
    assert len(_rows(session, cid, TrialStage.TUNING)) == 2
