"""The augmentation layers: random in training only (Keras's own behaviour, checked here), so
evaluation and predictions are those of the same model without them, same weights; seeded
from the trial's seed, so the same trial twice (a fresh model or a warm one) gives the same
result and another seed another one; RandomCrop at inference takes one fixed window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.spec import TrainingSpec
from models.builder import build_model
from models.spec import parse_variant
from worker.datasets import Split, load_dataset, make_split
from worker.training import (
    EvaluationConfig,
    ModelConfig,
    TrialConfig,
    clear_warm_models,
    train_trial,
)

pytestmark = pytest.mark.training  # fits Keras models in this process

AUGMENT: list[dict[str, Any]] = [
    {"type": "RandomFlip"},
    {"type": "RandomRotation", "factor": 0.1},
    {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.1},
    {"type": "RandomZoom", "height_factor": 0.2},
    {"type": "RandomContrast", "factor": 0.3, "value_range": [0, 1]},
]
HEAD: list[dict[str, Any]] = [
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]


def _layers(spec: list[dict[str, Any]]) -> Any:
    layers = parse_variant({"name": "v", "layers": spec}).layers
    assert layers is not None
    return layers


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    ds = load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"))
    return make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0, max_samples=300)


def test_inference_is_the_model_without_them_and_training_is_not(split: Split) -> None:
    import keras

    keras.utils.set_random_seed(0)
    with_aug = build_model(_layers([*AUGMENT, *HEAD]), (8, 8, 1))
    without = build_model(_layers(HEAD), (8, 8, 1))
    for name in ("conv2d", "dense"):
        without.get_layer(name).set_weights(with_aug.get_layer(name).get_weights())
    loss = keras.losses.SparseCategoricalCrossentropy()
    for m in (with_aug, without):
        m.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    x, y = split.x_test.astype(np.float32), split.y_test
    np.testing.assert_array_equal(with_aug.predict(x, verbose=0), without.predict(x, verbose=0))
    assert with_aug.evaluate(x, y, verbose=0) == without.evaluate(x, y, verbose=0)
    # In training each layer changes the images (Keras applies them when training=True).
    for spec in AUGMENT:
        layer = build_model(_layers([spec]), (8, 8, 1)).layers[0]
        trained = keras.ops.convert_to_numpy(layer(x[:16], training=True))
        assert not np.allclose(trained, x[:16]), spec["type"]
        at_inference = keras.ops.convert_to_numpy(layer(x[:16], training=False))
        np.testing.assert_array_equal(at_inference, x[:16])


def test_a_crop_is_refused_because_keras_does_not_crop_at_inference(split: Split) -> None:
    """Keras 3.15's RandomCrop returns its input uncropped at inference, so a model that
    crops trains and then cannot evaluate; the analysis refuses such a crop, at the layer.
    When Keras crops at inference, the first half of this test fails: accept crops then."""
    import keras

    x, y = split.x_test[:16].astype(np.float32), split.y_test[:16]
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.RandomCrop(6, 5),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy())
    model.fit(x, y, epochs=1, verbose=0)  # in training it crops
    assert keras.ops.convert_to_numpy(model.layers[0](x, training=False)).shape == x.shape
    with pytest.raises(ValueError, match="incompatible"):
        model.evaluate(x, y, verbose=0)

    from models.analysis import analyze
    from models.errors import SpecError

    crop = {"type": "RandomCrop", "height": 6, "width": 8}
    with pytest.raises(SpecError) as err:
        analyze(_layers([crop, *HEAD]), (8, 8, 1))
    [e] = err.value.errors
    assert e["loc"] == ["layers", 0, "height"]
    assert "returns its whole input at inference" in e["msg"]
    # The whole window (a crop that keeps the size) is accepted: the identity, as in Keras.
    assert analyze(_layers([{**crop, "height": 8}, *HEAD]), (8, 8, 1)).params > 0


def test_the_same_trial_twice_gives_the_same_result(split: Split) -> None:
    layers = _layers([*AUGMENT, *HEAD])
    training = TrainingSpec(epochs=2, batch_size=32)

    def run(seed: int, warm: int) -> Any:
        return train_trial(
            TrialConfig(
                model=ModelConfig(layers=layers, input_shape=(8, 8, 1)),
                split=split,
                training=training,
                seed=seed,
                warm_models=warm,
                evaluation=EvaluationConfig(measure_inference=False),
            )
        )

    clear_warm_models()
    first = run(0, 0)
    again = run(0, 0)
    assert [e["loss"] for e in again.epochs] == [e["loss"] for e in first.epochs]
    assert (again.test_loss, again.test_accuracy) == (first.test_loss, first.test_accuracy)
    # A warm model (kept by the first run, put back to the seed's start) too.
    run(0, 4)
    warm = run(0, 4)
    assert warm.warm_model
    assert [e["loss"] for e in warm.epochs] == pytest.approx(
        [e["loss"] for e in first.epochs], rel=1e-6
    )
    assert warm.test_loss == pytest.approx(first.test_loss, rel=1e-6)
    # Another seed, other draws.
    other = run(1, 0)
    assert [e["loss"] for e in other.epochs] != pytest.approx(
        [e["loss"] for e in first.epochs], rel=1e-6
    )
    clear_warm_models()


def test_the_similarity_probe_leaves_them_out(split: Split) -> None:
    import keras

    from core.spec import AnalysisSpec
    from worker.analysis import analyse_model

    keras.utils.set_random_seed(0)
    model = build_model(_layers([*AUGMENT, *HEAD]), (8, 8, 1))
    result = analyse_model(
        model, split, AnalysisSpec(probe_size=20, predictions=False), batch_size=32
    )
    assert [(g.index, g.name) for g in result.grams] == [(5, "conv2d"), (7, "dense")]
