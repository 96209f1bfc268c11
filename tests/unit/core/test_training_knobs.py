"""The training knobs (version 1.2): learning-rate schedules, optimizer arguments checked
against the optimizer, label smoothing where the loss takes it, and a variant's own
``training`` over the comparison's; each refusal located at its field, the reuse key of the
effective settings, unchanged for a spec that sets none of them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.config import Settings
from core.errors import InvalidInput
from core.optimizers import CosineSchedule, PiecewiseSchedule
from core.spec import TRAINING_KNOBS, VARIANT_TRAINING, ComparisonSpec, StoredSpec, TrainingSpec
from core.trials.reuse import trial_hash
from core.trials.validation import validate_comparison
from tests.support.helpers import small_cnn, small_mlp, tiny_spec

SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")
VERSIONS = {"tensorflow": "2.x", "keras": "3.x", "numpy": None}


def _errors(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every located error of a body: the schema's, else validate_comparison's."""
    try:
        spec = ComparisonSpec.model_validate(body)
    except ValidationError as exc:
        from api.problems import validation_errors

        return [(tuple(["body", *e["loc"]]), e["msg"]) for e in validation_errors(exc.errors())]
    try:
        validate_comparison(spec, SETTINGS)
    except InvalidInput as exc:
        return [(tuple(e["loc"]), e["msg"]) for e in exc.errors]
    return []


def _with_training(**training: Any) -> dict[str, Any]:
    body = tiny_spec()
    body["training"] = {**body["training"], **training}
    return body


def test_each_schedule_parses_to_its_model() -> None:
    cosine = {"schedule": "cosine", "initial_learning_rate": 0.1, "decay_steps": 100}
    t = TrainingSpec.model_validate({"learning_rate": cosine})
    assert isinstance(t.learning_rate, CosineSchedule)
    assert t.learning_rate.alpha == 0.0
    piecewise = {"schedule": "piecewise", "boundaries": [10, 20], "values": [0.1, 0.01, 0.001]}
    t = TrainingSpec.model_validate({"learning_rate": piecewise})
    assert isinstance(t.learning_rate, PiecewiseSchedule)
    assert TrainingSpec.model_validate({"learning_rate": 0.05}).learning_rate == 0.05
    # The stored JSON loads back to the same model.
    for rate in (cosine, piecewise, 0.05):
        t = TrainingSpec.model_validate({"learning_rate": rate})
        assert TrainingSpec.model_validate(t.model_dump(mode="json")) == t


@pytest.mark.parametrize(
    ("training", "loc", "words"),
    [
        ({"momentum": 0.9}, ["momentum"], "adam takes no momentum"),
        ({"optimizer": "sgd", "beta_1": 0.8}, ["beta_1"], "sgd takes no beta_1"),
        ({"optimizer": "sgd", "epsilon": 1e-6}, ["epsilon"], "sgd takes no epsilon"),
        ({"optimizer": "rmsprop", "nesterov": True}, ["nesterov"], "rmsprop takes no nesterov"),
        ({"clipnorm": 1.0, "clipvalue": 0.5}, ["clipvalue"], "not both"),
        ({"label_smoothing": 0.1}, ["label_smoothing"], "takes no label_smoothing"),
        ({"momentum": 1.5, "optimizer": "sgd"}, ["momentum"], "less than 1"),
        (
            {"learning_rate": {"schedule": "linear", "initial_learning_rate": 0.1}},
            ["learning_rate"],
            "unknown schedule 'linear'",
        ),
        (
            {"learning_rate": {"schedule": "cosine", "initial_learning_rate": 0.1}},
            ["learning_rate", "decay_steps"],
            "Field required",
        ),
        (
            {"learning_rate": {"schedule": "piecewise", "boundaries": [5], "values": [0.1]}},
            ["learning_rate", "values"],
            "at least 2",
        ),
        (
            {
                "learning_rate": {
                    "schedule": "piecewise",
                    "boundaries": [5, 9],
                    "values": [0.1, 0.01],
                }
            },
            ["learning_rate", "values"],
            "one more entry than boundaries (3)",
        ),
        (
            {"learning_rate": {"schedule": "piecewise", "boundaries": [9, 5], "values": [1, 2, 3]}},
            ["learning_rate", "boundaries"],
            "strictly increasing",
        ),
    ],
)
def test_a_bad_knob_is_refused_at_its_field(
    training: dict[str, Any], loc: list[str], words: str
) -> None:
    errors = _errors(_with_training(**training))
    assert [e[0] for e in errors] == [("body", "training", *loc)], errors
    assert words in errors[0][1]


