"""worker.training: a real (tiny) Keras fit with the stop, resume and early-stopping paths."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.spec import EarlyStopping, TrainingSpec
from tests.support.helpers import native_layers
from worker import training as training_mod
from worker.checkpoint import Checkpoint
from worker.datasets import Split, load_dataset, make_split
from worker.training import (
    EvaluationConfig,
    FunctionHooks,
    ModelConfig,
    ResumeConfig,
    TrainResult,
    TrialConfig,
    train_trial,
)
from worker.warm_models import PROCESS_MODELS

pytestmark = pytest.mark.training  # fits Keras models in this process

LAYERS = native_layers(
    {
        "name": "small",
        "layers": [
            {"type": "Conv2D", "filters": 8, "kernel_size": [3, 3], "activation": "relu"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }
)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    ds = load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"))
    # 420 train (14 batches of 32), 60 validation, 120 test.
    return make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0, max_samples=600)


def run(
    split: Split,
    seed: int = 0,
    *,
    training: TrainingSpec | None = None,
    checkpoint_dir: Path | None = None,
    previous_epochs: Sequence[Mapping[str, float]] = (),
    max_seconds: float | None = None,
    measure_inference: bool = True,
    warm_models: int = 4,
    **hooks: Any,
) -> TrainResult:
    """``train_trial`` on the tiny model; the config's parts and the hooks' functions
    (``on_epoch``, ``should_stop``, ``on_resume``, ``lease_guard``) given as keywords."""
    config = TrialConfig(
        model=ModelConfig(LAYERS, (8, 8, 1)),
        split=split,
        training=training or TrainingSpec(epochs=2, batch_size=32),
        seed=seed,
        max_seconds=max_seconds,
        resume=ResumeConfig(checkpoint_dir, previous_epochs),
        evaluation=EvaluationConfig(measure_inference=measure_inference),
        warm_models=warm_models,
    )
    return train_trial(config, FunctionHooks(**hooks))


def test_trial_trains_and_reports_each_epoch(split: Split) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    r = run(split, on_epoch=lambda e, logs: seen.append((e, logs)))
    assert [e for e, _ in seen] == [1, 2]
    assert r.epochs == [logs for _, logs in seen]
    for _, logs in seen:
        assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(logs)
        assert all(isinstance(v, float) for v in logs.values())
    assert r.first_epoch == 1
    assert r.stop_reason is None
    assert 0.0 <= (r.test_accuracy or -1) <= 1.0
    assert r.test_loss is not None
    assert np.isfinite(r.test_loss)
    assert r.test_metrics["loss"] == r.test_loss
    assert r.params == r.trainable_params == (3 * 3 * 8 + 8) + (6 * 6 * 8 * 10 + 10)
    assert r.best_val_accuracy == max(logs["val_accuracy"] for _, logs in seen)
    assert r.train_seconds > 0
    assert r.inference_ms_per_sample is not None
    assert r.inference_ms_per_sample > 0
    assert r.device in ("CPU",) or r.device.startswith("GPU:0")


def test_same_seed_same_numbers_other_seed_differs(split: Split) -> None:
    a, b, c = run(split, seed=7), run(split, seed=7), run(split, seed=8)
    assert a.test_loss == b.test_loss
    assert a.test_accuracy == b.test_accuracy
    assert [e["loss"] for e in a.epochs] == [e["loss"] for e in b.epochs]
    assert a.test_loss != c.test_loss


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batches fit started (its stop checks spied on)."""
    started: list[int] = []
    original = training_mod._Monitor.batch_begin

    def spy(self: Any, batch: int, steps: int | None) -> bool:
        started.append(batch)
        return original(self, batch, steps)

    monkeypatch.setattr(training_mod._Monitor, "batch_begin", spy)
    return started


