"""core.spec and core.trials.validation: split designs, seed schedules, baseline, margin, and the
submit-time checks that keep doomed trials from a worker (located 422s)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.problems import validation_errors
from core.config import Settings
from core.errors import InvalidInput
from core.spec import AnalysisSpec, ComparisonSpec, SeedSchedule, StoredSpec
from core.trials.planning import build_trials
from core.trials.validation import validate_comparison
from tests.support.helpers import small_cnn, small_mlp, stored_spec

SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")


def spec(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "t",
        "dataset": {"name": "mnist_5k", "max_samples": 300},
        "training": {"epochs": 2},
        "variants": [small_cnn("a"), small_mlp("b")],
    }
    for key, value in over.items():
        if key == "dataset":
            body["dataset"] = {**body["dataset"], **value}
        else:
            body[key] = value
    return body


def located(body: dict[str, Any], settings: Settings = SETTINGS) -> list[tuple[list[Any], str]]:
    """The located errors of a submit, as the api answers them (422), whichever layer finds
    them: pydantic (with the prefix FastAPI adds) or core.trials.validation."""
    try:
        parsed = ComparisonSpec.model_validate(body)
    except ValidationError as exc:
        errors = validation_errors(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        )
        return [(list(e["loc"]), str(e["msg"])) for e in errors]
    try:
        validate_comparison(parsed, settings)
    except InvalidInput as exc:
        return [(list(e["loc"]), str(e["msg"])) for e in exc.errors]
    return []


def locs(body: dict[str, Any], settings: Settings = SETTINGS) -> list[list[Any]]:
    return [loc for loc, _ in located(body, settings)]


def test_defaults_are_in_the_normalised_spec() -> None:
    v = validate_comparison(ComparisonSpec.model_validate(spec()), SETTINGS)
    assert v.spec.dataset.split == "per_seed"
    assert v.spec.seeds == [0, 1, 2]
    assert v.spec.baseline is None
    assert v.spec.equivalence_margin == 0.01
    fixed = validate_comparison(
        ComparisonSpec.model_validate(spec(dataset={"split": "fixed"}, baseline="b")), SETTINGS
    )
    assert fixed.spec.dataset.split == "fixed"
    assert fixed.spec.baseline == "b"


def test_seed_schedule_is_normalised_and_starts_with_min_seeds() -> None:
    v = validate_comparison(
        ComparisonSpec.model_validate(spec(seeds={"min": 3, "max": 7})), SETTINGS
    )
    assert v.spec.dump()["seeds"] == {"min": 3, "max": 7, "step": 1, "boundary": "obrien_fleming"}
    assert v.spec.initial_seeds == [0, 1, 2]
    assert v.trials_total == 2 * 3
    assert v.epochs_total == 2 * 3 * 2
    assert stored_spec(seeds=[5, 9]).initial_seeds == [5, 9]


@pytest.mark.parametrize(
    ("seeds", "loc"),
    [
        ({"min": 0, "max": 5}, ["body", "seeds", "min"]),
        ({"min": 3, "max": 2}, ["body", "seeds", "max"]),
        ({"min": 3, "max": 31}, ["body", "seeds", "max"]),  # the server's max_seeds is 30
        ({"min": 3, "max": 5, "step": 0}, ["body", "seeds", "step"]),
        ({"min": 3, "max": 5, "every": 1}, ["body", "seeds", "every"]),
        ({"min": "x"}, ["body", "seeds", "min"]),
        ([0, 0], ["body", "seeds"]),
        ([-1], ["body", "seeds", 0]),
        ("three", ["body", "seeds"]),
        (list(range(31)), ["body", "seeds"]),
    ],
)
def test_bad_seeds_are_located(seeds: Any, loc: list[Any]) -> None:
    assert locs(spec(seeds=seeds)) == [loc]


def test_most_seeds_count_against_the_trial_epoch_limit() -> None:
    tight = Settings(database_url="sqlite://", data_dir="/tmp/x", max_trial_epochs=40)
    # 2 variants x 11 seeds x 2 epochs = 44 > 40, though the first round is only 12.
    assert locs(spec(seeds={"min": 3, "max": 11}), tight) == [["body", "training", "epochs"]]
    assert locs(spec(seeds={"min": 3, "max": 10}), tight) == []


def test_baseline_must_name_a_variant() -> None:
    assert locs(spec(baseline="a")) == []
    [(loc, msg)] = located(spec(baseline="c"))
    assert loc == ["body", "baseline"]
    assert "'a', 'b'" in msg


@pytest.mark.parametrize("margin", [0, -0.1, "x", None])
def test_equivalence_margin_must_be_positive(margin: Any) -> None:
    assert locs(spec(equivalence_margin=margin)) == [["body", "equivalence_margin"]]


@pytest.mark.parametrize("design", ["per_seed", "fixed"])
def test_digits_too_small_to_split_is_refused_at_submit(design: str) -> None:
    """Digits with max_samples 60 used to pass and every trial failed on the worker."""
    [(loc, msg)] = located(spec(dataset={"name": "digits", "max_samples": 60, "split": design}))
    assert loc == ["body", "dataset", "max_samples"]
    assert "validation split" in msg
    assert "max_samples" in msg


def test_unknown_split_design_is_located() -> None:
    assert locs(spec(dataset={"split": "random"})) == [["body", "dataset", "split"]]


def test_split_fraction_too_small_points_at_its_field() -> None:
    # 1,797 digits, a 0.4% test split: 7 samples for 10 classes.
    body = spec(dataset={"name": "digits", "max_samples": None, "test_split": 0.004})
    assert locs(body) == [["body", "dataset", "test_split"]]


@pytest.mark.parametrize("shape", [[32, 32, 3], [784], [28, 28]])
def test_input_shape_must_match_the_dataset(shape: list[int]) -> None:
    """An input_shape the dataset's samples do not have used to fail on the worker."""
    variant = {**small_mlp("a"), "input_shape": shape}
    [(loc, msg)] = located(spec(variants=[variant, small_cnn("b")]))
    assert loc == ["body", "variants", 0, "input_shape"]
    assert "[28, 28, 1]" in msg
    same = {**small_mlp("a"), "input_shape": [28, 28, 1]}
    assert locs(spec(variants=[same, small_cnn("b")])) == []


