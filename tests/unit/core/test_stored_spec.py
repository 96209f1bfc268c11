"""core.spec.StoredSpec: the spec parsed once where it is read from the database.

What is checked: every spec the api validates is stored as JSON that loads back to the same
JSON; a spec stored by 1.0 (no split design, no analysis, no baseline or margin) loads as what
it ran (the fixed split, no analysis); the reuse key computed from the typed model is, byte for
byte, the one the dict-reading code computed (recomputed here from the JSON), so the hashes of
trials stored earlier still match; and ``Comparison.spec`` reads and writes the model through
a real database (SQLite), JSON paths in SQL included.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from sqlalchemy import JSON, select, type_coerce, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from api.examples import SUBMIT_EXAMPLES
from core.config import Settings
from core.spec import AnalysisSpec, ComparisonSpec, DesignSpec, SeedSchedule, StoredSpec
from core.store.tables import Comparison
from core.trials.reuse import trial_hash
from core.trials.validation import validate_comparison
from tests.support.helpers import small_cnn, small_mlp, stored_spec, tiny_spec
from tests.support.stored import dict_hash, legacy_of

SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")

KERAS_CONFIG_VARIANT = {
    "name": "kc",
    "keras_config": {
        "class_name": "Sequential",
        "config": {
            "name": "kc",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1]}},
                {"class_name": "Flatten", "config": {}},
                {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}},
            ],
        },
    },
}


def _bodies() -> list[dict[str, Any]]:
    return [
        tiny_spec(),
        {**tiny_spec(), "seeds": {"min": 3, "max": 9, "step": 2}, "baseline": "cnn"},
        {**tiny_spec(), "dataset": {"name": "mnist_5k", "split": "fixed", "max_samples": 300}},
        {**tiny_spec(), "analysis": {"similarity": False}, "equivalence_margin": 0.02},
        {**tiny_spec(), "training": {"epochs": 1, "early_stopping": {"patience": 1}}},
        tiny_spec(variants=[small_mlp(), KERAS_CONFIG_VARIANT]),
        *[copy.deepcopy(e["value"]) for e in SUBMIT_EXAMPLES.values()],
    ]


@pytest.fixture(scope="module", params=range(len(_bodies())))
def stored_json(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A spec as the api stores it (the JSON the database holds)."""
    body = _bodies()[request.param]
    validated = validate_comparison(ComparisonSpec.model_validate(body), SETTINGS)
    out: dict[str, Any] = json.loads(json.dumps(validated.spec.dump()))
    return out


def test_what_is_stored_loads_back_to_the_same_json(stored_json: dict[str, Any]) -> None:
    loaded = StoredSpec.load(stored_json)
    assert loaded.dump() == stored_json
    assert StoredSpec.load(loaded.dump()) == loaded
    assert loaded.variant_names == [v["name"] for v in stored_json["variants"]]


def test_the_reuse_key_is_the_one_computed_from_the_json(stored_json: dict[str, Any]) -> None:
    versions = {"tensorflow": "2.x", "keras": "3.x", "numpy": None}
    typed = StoredSpec.load(stored_json)
    for index in range(len(stored_json["variants"])):
        for seed in (0, 7):
            assert trial_hash(typed, index, seed, versions) == dict_hash(
                stored_json, index, seed, versions
            )


def test_a_spec_stored_by_1_0_loads_as_what_it_ran(stored_json: dict[str, Any]) -> None:
    old = legacy_of(stored_json)
    loaded = StoredSpec.load(old)
    assert loaded.dataset.split == "fixed"  # not today's default, per_seed
    assert loaded.analysis is None
    assert loaded.analysis_or_default == AnalysisSpec()
    assert loaded.design == DesignSpec(split="fixed", seeds=old["seeds"])
    assert loaded.schedule is None
    assert loaded.baseline is None
    assert loaded.equivalence_margin == 0.01
    # Its trials keep the keys they were stored with.
    assert trial_hash(loaded, 0, 3, {}) == dict_hash(old, 0, 3, {})
    # The fixed split sets nothing aside for the probe (it is part of the test set).
    assert loaded.probe_reserved == 256
    assert trial_hash(loaded, 0, 3, {}) == trial_hash(
        StoredSpec.load({**old, "dataset": {**old["dataset"], "split": "fixed"}}), 0, 3, {}
    )