def test_what_each_optimizer_takes_passes() -> None:
    ok = [
        {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        {"optimizer": "adam", "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "clipnorm": 1.0},
        {"optimizer": "adamw", "weight_decay": 0.01, "clipvalue": 0.5},
        {"optimizer": "rmsprop", "momentum": 0.5, "epsilon": 1e-6},
        {"optimizer": "adagrad", "epsilon": 1e-6},
        {"optimizer": "nadam", "beta_1": 0.8},
        {"loss": "categorical_crossentropy", "label_smoothing": 0.1},
    ]
    for training in ok:
        assert _errors(_with_training(**training)) == [], training


def test_a_variant_overrides_the_comparisons_training_and_is_checked_with_it() -> None:
    sgd = {**small_mlp("sgd"), "training": {"optimizer": "sgd", "momentum": 0.9}}
    body = tiny_spec(variants=[small_cnn(), sgd])
    validated = validate_comparison(ComparisonSpec.model_validate(body), SETTINGS)
    stored = validated.spec
    assert stored.variants[0].training is None
    assert stored.variants[1].training == {"optimizer": "sgd", "momentum": 0.9}
    assert stored.training_for(0).optimizer == "adam"
    assert stored.training_for(1).optimizer == "sgd"
    assert stored.training_for(1).momentum == 0.9
    # Stored and loaded back, the same.
    dumped = json.loads(json.dumps(stored.dump()))
    assert "training" not in dumped["variants"][0]
    assert StoredSpec.load(dumped) == stored
    # The design names what differs, per variant.
    assert stored.design.training == {
        "cnn": {"momentum": None, "optimizer": "adam"},
        "sgd": {"momentum": 0.9, "optimizer": "sgd"},
    }

    # momentum on the comparison's adam: located in the variant's training.
    bad = {**small_mlp("m"), "training": {"momentum": 0.9}}
    errors = _errors(tiny_spec(variants=[small_cnn(), bad]))
    assert [e[0] for e in errors] == [("body", "variants", 1, "training", "momentum")]
    assert "adam takes no momentum" in errors[0][1]
    # A budget setting is the comparison's; the message says what a variant may set.
    bad = {**small_mlp("m"), "training": {"epochs": 5}}
    errors = _errors(tiny_spec(variants=[small_cnn(), bad]))
    assert [e[0] for e in errors] == [("body", "variants", 1, "training", "epochs")]
    assert "same for every variant" in errors[0][1]
    assert "learning_rate" in errors[0][1]
    # And it is reported with the variant's other errors, in the same answer.
    bad = {**small_mlp("m"), "training": {"momentum": 0.9}}
    bad["layers"] = [*bad["layers"][:1], {"type": "Dense", "units": 0}, *bad["layers"][1:]]
    locs = [e[0] for e in _errors(tiny_spec(variants=[small_cnn(), bad]))]
    assert ("body", "variants", 1, "training", "momentum") in locs
    assert ("body", "variants", 1, "layers", 1, "units") in locs


def test_unset_knobs_leave_the_stored_json_and_the_reuse_key_as_they_were() -> None:
    stored = validate_comparison(ComparisonSpec.model_validate(tiny_spec()), SETTINGS).spec
    dumped = stored.dump()
    assert not set(TRAINING_KNOBS) & set(dumped["training"])
    assert all("training" not in v for v in dumped["variants"])
    # The key before the knobs existed: this exact training dict, as 1.1 dumped it.
    before = {
        "epochs": 2,
        "batch_size": 64,
        "optimizer": "adam",
        "learning_rate": 0.001,
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "early_stopping": None,
        "mixed_precision": False,
        "jit_compile": None,
    }
    assert stored.training.model_dump(mode="json", exclude={"max_seconds"}) == {
        **before,
        "epochs": stored.training.epochs,
        "batch_size": stored.training.batch_size,
    }


def test_the_reuse_key_is_of_the_effective_settings() -> None:
    knobs = {"optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.05}
    own = {**small_mlp(), "training": knobs}
    body = tiny_spec(variants=[small_cnn(), own])
    per_variant = validate_comparison(ComparisonSpec.model_validate(body), SETTINGS).spec
    same = tiny_spec(variants=[small_cnn(), small_mlp()])
    same["training"] = {**same["training"], **knobs}
    whole = validate_comparison(ComparisonSpec.model_validate(same), SETTINGS).spec
    plain = validate_comparison(
        ComparisonSpec.model_validate(tiny_spec(variants=[small_cnn(), small_mlp()])), SETTINGS
    ).spec
    # The mlp trains the same either way: the same trial.
    assert trial_hash(per_variant, 1, 0, VERSIONS) == trial_hash(whole, 1, 0, VERSIONS)
    # ... and not the trial of the plain comparison; the cnn still is.
    assert trial_hash(per_variant, 1, 0, VERSIONS) != trial_hash(plain, 1, 0, VERSIONS)
    assert trial_hash(per_variant, 0, 0, VERSIONS) == trial_hash(plain, 0, 0, VERSIONS)
    # A schedule is part of the key too.
    cosine = {"schedule": "cosine", "initial_learning_rate": 0.01, "decay_steps": 50}
    scheduled = tiny_spec(variants=[small_cnn(), small_mlp()])
    scheduled["training"] = {**scheduled["training"], "learning_rate": cosine}
    s = validate_comparison(ComparisonSpec.model_validate(scheduled), SETTINGS).spec
    assert trial_hash(s, 0, 0, VERSIONS) != trial_hash(plain, 0, 0, VERSIONS)


def test_the_report_says_which_settings_differ(trial: Any) -> None:
    from core.report.build import build_report
    from core.report.schema import Design

    own = {**small_mlp(), "training": {"optimizer": "sgd", "learning_rate": 0.05}}
    stored = validate_comparison(
        ComparisonSpec.model_validate(tiny_spec(variants=[small_cnn(), own])), SETTINGS
    ).spec
    trials = [trial(n, s, 0.9 + 0.01 * s) for n in ("cnn", "mlp") for s in range(3)]
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=["cnn", "mlp"],
        trials=trials,
        final=True,
        design=stored.design,
    )
    assert report["design"]["training"] == {
        "cnn": {"learning_rate": 0.001, "optimizer": "adam"},
        "mlp": {"learning_rate": 0.05, "optimizer": "sgd"},
    }
    Design.model_validate(report["design"])
    [note] = [n for n in report["notes"] if "do not train alike" in n]
    assert 'cnn: learning_rate=0.001, optimizer="adam"' in note
    assert 'mlp: learning_rate=0.05, optimizer="sgd"' in note
    # Variants that train alike get no such note, and an empty map.
    plain = validate_comparison(ComparisonSpec.model_validate(tiny_spec()), SETTINGS).spec
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=["cnn", "mlp"],
        trials=trials,
        final=True,
        design=plain.design,
    )
    assert report["design"]["training"] == {}
    assert not [n for n in report["notes"] if "do not train alike" in n]


def test_mlflow_logs_what_each_trial_trained_with() -> None:
    from core.exports.mlflow import _params

    own = {**small_mlp(), "training": {"optimizer": "sgd", "momentum": 0.9}}
    stored = validate_comparison(
        ComparisonSpec.model_validate(tiny_spec(variants=[small_cnn(), own])), SETTINGS
    ).spec
    comparison = {"spec": stored.dump()}
    mlp = _params(comparison, {"variant": "mlp", "seed": 0})
    cnn = _params(comparison, {"variant": "cnn", "seed": 0})
    assert (mlp["optimizer"], mlp["momentum"]) == ("sgd", "0.9")
    assert cnn["optimizer"] == "adam"
    assert "momentum" not in cnn


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["adam", "sgd", "rmsprop", "cosine", "piecewise", "categorical_crossentropy"]),
    st.lists(st.floats(-1, 2), max_size=4),
)
_SCHEDULE = st.fixed_dictionaries(
    {"schedule": st.sampled_from(["cosine", "warmup_cosine", "exponential", "piecewise", "x"])},
    optional={
        k: _VALUES
        for k in (
            "initial_learning_rate",
            "decay_steps",
            "alpha",
            "warmup_target",
            "warmup_steps",
            "decay_rate",
            "staircase",
            "boundaries",
            "values",
        )
    },
)
_TRAINING = st.dictionaries(
    st.sampled_from([*VARIANT_TRAINING, "epochs", "loss", "bogus"]),
    st.one_of(_VALUES, _SCHEDULE),
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(comparison=_TRAINING, own=st.one_of(st.none(), _TRAINING))
def test_any_training_is_accepted_or_refused_at_a_field(
    comparison: dict[str, Any], own: dict[str, Any] | None
) -> None:
    variant: dict[str, Any] = small_mlp()
    if own is not None:
        variant["training"] = own
    body = _with_training(**comparison)
    body["variants"] = [small_cnn(), variant]
    for loc, msg in _errors(body):
        assert loc[:2] in (("body", "training"), ("body", "variants")), (loc, msg)
        assert msg
