"""The dataset registry: core.datasets names each built-in dataset once; the spec's accepted
names and the worker's loaders both follow it."""

from __future__ import annotations

import re
from pathlib import Path

from core.datasets import BUILTIN_DATASETS, DATASET_NAME, UPLOAD_PREFIX
from worker import datasets as wd


def test_every_registered_dataset_has_exactly_one_loader() -> None:
    assert list(wd._LOADERS) == list(BUILTIN_DATASETS)


def test_the_spec_accepts_the_registered_names_and_uploads_only() -> None:
    """Built-in names, ``upload:<id>`` and upload names (which of those exist is the
    validation's to say, with the names there are)."""
    pattern = re.compile(DATASET_NAME)
    for name in BUILTIN_DATASETS:
        assert pattern.match(name), name
    assert pattern.match(f"{UPLOAD_PREFIX}0a1b-2c")
    assert pattern.match("my-digits.v2")
    for bad in ("mnist_5k ", "upload:", "upload:XYZ", "my digits", "_x", "x" * 101, ""):
        assert not pattern.match(bad), bad


def test_a_loaded_builtin_takes_its_class_count_from_the_registry(tmp_path: Path) -> None:
    ds = wd.load_dataset("digits", cache_dir=tmp_path)
    info = BUILTIN_DATASETS["digits"]
    assert (ds.num_classes, ds.input_shape, len(ds.y)) == (
        info.num_classes,
        info.input_shape,
        info.samples,
    )