def test_the_design_the_report_reads() -> None:
    spec = stored_spec(
        seeds={"min": 3, "max": 10, "step": 3}, baseline="cnn", equivalence_margin=0.5
    )
    assert spec.design == DesignSpec(
        split="per_seed",
        baseline="cnn",
        equivalence_margin=0.5,
        seeds=SeedSchedule(min=3, max=10, step=3),
    )
    assert spec.initial_seeds == [0, 1, 2]
    assert spec.round_progress(2 * 6) == (2, 4)


def test_a_variant_parses_to_the_models_layers() -> None:
    variant = stored_spec().variants[0]
    parsed = variant.parse()
    assert parsed.layers is not None
    assert [layer.model_dump(mode="json")["type"] for layer in parsed.layers] == [
        layer["type"] for layer in small_cnn()["layers"]
    ]
    assert parsed.input_shape == (28, 28, 1)


def test_the_column_stores_json_and_reads_the_model(session: Session) -> None:
    spec = stored_spec(callback_url="https://example.org/hook")
    session.add(Comparison(id="c", name="n", spec=spec))
    session.commit()
    session.expunge_all()
    raw = session.execute(select(type_coerce(Comparison.spec, JSON))).scalar_one()
    assert raw == spec.dump()
    row = session.get_one(Comparison, "c")
    assert isinstance(row.spec, StoredSpec)
    assert row.spec == spec
    # A JSON path in SQL, as core.trials.webhooks selects the comparisons with a callback.
    url = session.scalar(select(Comparison.spec["callback_url"].as_string()))
    assert url == "https://example.org/hook"


def test_a_row_stored_by_1_0_reads_with_its_fixed_split(session: Session) -> None:
    current = stored_spec().dump()
    session.add(Comparison(id="c", name="n", spec=stored_spec()))
    session.commit()
    session.execute(
        update(Comparison)
        .where(Comparison.id == "c")
        .values(spec=type_coerce(legacy_of(current), JSON))
    )
    session.commit()
    session.expunge_all()
    row = session.get_one(Comparison, "c")
    assert row.spec.dataset.split == "fixed"
    assert row.spec.analysis is None
    assert row.spec.variants[1].name == "mlp"


def test_only_the_model_is_written(session: Session) -> None:
    as_dict: Any = stored_spec().dump()  # the wrong type on purpose: the column must refuse it
    session.add(Comparison(id="c", name="n", spec=as_dict))
    with pytest.raises(StatementError, match=re.escape("takes a core.spec.StoredSpec, not dict")):
        session.commit()


def test_the_analyses_column_reads_the_models_analyses(session: Session) -> None:
    """Comparison.analyses holds models.analysis.Analysis by variant; the JSON is what the api
    showed before (Analysis.to_dict), and an analysis stored by 1.0 (no activation memory)
    loads with ``activations`` None."""
    validated = validate_comparison(ComparisonSpec.model_validate(tiny_spec()), SETTINGS)
    session.add(Comparison(id="c", name="n", spec=validated.spec, analyses=validated.analyses))
    session.commit()
    raw = session.execute(select(type_coerce(Comparison.analyses, JSON))).scalar_one()
    assert raw == {name: a.to_dict() for name, a in validated.analyses.items()}
    session.expunge_all()
    assert session.get_one(Comparison, "c").analyses == validated.analyses
    old = {name: {k: v for k, v in a.items() if k != "activations"} for name, a in raw.items()}
    session.execute(update(Comparison).values(analyses=type_coerce(old, JSON)))
    session.commit()
    session.expunge_all()
    loaded = session.get_one(Comparison, "c").analyses
    assert loaded["cnn"].activations is None
    assert loaded["cnn"].params == validated.analyses["cnn"].params
    assert loaded["cnn"].layers[0].output_shape == (26, 26, 4)
