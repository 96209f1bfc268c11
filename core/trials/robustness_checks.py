"""A comparison's ``robustness`` at submit: refused where it cannot apply (data that are not
images, a corruption or severity that does not exist), the dataset's default subset filled
in for storage, and its cost for the submit's estimate.

Images here are what ``core.data.corruptions`` corrupts: an input shape (height, width,
channels) with one (grey) or three (colour) channels. Anything else (a flat feature vector,
a sequence) has no pixels to blur, rotate or add noise to, so a robustness request on it is a
located 422 that says so.
"""

from __future__ import annotations

from core.data.corruptions import CORRUPTIONS, DEFAULT_SEVERITIES, default_corruptions
from core.datasets import DatasetInfo
from core.errors import ErrorItem
from core.spec import ComparisonSpec
from core.spec_robustness import RobustnessSpec

__all__ = [
    "CORRUPT_SECONDS_PER_IMAGE",
    "image_channels",
    "robustness_errors",
    "robustness_passes",
    "stored_robustness",
]

CORRUPT_SECONDS_PER_IMAGE = 1e-4
"""What the estimate assumes one corrupted image costs to generate (albumentations on a
28 x 28 digit: 20 to 100 microseconds; measured in bench/robustness_cost.py). A copy is made
once per data seed and shared by that seed's variants."""


def image_channels(dataset: DatasetInfo) -> int | None:
    """The channels of an image dataset (1 or 3), None when its examples are not images."""
    shape = dataset.input_shape
    if len(shape) == 3 and shape[-1] in (1, 3) and min(shape[:2]) >= 2:
        return int(shape[-1])
    return None


def robustness_errors(
    spec: ComparisonSpec, dataset: DatasetInfo | None, body: list[str | int]
) -> list[ErrorItem]:
    """Why ``spec.robustness`` cannot be scored on ``dataset``, each located."""
    asked = spec.robustness
    if asked is None:
        return []
    loc = [*body, "robustness"]
    errors: list[ErrorItem] = [
        {
            "loc": [*loc, "corruptions", i],
            "msg": f"unknown corruption {name!r}; the corruptions are {', '.join(CORRUPTIONS)}",
        }
        for i, name in enumerate(asked.corruptions or ())
        if name not in CORRUPTIONS
    ]
    if dataset is not None and image_channels(dataset) is None:
        shape = "x".join(map(str, dataset.input_shape))
        errors.append(
            {
                "loc": loc,
                "msg": f"corruptions apply to images (height x width x 1 or 3 channels), and "
                f"{dataset.name}'s examples have shape {shape}: noise, blur, rotation or fog "
                "have no meaning for them; leave robustness out for this dataset",
            }
        )
    return errors


def stored_robustness(spec: ComparisonSpec, dataset: DatasetInfo | None) -> RobustnessSpec | None:
    """The robustness to store: as asked, with the dataset's default corruptions when none
    were named and the default severities when none were (None when robustness was not
    asked for)."""
    asked = spec.robustness
    if asked is None or dataset is None:
        return asked
    channels = image_channels(dataset) or 1
    return asked.model_copy(
        update={
            "corruptions": asked.corruptions or list(default_corruptions(channels)),
            "severities": asked.severities or list(DEFAULT_SEVERITIES),
        }
    )


def robustness_passes(spec: ComparisonSpec, dataset: DatasetInfo) -> int:
    """How many corrupted copies of its test set each trial is scored on (0 without
    robustness): corruptions x severities."""
    stored = stored_robustness(spec, dataset)
    return 0 if stored is None else len(stored.cells)