def test_cancel_stops_inside_the_first_epoch(
    split: Split, batches: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training_mod, "_POLL_SECONDS", 0.0)
    calls: list[int] = []
    seen: list[int] = []

    def should_stop() -> str | None:
        calls.append(1)
        return "cancelled" if len(calls) >= 2 else None  # the first: right before fit

    r = run(
        split,
        training=TrainingSpec(epochs=5, batch_size=32),
        should_stop=should_stop,
        on_epoch=lambda e, _: seen.append(e),
    )
    assert r.stop_reason == "cancelled"
    assert r.epochs == []
    assert seen == []
    assert len(calls) == 2
    # Asked before batch 1 (after batch 0 ended); Keras runs batch 1, then leaves the epoch.
    assert batches == [0, 1]
    # A stopped run is not evaluated: a cancel does not wait for the test split.
    assert (r.test_loss, r.test_accuracy, r.test_metrics) == (None, None, {})
    assert r.inference_ms_per_sample is None


def test_a_cancel_before_fit_and_before_evaluate_is_honoured(
    split: Split, batches: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    before_fit = run(split, should_stop=lambda: "cancelled")
    assert (before_fit.stop_reason, before_fit.epochs, batches) == ("cancelled", [], [])
    assert before_fit.test_loss is None

    # Polls far apart: fit never asks, so only the check right before evaluate sees it.
    monkeypatch.setattr(training_mod, "_POLL_SECONDS", 1e9)
    answers = iter([None, "cancelled"])
    after_fit = run(split, should_stop=lambda: next(answers))
    assert [e["epoch"] for e in after_fit.epochs] == [1.0, 2.0]
    assert after_fit.stop_reason == "cancelled"
    assert after_fit.test_loss is None
    assert next(answers, "asked no more") == "asked no more"


def test_time_budget(split: Split) -> None:
    r = run(split, training=TrainingSpec(epochs=50, batch_size=32), max_seconds=1e-3)
    assert r.stop_reason == "time_budget"
    assert len(r.epochs) == 0


def test_resume_continues_after_the_last_finished_epoch(
    split: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training_mod, "_POLL_SECONDS", 0.0)
    ckpt = tmp_path / "ckpt"
    state = {"done": 0, "calls_after": 0}

    def on_epoch(epoch: int, _: dict[str, float]) -> None:
        state["done"] = epoch

    def should_stop() -> str | None:
        if state["done"] >= 1:
            state["calls_after"] += 1
            # The first call after epoch 1 is its own epoch-end check; stop inside epoch 2.
            if state["calls_after"] >= 3:
                return "lease_lost"
        return None

    spec = TrainingSpec(epochs=3, batch_size=32)
    first = run(
        split, training=spec, checkpoint_dir=ckpt, on_epoch=on_epoch, should_stop=should_stop
    )
    assert first.stop_reason == "lease_lost"
    assert [e["epoch"] for e in first.epochs] == [1.0]
    # The interrupted epoch 2 was neither saved nor reported; the backup is kept, with the
    # row of its epoch (stored by the next attempt if the worker died before writing it).
    state = json.loads((ckpt / "state.json").read_text())
    assert (state["epoch"], state["row"]) == (1, first.epochs[0])
    assert state["weights"].startswith("epoch-1-")
    assert sorted(p.name for p in ckpt.iterdir()) == [state["weights"], "state.json"]
    # A worker killed while writing the next resume point leaves torn temporary files, which
    # nothing points at (Keras's BackupAndRestore wrote in place, and this failed the retry);
    # they are another attempt's, and this one's clean-up leaves them alone.
    torn = [ckpt / "tmp-epoch-2-0ther.weights.h5", ckpt / "state.json.0ther.tmp"]
    torn[0].write_bytes(b"\x89HDF\r\n torn")
    torn[1].write_text('{"epoch": 2, "wei')

    seen: list[int] = []
    resumed_at: list[tuple[int, Any]] = []

    def on_resume(epochs: int, row: Any) -> float:
        resumed_at.append((epochs, row))
        return 0.0

    second = run(
        split,
        training=spec,
        checkpoint_dir=ckpt,
        on_epoch=lambda e, _: seen.append(e),
        on_resume=on_resume,
        previous_epochs=first.epochs,
    )
    assert resumed_at == [(1, first.epochs[0])]
    assert second.first_epoch == 2
    assert seen == [2, 3]
    assert second.stop_reason is None
    assert [e["epoch"] for e in second.epochs] == [2.0, 3.0]
    best = max(e["val_accuracy"] for e in [*first.epochs, *second.epochs])
    assert second.best_val_accuracy == best
    assert all(p.exists() for p in torn)
    # Ended by itself: the checkpoint is kept, final, until the caller stored the result.
    state = json.loads((ckpt / "state.json").read_text())
    assert (state["epoch"], state["final"], state["stop_reason"]) == (3, True, None)

    # A worker that dies before storing the result: the retry trains nothing and evaluates
    # the very same weights.
    resumed_at.clear()
    third = run(
        split,
        training=spec,
        checkpoint_dir=ckpt,
        on_epoch=lambda e, _: seen.append(e),
        on_resume=on_resume,
    )
    assert resumed_at == [(3, None)]
    assert (third.epochs, third.first_epoch, seen) == ([], 4, [2, 3])
    assert third.test_loss == second.test_loss
    assert third.test_metrics == second.test_metrics


def test_a_final_checkpoint_keeps_the_stop_reason_and_the_best_weights(
    split: Split, tmp_path: Path
) -> None:
    """Early stopping with restore_best_weights: the weights evaluated are the best epoch's,
    and a retry after a crash evaluates those same weights, with the same stop reason."""
    spec = TrainingSpec(
        epochs=6,
        batch_size=32,
        early_stopping=EarlyStopping(
            monitor="loss", patience=0, min_delta=100.0, restore_best_weights=True
        ),
    )
    ckpt = tmp_path / "ckpt"
    first = run(split, training=spec, checkpoint_dir=ckpt)
    assert first.stop_reason == "early_stopping"
    retry = run(split, training=spec, checkpoint_dir=ckpt)
    assert (retry.epochs, retry.stop_reason) == ([], "early_stopping")
    assert retry.test_loss == first.test_loss


def test_resume_restores_the_optimizer_state(split: Split, tmp_path: Path) -> None:
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(split.x_train, split.y_train, batch_size=32, epochs=1, verbose=0)
    ckpt = Checkpoint(tmp_path / "ckpt")
    ckpt.save(model, 1)
    weights = ckpt.weights

    again = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    again.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    resume = ckpt.restore(again)
    assert resume is not None
    assert resume.epoch == 1
    assert int(again.optimizer.iterations) == int(model.optimizer.iterations) == 14
    for a, b in zip(model.optimizer.variables, again.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(model.weights, again.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert sorted(p.name for p in ckpt.folder.iterdir()) == [weights, "state.json"]
    ckpt.save(model, 2)  # the older weights go once the new resume point is committed
    assert ckpt.weights != weights
    assert sorted(p.name for p in ckpt.folder.iterdir()) == [ckpt.weights, "state.json"]


def test_a_checkpoint_commit_runs_under_the_lease_guard(split: Split, tmp_path: Path) -> None:
    """The caller's guard holds the lease around the commit; when it refuses (the lease is
    gone), the older resume point stays and the new weights are never pointed at."""
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.compile(optimizer="adam", loss="mse")
    guarded: list[int] = []
    lost = False

    def guard(commit: Any) -> None:
        if lost:
            raise RuntimeError("lease lost")
        guarded.append(1)
        commit()

    ckpt = Checkpoint(tmp_path / "ckpt", guard)
    ckpt.save(model, 1)
    assert guarded == [1]
    before = (ckpt.folder / "state.json").read_text()
    lost = True
    with pytest.raises(RuntimeError):
        ckpt.save(model, 2)
    assert (ckpt.folder / "state.json").read_text() == before
    other = Checkpoint(tmp_path / "ckpt")
    assert other.token != ckpt.token  # two attempts never write one file name


def test_final_weights_never_replace_the_committed_resume_point(
    split: Split, tmp_path: Path
) -> None:
    """Training ends with new weights at the epoch of the last resume point (best weights
    restored, or the time budget mid-epoch): they go to a file of their own, so a failed
    final commit leaves the committed resume point's weights as they were."""
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(split.x_train, split.y_train, batch_size=32, epochs=1, verbose=0)
    refuse = False

    def guard(commit: Any) -> None:
        if refuse:
            raise RuntimeError("the final commit never happens (lease lost, worker killed)")
        commit()

    ckpt = Checkpoint(tmp_path / "ckpt", guard)
    ckpt.save(model, 1)
    state = (ckpt.folder / "state.json").read_text()
    committed = ckpt.folder / json.loads(state)["weights"]
    weights = committed.read_bytes()
    model.fit(split.x_train, split.y_train, batch_size=32, epochs=1, verbose=0)  # others

    refuse = True
    with pytest.raises(RuntimeError):
        ckpt.finish(model, 1, "early_stopping", fresh=True)
    assert (ckpt.folder / "state.json").read_text() == state
    assert committed.read_bytes() == weights
    again = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    again.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert Checkpoint(ckpt.folder).restore(again) is not None

    refuse = False  # committed: the final weights are the resume point, the old ones go
    ckpt.finish(model, 1, "early_stopping", fresh=True)
    final = json.loads((ckpt.folder / "state.json").read_text())
    assert (final["final"], final["weights"]) == (True, ckpt.weights)
    assert ckpt.weights is not None
    assert ckpt.weights.endswith("-final.weights.h5")
    assert sorted(p.name for p in ckpt.folder.iterdir()) == [ckpt.weights, "state.json"]


def test_an_unusable_checkpoint_trains_from_scratch(split: Split, tmp_path: Path) -> None:
    """A damaged resume point costs the epochs it held, never the trial."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "epoch-1.weights.h5").write_bytes(b"not an HDF5 file")
    (ckpt / "state.json").write_text('{"epoch": 1, "weights": "epoch-1.weights.h5"}')
    seen: list[int] = []
    resume_points: list[int] = []

    def on_resume(epochs: int, row: Any) -> float:
        resume_points.append(epochs)
        return 0.0

    resumed = run(
        split, checkpoint_dir=ckpt, on_epoch=lambda e, _: seen.append(e), on_resume=on_resume
    )
    assert resume_points == [0]  # the caller is told to forget the rows past epoch 0
    assert resumed.first_epoch == 1
    assert seen == [1, 2]
    # From scratch means from the seed's initial weights: the same numbers as a fresh run.
    fresh = run(split)
    assert [e["loss"] for e in resumed.epochs] == [e["loss"] for e in fresh.epochs]


def test_early_stopping(split: Split) -> None:
    spec = TrainingSpec(
        epochs=6,
        batch_size=32,
        early_stopping=EarlyStopping(monitor="loss", patience=0, min_delta=100.0),
    )
    r = run(split, training=spec)
    assert r.stop_reason == "early_stopping"
    assert len(r.epochs) == 2


def test_categorical_loss_and_top_k_metric(split: Split) -> None:
    spec = TrainingSpec(
        epochs=1,
        batch_size=64,
        optimizer="sgd",
        learning_rate=0.05,
        loss="categorical_crossentropy",
        metrics=["accuracy", "sparse_top_k_categorical_accuracy"],
    )
    r = run(split, training=spec)
    assert "sparse_top_k_categorical_accuracy" in r.test_metrics
    assert r.test_metrics["sparse_top_k_categorical_accuracy"] >= (r.test_accuracy or 0.0)


def test_mixed_precision_and_jit_options(split: Split) -> None:
    import keras

    before = keras.config.dtype_policy().name
    mixed = run(
        split,
        training=TrainingSpec(
            epochs=1,
            batch_size=32,
            mixed_precision=True,
            jit_compile=False,
            # Top-k refuses half-precision predictions: the output layer computes in float32.
            metrics=["accuracy", "sparse_top_k_categorical_accuracy"],
        ),
    )
    assert keras.config.dtype_policy().name == before  # the worker's next trial is unaffected
    assert mixed.test_accuracy is not None
    assert mixed.test_metrics["sparse_top_k_categorical_accuracy"] >= mixed.test_accuracy
    assert mixed.test_loss is not None
    assert np.isfinite(mixed.test_loss)
    plain = run(split, training=TrainingSpec(epochs=1, batch_size=32, jit_compile=False))
    assert plain.test_loss != mixed.test_loss  # bfloat16 compute really was used


def test_inference_is_measured_only_when_asked(split: Split) -> None:
    assert run(split, measure_inference=False).inference_ms_per_sample is None
    measured = run(split).inference_ms_per_sample
    assert measured is not None
    assert measured > 0


REGULARISED = native_layers(
    {
        "name": "regularised",
        "layers": [
            {"type": "Conv2D", "filters": 4, "kernel_size": [3, 3], "activation": "relu"},
            {"type": "BatchNormalization"},
            {"type": "Flatten"},
            {"type": "Dropout", "rate": 0.3},
            {"type": "Dense", "units": 16, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }
)


def _plain_keras(split: Split, seed: int) -> list[float]:
    """The same trial written as a user would: a new model, compiled, fitted, evaluated."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, (3, 3), activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.001),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        split.x_train,
        split.y_train,
        batch_size=32,
        epochs=2,
        validation_data=(split.x_val, split.y_val),
        shuffle=True,
        verbose=0,
    ).history
    test_loss = model.evaluate(split.x_test, split.y_test, batch_size=32, verbose=0)[0]
    return [*history["loss"], *history["val_loss"], float(test_loss)]


@pytest.mark.parametrize("warm_models", [4, 0])
def test_warm_models_give_exactly_the_numbers_of_a_new_keras_model(
    split: Split, warm_models: int
) -> None:
    """Seeds interleaved on one warm model (dropout and batch norm included): every trial's
    losses equal a plain Keras script's bit for bit, and only the first one traced."""
    training_mod.clear_warm_models()
    results = []
    for seed in (3, 4, 3):
        r = train_trial(
            TrialConfig(
                ModelConfig(REGULARISED, (8, 8, 1)),
                split,
                TrainingSpec(epochs=2, batch_size=32),
                seed,
                warm_models=warm_models,
            )
        )
        results.append(r)
        ours = [*(e["loss"] for e in r.epochs), *(e["val_loss"] for e in r.epochs), r.test_loss]
        assert ours == _plain_keras(split, seed), f"seed {seed}"
    assert [r.warm_model for r in results] == ([False, True, True] if warm_models else [False] * 3)
    assert results[0].test_loss == results[2].test_loss != results[1].test_loss


def test_a_warm_model_resumes_from_a_checkpoint_as_a_new_one_does(
    split: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setattr(training_mod, "_POLL_SECONDS", 0.0)
    training_mod.clear_warm_models()
    spec = TrainingSpec(epochs=3, batch_size=32)
    ckpt = tmp_path / "ckpt"
    done = {"epochs": 0}

    def on_epoch(epoch: int, _: dict[str, float]) -> None:
        done["epochs"] = epoch

    first = run(
        split,
        seed=5,
        training=spec,
        checkpoint_dir=ckpt,
        on_epoch=on_epoch,
        should_stop=lambda: "lease_lost" if done["epochs"] >= 2 else None,
    )
    assert first.stop_reason == "lease_lost"
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 2
    shutil.copytree(ckpt, tmp_path / "copy")

    warm = run(split, seed=5, training=spec, checkpoint_dir=ckpt)
    new = run(split, seed=5, training=spec, checkpoint_dir=tmp_path / "copy", warm_models=0)
    assert warm.warm_model
    assert not new.warm_model
    assert warm.first_epoch == new.first_epoch == 3
    assert [e["loss"] for e in warm.epochs] == [e["loss"] for e in new.epochs]
    assert warm.test_loss == new.test_loss


def test_the_time_already_spent_is_charged_to_the_budget(split: Split) -> None:
    """A resumed attempt gets what is left of the trial's time budget, not a new one."""
    spec = TrainingSpec(epochs=5, batch_size=32, max_seconds=3600)
    r = run(split, training=spec, on_resume=lambda epochs, row: 3600.0)
    assert r.stop_reason == "time_budget"
    assert len(r.epochs) <= 1


def test_a_failed_fit_does_not_keep_its_model_warm(split: Split) -> None:
    training_mod.clear_warm_models()

    def explode() -> str | None:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        run(split, should_stop=explode)
    assert not len(PROCESS_MODELS)
    ok = run(split)
    assert not ok.warm_model  # built afresh, then kept
    assert len(PROCESS_MODELS) == 1
    assert run(split).warm_model
