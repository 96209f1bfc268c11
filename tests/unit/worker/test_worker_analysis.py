"""worker.analysis on a real (tiny) trained Keras model, and its storage on SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.report.cka import cka_features, cka_matrix, unpack_gram
from core.report.similarity import decode_predictions
from core.spec import AnalysisSpec, TrainingSpec
from core.store.db import make_engine
from core.store.migrate import upgrade
from core.store.tables import Comparison, Trial, TrialLayerGram, TrialPrediction
from core.trials.reuse import collect_unreferenced
from models.spec import parse_variant
from tests.support.helpers import native_layers, stored_spec
from worker.analysis import AnalysisResult, analyse_model, store_analysis
from worker.datasets import Split, load_dataset, make_split
from worker.training import EvaluationConfig, ModelConfig, TrialConfig, train_trial

pytestmark = pytest.mark.training  # fits Keras models in this process

LAYERS = native_layers(
    {
        "name": "small",
        "layers": [
            {"type": "Conv2D", "filters": 6, "kernel_size": [3, 3], "activation": "relu"},
            {"type": "MaxPooling2D", "pool_size": [2, 2]},
            {"type": "Flatten"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 12, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }
)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    ds = load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"))
    return make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0, max_samples=400)


@pytest.fixture(scope="module")
def trained(split: Split) -> dict[str, Any]:
    box: dict[str, Any] = {}

    def analyse(model: Any, s: Split, probs: np.ndarray | None) -> AnalysisResult:
        box["model"] = model
        box["probs"] = probs
        return analyse_model(model, s, AnalysisSpec(probe_size=30), batch_size=32, probs=probs)

    result = train_trial(
        TrialConfig(
            ModelConfig(LAYERS, (8, 8, 1)),
            split,
            TrainingSpec(epochs=1, batch_size=32),
            seed=0,
            evaluation=EvaluationConfig(predict_test=True, analyse=analyse),
            warm_models=0,
        )
    )
    box["result"] = result
    return box


def test_predictions_cover_the_test_set_and_match_the_evaluation(
    split: Split, trained: dict[str, Any]
) -> None:
    a: AnalysisResult = trained["result"].analysis
    assert a.probs is not None
    assert a.examples is not None
    assert a.labels is not None
    assert a.probs.shape == (len(split.y_test), 10)
    assert len(np.unique(a.examples)) == len(split.y_test)
    np.testing.assert_array_equal(a.labels, split.y_test)
    np.testing.assert_allclose(a.probs.sum(axis=1), 1.0, atol=1e-4)
    accuracy = float(np.mean(a.probs.argmax(axis=1) == a.labels))
    assert accuracy == pytest.approx(trained["result"].test_accuracy, abs=1e-6)


def test_grams_are_the_layers_activations(split: Split, trained: dict[str, Any]) -> None:
    """Each stored Gram gives the CKA computed straight from the layer's activations (a
    sub-model of the trained model), so calling layers one by one is the model's forward pass."""
    import keras

    a: AnalysisResult = trained["result"].analysis
    model = trained["model"]
    # Flatten and Dropout are skipped: their CKA would repeat the previous layer's.
    assert [g.name for g in a.grams] == ["conv2d", "max_pooling2d", "dense", "dense_1"]
    assert [g.index for g in a.grams] == [0, 1, 4, 5]
    assert a.probe_size == 30
    x = split.x_test[:30]
    acts = [
        keras.Model(model.inputs, model.layers[g.index].output)
        .predict(x, verbose=0)
        .reshape(30, -1)
        for g in a.grams
    ]
    stored = cka_matrix(
        [unpack_gram(g.gram, 30) for g in a.grams], [unpack_gram(g.gram, 30) for g in a.grams]
    )
    direct = np.array([[cka_features(p, q) for q in acts] for p in acts])
    np.testing.assert_allclose(stored, direct, atol=2e-3)
    np.testing.assert_allclose(np.diag(stored), 1.0, atol=1e-3)


def test_stored_once_replaced_not_doubled_and_collected_after_the_trial(
    tmp_path: Path, trained: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    engine = make_engine(url)
    a: AnalysisResult = trained["result"].analysis
    with Session(engine) as s:
        s.add(Comparison(id="c", name="c", spec=stored_spec()))
        s.add(Trial(id="t", comparison_id="c", variant="v", variant_index=0, seed=0))
        s.commit()
        for _ in range(2):  # a retried commit, or a trial trained again
            store_analysis(s, "t", a)
            s.commit()
        assert s.scalar(select(func.count()).select_from(TrialPrediction)) == 1
        assert s.scalar(select(func.count()).select_from(TrialLayerGram)) == len(a.grams)
        row = s.get(TrialPrediction, "t")
        assert row is not None
        examples, labels, predicted, probs = decode_predictions(row)
        assert a.probs is not None  # predict_test=True
        np.testing.assert_array_equal(labels, a.labels)
        np.testing.assert_array_equal(examples, a.examples)
        np.testing.assert_array_equal(predicted, a.probs.argmax(axis=1))
        np.testing.assert_allclose(probs, a.probs, atol=1e-3)  # float16
        s.delete(s.get(Trial, "t"))
        s.commit()
        assert collect_unreferenced(s) == 1 + len(a.grams)  # no trial refers to them any more
        s.commit()
        assert s.scalar(select(func.count()).select_from(TrialPrediction)) == 0
        assert s.scalar(select(func.count()).select_from(TrialLayerGram)) == 0
    engine.dispose()


def test_analysis_off_records_nothing(split: Split, trained: dict[str, Any]) -> None:
    off = analyse_model(
        trained["model"], split, AnalysisSpec(predictions=False, similarity=False), batch_size=32
    )
    assert off.probs is None
    assert off.grams == []


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_scores_from_one_predict_pass_are_evaluates(split: Split, loss: str) -> None:
    """With predict_test the test scores come from the predictions (one forward pass over the
    test set for both): the same loss (regularization included) and metrics as evaluate."""
    import keras

    from worker.keras_objects import labels_for, scores_from

    layers = parse_variant(
        {
            "name": "reg",
            "layers": [
                {"type": "Flatten"},
                {
                    "type": "Dense",
                    "units": 16,
                    "activation": "relu",
                    "kernel_regularizer": {"l2": 0.01},
                },
                {"type": "Dense", "units": 10, "activation": "softmax"},
            ],
        }
    ).layers
    assert layers is not None
    training = TrainingSpec(
        epochs=1,
        batch_size=32,
        loss=loss,
        metrics=["accuracy", "sparse_top_k_categorical_accuracy"],
    )
    box: dict[str, Any] = {}

    def keep(model: Any, s: Split, probs: np.ndarray | None) -> None:
        box["model"], box["probs"] = model, probs

    result = train_trial(
        TrialConfig(
            ModelConfig(layers, (8, 8, 1)),
            split,
            training,
            seed=1,
            evaluation=EvaluationConfig(predict_test=True, analyse=keep),
            warm_models=0,
        )
    )
    model = box["model"]
    assert box["probs"] is not None
    assert sum(float(keras.ops.convert_to_numpy(x)) for x in model.losses) > 0  # regularized
    expected = model.evaluate(
        split.x_test,
        labels_for(split.y_test, training, 10),
        batch_size=32,
        verbose=0,
        return_dict=True,
    )
    assert set(result.test_metrics) == set(expected)
    for key, value in expected.items():
        assert result.test_metrics[key] == pytest.approx(float(value), rel=1e-5, abs=1e-6), key
    again = scores_from(model, training, 10, split.y_test, box["probs"])
    assert again == result.test_metrics
