"""The augmentation layer types in the language: Keras's factors read as Keras reads them
(so a to_json round trip compares equal), bad arguments located, images only, the trial's seed
rather than one in a keras_config, left out of the similarity probe; and a custom layer class
refused with the reason."""

# ruff: noqa: E501 - the case table reads best one case per line
from __future__ import annotations

from typing import Any

import pytest

from core.report.similarity import SKIPPED_LAYER_TYPES, analysed_layer_types
from models.analysis import analyze
from models.augmentation import AUGMENTATION_TYPES
from models.errors import SpecError
from models.keras_import import layers_from_keras_config
from models.spec import LAYER_TYPES, parse_variant


def _layer(spec: dict[str, Any]) -> Any:
    layers = parse_variant({"name": "v", "layers": [spec]}).layers
    assert layers is not None
    return layers[0]


def _error(layers: list[dict[str, Any]], shape: tuple[int, ...] = (8, 8, 1)) -> dict[str, Any]:
    def check() -> None:
        analyze(parse_variant({"name": "v", "layers": layers}).layers or [], shape)

    with pytest.raises(SpecError) as exc:
        check()
    [e] = exc.value.errors
    return dict(e)


def test_every_augmentation_type_is_registered_and_skipped_by_the_probe() -> None:
    assert set(LAYER_TYPES) >= AUGMENTATION_TYPES
    assert AUGMENTATION_TYPES <= SKIPPED_LAYER_TYPES
    layers: list[dict[str, Any]] = [
        {"type": "RandomFlip"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 3},
    ]
    assert analysed_layer_types(layers) == ["Dense"]


def test_factors_read_as_keras_reads_them() -> None:
    assert _layer({"type": "RandomRotation", "factor": 0.2}).factor == (-0.2, 0.2)
    assert _layer({"type": "RandomRotation", "factor": [0.3, -0.1]}).factor == (-0.1, 0.3)
    assert _layer({"type": "RandomContrast", "factor": 0.4}).factor == (0.0, 0.4)
    zoom = _layer({"type": "RandomZoom", "height_factor": 0.2})
    assert (zoom.height_factor, zoom.width_factor) == (0.2, None)


@pytest.mark.parametrize(
    ("layer", "loc", "words"),
    [
        ({"type": "RandomRotation", "factor": 1.5}, ["factor"], "up to 1"),
        ({"type": "RandomContrast", "factor": -0.1}, ["factor"], "from 0"),
        ({"type": "RandomTranslation", "height_factor": -1, "width_factor": 0.1}, ["height_factor"], "above -1"),
        ({"type": "RandomZoom", "height_factor": [0.1, 0.2, 0.3]}, ["height_factor"], "2 numbers"),
        ({"type": "RandomFlip", "mode": "diagonal"}, ["mode"], "'diagonal' is not allowed"),
        ({"type": "RandomRotation", "factor": 0.1, "fill_mode": "mirror"}, ["fill_mode"], "not allowed"),
        ({"type": "RandomContrast", "factor": 0.1, "value_range": [1, 0]}, ["value_range"], "low < high"),
        ({"type": "RandomFlip", "seed": 3}, ["seed"], "unknown argument 'seed'"),
    ],
)  # fmt: skip
def test_bad_arguments_are_located(layer: dict[str, Any], loc: list[str], words: str) -> None:
    e = _error([layer])
    assert e["loc"] == ["layers", 0, *loc]
    assert words in e["msg"]


def test_they_take_images_only() -> None:
    e = _error([{"type": "Flatten"}, {"type": "RandomFlip"}])
    assert e["loc"][:2] == ["layers", 1]
    assert "height, width, channels" in e["msg"]


def _keras_json(layer: dict[str, Any]) -> dict[str, Any]:
    return {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 1]}},
                layer,
            ],
        },
    }


def test_a_keras_config_seed_gives_way_to_the_trials() -> None:
    crop = {"class_name": "RandomCrop", "config": {"height": 8, "width": 8, "seed": 419333972}}
    layers, _ = layers_from_keras_config(_keras_json(crop))
    assert layers[0].model_dump(exclude={"type", "name", "inputs"}) == {"height": 8, "width": 8}


def test_a_custom_layer_class_is_refused_with_the_reason() -> None:
    # What keras.Model.to_json() writes for a class defined in the user's own script.
    custom: dict[str, Any] = {
        "module": None,
        "class_name": "MyAug",
        "registered_name": "MyAug",
        "config": {},
    }
    with pytest.raises(SpecError) as exc:
        layers_from_keras_config(_keras_json(custom))
    [e] = exc.value.errors
    assert "unknown layer type 'MyAug'" in e["msg"]
    assert "custom classes are refused: their code is not in the service" in e["msg"]
    packaged = {**custom, "module": "my_package.layers"}
    with pytest.raises(SpecError) as exc:
        layers_from_keras_config(_keras_json(packaged))
    assert "custom classes are refused" in exc.value.errors[0]["msg"]
    # And in the native form.
    assert "custom classes are refused" in _error([{"type": "MyAug"}])["msg"]
