"""The worker compiles the Keras class core.optimizers names, for every name."""

from __future__ import annotations

from core.optimizers import OPTIMIZERS
from worker.keras_objects import optimizer_classes


def test_every_name_compiles_its_keras_class() -> None:
    import keras

    classes = optimizer_classes()
    assert set(classes) == set(OPTIMIZERS)
    for name, cls in classes.items():
        assert cls.__name__ == OPTIMIZERS[name]
        assert issubclass(cls, getattr(keras.optimizers, OPTIMIZERS[name]))
