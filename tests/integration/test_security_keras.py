"""No input reaches Keras deserialization: validate, build and train with it booby-trapped.

The worker's in-process path (``worker.tasks.run_trial``) runs against a real Postgres database
while every Keras deserialization entry point records its call and raises, wherever it is
bound: the public aliases (``keras.saving.deserialize_keras_object``) and the internal ones
Keras itself calls (``keras.src.saving.serialization_lib.deserialize_keras_object``, which a
layer reaches when given ``kernel_initializer="glorot_uniform"``), the ``saving_lib`` and
legacy loaders, every ``from_config``, ``model_from_json``, and the ``get``/``deserialize`` of
initializers, activations, regularizers, constraints, losses, metrics and optimizers (``get``
only when asked to resolve a name or a config: layers call it on every argument, and an
object passes through untouched). A comparison that uses both variant forms (``layers`` and a
``keras_config`` from ``to_json()``) must still train to the end, with none of them called;
so must a trial resumed from its checkpoint (``load_weights`` reads weights, not a config).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.helpers import small_cnn, small_mlp, tiny_spec
from tests.support.services import fresh_database

pytestmark = pytest.mark.services

# Functions that turn a name or a config into an object or a model: trapped in every module
# that binds them (``from x import f`` makes a binding of its own).
FUNCTIONS = [
    ("keras.src.saving.serialization_lib", "deserialize_keras_object"),
    ("keras.src.saving.saving_lib", "load_model"),
    ("keras.src.saving.saving_lib", "_load_model_from_dir"),
    ("keras.src.saving.saving_lib", "_load_model_from_fileobj"),
    ("keras.src.saving.saving_lib", "_model_from_config"),
    ("keras.src.saving.saving_api", "load_model"),
    ("keras.src.legacy.saving.legacy_h5_format", "load_model_from_hdf5"),
    ("keras.src.legacy.saving.saving_utils", "model_from_config"),
    ("keras.src.legacy.saving.json_utils", "decode_and_deserialize"),
    ("keras.src.models.model", "model_from_json"),
    ("keras.src.layers", "deserialize"),
]
# Modules whose ``deserialize`` always, and ``get`` given a str or dict, resolve by name.
RESOLVERS = [
    "keras.src.initializers",
    "keras.src.activations",
    "keras.src.regularizers",
    "keras.src.constraints",
    "keras.src.losses",
    "keras.src.metrics",
    "keras.src.optimizers",
]


@pytest.fixture
def in_process_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from core.config import get_settings
    from core.store.db import get_engine, get_sessionmaker
    from core.store.migrate import upgrade

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


def _bindings(function: Any) -> list[tuple[Any, str]]:
    """Every (module, attribute) among the loaded keras modules bound to ``function``."""
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "keras" or name.startswith("keras.")):
            continue
        for attr, value in list(vars(module).items()):
            if value is function:
                found.append((module, attr))
    return found


def _subclasses(cls: type[object]) -> Iterator[type[object]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


def install_traps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Booby-trap Keras's deserialization; returns the list each trapped call is added to."""
    import keras
    from keras.src.ops.operation import Operation

    for legacy in ("legacy_h5_format", "json_utils", "saving_utils"):
        importlib.import_module(f"keras.src.legacy.saving.{legacy}")
    calls: list[str] = []

    def trap(name: str, original: Callable[..., Any] | None = None) -> Callable[..., Any]:
        def called(*args: Any, **kwargs: Any) -> Any:
            if original is not None:  # a ``get``: objects pass, names and configs do not
                identifier = args[0] if args else kwargs.get("identifier")
                if not isinstance(identifier, str | dict):
                    return original(*args, **kwargs)
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return called

    def trap_everywhere(module_name: str, attr: str, *, names_only: bool = False) -> None:
        function = getattr(importlib.import_module(module_name), attr)
        bound = _bindings(function)
        assert bound, f"{module_name}.{attr} is bound nowhere"
        replacement = trap(f"{module_name}.{attr}", function if names_only else None)
        for module, name in bound:
            monkeypatch.setattr(module, name, replacement)

    for module_name, attr in FUNCTIONS:
        trap_everywhere(module_name, attr)
    for module_name in RESOLVERS:
        trap_everywhere(module_name, "deserialize")
        trap_everywhere(module_name, "get", names_only=True)
    bases = [
        Operation,
        keras.optimizers.Optimizer,
        keras.losses.Loss,
        keras.metrics.Metric,
        keras.initializers.Initializer,
        keras.regularizers.Regularizer,
    ]
    for base in bases:
        for cls in _subclasses(base):
            if "from_config" in vars(cls):
                name = f"{cls.__module__}.{cls.__qualname__}.from_config"
                monkeypatch.setattr(cls, "from_config", classmethod(trap(name)))
    return calls


