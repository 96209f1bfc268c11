"""No input reaches Keras deserialization: validate, build and train with it booby-trapped.

The worker's in-process path (``worker.tasks.run_trial``) runs against a real Postgres database
while every Keras deserialization entry point is patched to record its call and raise. A
comparison that uses both variant forms (``layers`` and a ``keras_config`` from ``to_json()``)
must still train to the end, with none of them called.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_database
from tests.helpers import small_cnn, tiny_spec

ENTRY_POINTS = [
    ("keras.saving", "deserialize_keras_object"),
    ("keras.saving", "load_model"),
    ("keras.models", "model_from_json"),
    ("keras.models", "load_model"),
    ("keras.layers", "deserialize"),
    ("keras.src.models.model", "model_from_json"),
    ("keras.src.saving.saving_api", "load_model"),
    ("keras.src.layers", "deserialize"),
]
CLASS_METHODS = ["Model", "Sequential", "Functional"]


@pytest.fixture
def in_process_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from core.config import get_settings
    from core.db import get_engine, get_sessionmaker
    from core.migrate import upgrade

    with fresh_database("archbench_sec") as url:
        monkeypatch.setenv("ARCHBENCH_DATABASE_URL", url)
        monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
        for cache in (get_settings, get_engine, get_sessionmaker):
            cache.cache_clear()
        try:
            upgrade(get_settings().database_url)
            yield url
        finally:
            get_engine().dispose()
            for cache in (get_settings, get_engine, get_sessionmaker):
                cache.cache_clear()


def _keras_json_variant() -> dict[str, Any]:
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return {"name": "from_keras", "keras_config": json.loads(model.to_json())}


def test_keras_deserialization_is_never_called(
    in_process_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    import keras

    from core.comparisons import create_comparison
    from core.config import get_settings
    from core.db import session_scope
    from core.spec import ComparisonSpec
    from core.tables import Trial
    from core.validation import validate_comparison
    from worker.tasks import run_trial

    variants = [small_cnn(), _keras_json_variant()]  # built before the trap is set
    calls: list[str] = []

    def trap(name: str) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return called

    for module, attr in ENTRY_POINTS:
        monkeypatch.setattr(importlib.import_module(module), attr, trap(f"{module}.{attr}"))
    for cls in CLASS_METHODS:
        target = getattr(keras, cls, None) or getattr(keras.src.models, cls)
        monkeypatch.setattr(target, "from_config", classmethod(trap(f"{cls}.from_config")))

    spec = ComparisonSpec.model_validate(
        tiny_spec("trap", variants=variants, seeds=[0], epochs=1, samples=200)
    )
    validated = validate_comparison(spec, get_settings())
    assert validated.spec["variants"][1]["source"] == "keras_config"
    with session_scope() as s:
        _, trial_ids, created = create_comparison(
            s, tenant="default", validated=validated, idempotency_key=None, request_hash="x"
        )
    assert created
    assert len(trial_ids) == 2
    outcomes = [run_trial(t) for t in trial_ids]
    with session_scope() as s:
        errors = [t.error for t in s.query(Trial).where(Trial.id.in_(trial_ids))]
    assert calls == []
    assert outcomes == ["succeeded", "succeeded"], errors