def test_probe_size_follows_the_analysis_settings() -> None:
    assert stored_spec(analysis=None).probe_reserved == 256  # stored before the analysis
    assert stored_spec(analysis={"probe_size": 64}).probe_reserved == 64
    # Without similarity no probe is set aside: every example is there for the seeds' splits.
    assert AnalysisSpec(similarity=False, probe_size=64).probe_reserved == 0
    assert stored_spec(analysis={"similarity": False, "probe_size": 64}).probe_reserved == 0


def test_rounds_of_a_schedule() -> None:
    s = SeedSchedule(min=3, max=10, step=3)
    assert s.rounds_max == 4  # 3, 6, 9, 10
    assert [s.round_of(n) for n in (3, 6, 9, 10)] == [1, 2, 3, 4]
    assert [s.next_count(n) for n in (3, 6, 9, 10)] == [6, 9, 10, 10]
    assert SeedSchedule(min=3, max=3).rounds_max == 1
    two = stored_spec(seeds={"min": 3, "max": 10, "step": 3})  # two variants
    assert two.round_progress(12) == (2, 4)
    assert stored_spec(seeds=[0, 1]).round_progress(2) == (1, 1)


def test_trials_are_queued_seed_major_interleaving_variants() -> None:
    v = validate_comparison(
        ComparisonSpec.model_validate(
            spec(variants=[small_cnn("a"), small_mlp("b"), small_mlp("c")])
        ),
        SETTINGS,
    )
    trials = build_trials("cid", v.spec, v.analyses, [0, 1, 2])
    assert [(t.seed, t.variant) for t in trials] == [
        (s, name) for s in (0, 1, 2) for name in ("a", "b", "c")
    ]
    assert len({t.id for t in trials}) == 9
    # b and c are the same architecture under two names: the same work, the same hash.
    hashes = {(t.seed, t.variant): t.trial_hash for t in trials}
    assert all(hashes[(s, "b")] == hashes[(s, "c")] for s in (0, 1, 2))
    assert len(set(hashes.values())) == 6


def test_reuse_key_covers_the_split_design_and_the_reserved_probe() -> None:
    from core.trials.reuse import trial_hash

    def h(**over: Any) -> str:
        v = validate_comparison(ComparisonSpec.model_validate(spec(**over)), SETTINGS)
        return trial_hash(v.spec, 0, 0, {"keras": "x"})

    per_seed, fixed = h(), h(dataset={"split": "fixed"})
    assert per_seed != fixed
    assert h(dataset={"split_seed": 1}) != per_seed

    def stored(json: dict[str, Any]) -> str:
        return trial_hash(StoredSpec.load(json), 0, 0, {})

    # The probe set is set aside before a per-seed split: its size changes the training data.
    base = validate_comparison(ComparisonSpec.model_validate(spec()), SETTINGS).spec.dump()
    bare = {k: v for k, v in base.items() if k != "analysis"}
    assert stored({**bare, "analysis": {"probe_size": 64}}) != stored(bare)
    no_probe = {**base, "analysis": {"similarity": False}}
    assert stored(no_probe) != stored(base)
    fixed_spec = {**base, "dataset": {**base["dataset"], "split": "fixed"}}
    # Under the fixed design the training data is the same either way, but what the trial
    # stores is not (no Grams without similarity), so the key still covers the analysis: a
    # trial reused without its Grams would leave the similarity answer empty.
    assert stored({**fixed_spec, "analysis": {"similarity": False}}) != stored(fixed_spec)
    # A spec stored before the designs existed had the fixed split.
    old = {
        **fixed_spec,
        "dataset": {k: v for k, v in fixed_spec["dataset"].items() if k != "split"},
    }
    assert stored(old) == stored(fixed_spec)


@pytest.mark.parametrize(
    ("pairs", "loc"),
    [
        ([["a", "c"]], ["body", "pairs", 0, 1]),
        ([["a", "b"], ["zz", "a"]], ["body", "pairs", 1, 0]),
        ([["a", "a"]], ["body", "pairs", 0]),
        ([["a"]], ["body", "pairs", 0, 1]),  # the second name is missing
        ("a,b", ["body", "pairs"]),
    ],
)
def test_named_pairs_must_name_two_different_variants(pairs: Any, loc: list[Any]) -> None:
    assert locs(spec(pairs=pairs)) == [loc]


def test_named_pairs_are_the_tested_family() -> None:
    v = validate_comparison(ComparisonSpec.model_validate(spec(pairs=[["b", "a"]])), SETTINGS)
    assert v.spec.dump()["pairs"] == [["b", "a"]]
    assert v.spec.design.pairs == [("b", "a")]