def test_the_traps_catch_what_the_old_test_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer given an initializer by name reaches the internal deserializer: caught."""
    import keras

    calls = install_traps(monkeypatch)
    with pytest.raises(AssertionError):
        keras.layers.Dense(3, kernel_initializer="glorot_uniform")
    with pytest.raises(AssertionError):
        keras.Sequential.from_config({"layers": []})
    with pytest.raises(AssertionError):
        keras.models.model_from_json("{}")
    assert "keras.src.initializers.get" in calls
    assert any(c.endswith("Sequential.from_config") for c in calls)
    assert "keras.src.models.model.model_from_json" in calls
    calls.clear()
    # Objects pass: what the builder and the worker hand Keras.
    keras.layers.Dense(
        3,
        kernel_initializer=keras.initializers.GlorotUniform(),
        bias_initializer=keras.initializers.Zeros(),
    )
    assert calls == []


def test_keras_deserialization_is_never_called(
    in_process_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variants = [small_cnn(), _keras_json_variant()]  # built before the trap is set
    variants[0]["layers"][0] |= {"kernel_regularizer": "l2", "bias_initializer": "random_normal"}
    # Augmentation layers, a schedule and optimizer arguments build from objects too.
    augmented = small_mlp("augmented")
    augmented["layers"][:0] = [
        {"type": "RandomFlip"},
        {"type": "RandomRotation", "factor": 0.1},
        {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.1},
        {"type": "RandomZoom", "height_factor": 0.1},
        {"type": "RandomContrast", "factor": 0.2, "value_range": [0, 1]},
    ]
    cosine = {"schedule": "warmup_cosine", "initial_learning_rate": 0.001, "decay_steps": 10}
    augmented["training"] = {
        "optimizer": "sgd",
        "momentum": 0.9,
        "clipnorm": 1.0,
        "learning_rate": {**cosine, "warmup_target": 0.01, "warmup_steps": 2},
    }
    variants.append(augmented)
    _trapped_run(variants, monkeypatch, ["layers", "keras_config", "layers"])


def test_graphs_build_and_train_without_deserialization(
    in_process_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A native graph and an imported Functional model, built as Functional models by the
    worker and trained, their Grams taken over every node: no Keras deserialization."""
    import keras

    from tests.support.graphs import GRAPHS

    L = keras.layers
    x_in = keras.Input((28, 28, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(x_in)
    x = L.Add()([x, L.Conv2D(4, 3, padding="same")(x)])
    out = L.Dense(10, activation="softmax")(L.Flatten()(x))
    functional = {
        "name": "functional",
        "keras_config": json.loads(keras.Model(x_in, out).to_json()),
    }
    variants = [{"name": "graph", "layers": GRAPHS["resnet_basic"]}, functional]
    _trapped_run(variants, monkeypatch, ["layers", "keras_config"])


def _trapped_run(
    variants: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, sources: list[str]
) -> None:
    """Validate, store and run one seed of each variant in this process, traps set."""
    from core.config import get_settings
    from core.spec import ComparisonSpec
    from core.store.db import session_scope
    from core.store.tables import Trial
    from core.trials.comparisons import create_comparison
    from core.trials.validation import validate_comparison
    from worker.tasks import run_trial
    from worker.training import clear_warm_models

    clear_warm_models()  # this process may hold compiled models: build and compile anew
    calls = install_traps(monkeypatch)

    spec = ComparisonSpec.model_validate(
        tiny_spec("trap", variants=variants, seeds=[0], epochs=1, samples=200)
    )
    validated = validate_comparison(spec, get_settings())
    assert [v.source for v in validated.spec.variants] == sources
    with session_scope() as s:
        _, trial_ids, created = create_comparison(
            s, tenant="default", validated=validated, idempotency_key=None, request_hash="x"
        )
    assert created
    assert len(trial_ids) == len(variants)
    outcomes = [run_trial(t) for t in trial_ids]
    with session_scope() as s:
        errors = [t.error for t in s.query(Trial).where(Trial.id.in_(trial_ids))]
    assert calls == []
    assert outcomes == ["succeeded"] * len(variants), errors


def test_resuming_from_a_checkpoint_deserializes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.spec import TrainingSpec
    from models.analysis import analyze_variant
    from models.spec import parse_variant
    from worker import training as training_mod
    from worker.datasets import Split
    from worker.training import (
        EvaluationConfig,
        FunctionHooks,
        ModelConfig,
        ResumeConfig,
        TrialConfig,
        clear_warm_models,
        train_trial,
    )

    monkeypatch.setattr(training_mod, "_POLL_SECONDS", 0.0)  # should_stop asked at every check
    layers, shape, _ = analyze_variant(
        parse_variant(small_cnn()), input_shape=(28, 28, 1), num_classes=10
    )
    rng = np.random.default_rng(0)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.random((n, 28, 28, 1)).astype(np.float32), np.arange(n) % 10

    split = Split(*part(64), *part(16), *part(16))
    training = TrainingSpec(epochs=4, batch_size=16, optimizer="nadam")
    clear_warm_models()
    calls = install_traps(monkeypatch)
    done: list[int] = []
    config = TrialConfig(
        ModelConfig(layers, tuple(shape)),
        split,
        training,
        seed=0,
        resume=ResumeConfig(checkpoint_dir=tmp_path),
        evaluation=EvaluationConfig(measure_inference=False),
        warm_models=0,
    )
    first = train_trial(
        config,
        FunctionHooks(
            on_epoch=lambda epoch, _: done.append(epoch),
            should_stop=lambda: "cancelled" if done else None,
        ),
    )
    assert first.stop_reason == "cancelled"
    assert done == [1]  # stopped at the end of epoch 1, its checkpoint kept
    resumed_at: list[int] = []

    def on_resume(epochs: int, *_: Any) -> float:
        resumed_at.append(epochs)
        return 0.0

    second = train_trial(config, FunctionHooks(on_resume=on_resume))
    # The weights and optimizer state came from the checkpoint; only the rest was trained.
    assert resumed_at == [1]
    assert second.first_epoch == 2
    assert len(second.epochs) == 3
    assert calls == []


def test_the_closed_tables_give_what_keras_gives_for_each_name() -> None:
    """Every initializer and activation name the language allows maps to the object Keras's
    own lookup makes for it (so building from objects changes nothing), and no other."""
    import keras

    from models.builder import _activations, _initializers
    from models.spec import ACTIVATIONS, INITIALIZERS

    initializers, activations = _initializers(), _activations()
    assert set(initializers) == set(INITIALIZERS)
    assert set(activations) == set(ACTIVATIONS)
    for name, cls in initializers.items():
        theirs = keras.initializers.get(name)
        assert type(theirs) is cls, name
        assert {**theirs.get_config(), "seed": None} == {**cls().get_config(), "seed": None}
    for name, function in activations.items():
        assert keras.activations.get(name) is function, name
