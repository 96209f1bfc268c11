"""The compiled models a worker process keeps warm, and putting one back to a seed's start.

Building a new Keras model for every trial means tracing its train, test and
predict functions again, which costs about as much as training a small model on a few
hundred samples (bench/README.md, "Measured design decisions"). A worker process therefore
keeps the last few compiled models (``warm_models``, LRU) keyed by everything their traced
functions depend on: the layers, input shape, classes, device and the compile settings. A
trial whose model is warm still builds a new model under its seed, which draws the seed's
initial weights (and dropout seed-generator states) exactly as a fresh model would, copies
every variable of it into the warm one, and puts the optimizer's variables back to their
values from before its first step. Losses are then bit-identical to a fresh model (a test
checks it with dropout and batch normalization, seeds interleaved).

No Keras import here: the models are passed in.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.spec import TRAINING_KNOBS, TrainingSpec

if TYPE_CHECKING:
    from models.spec import Layer

__all__ = [
    "PROCESS_MODELS",
    "Snapshot",
    "WarmModels",
    "clear_warm_models",
    "optimizer_snapshot",
    "reset",
    "warm_key",
]

# The optimizer's variables before its first step; None for all-zero ones (most of them:
# momenta), so a warm Adam model does not keep twice its size in host memory.
Snapshot = list[np.ndarray | None]
MAX_PARAMS = 50_000_000  # all warm models of a process together (device memory)


class WarmModels:
    """Compiled models kept warm: key -> (model, optimizer variables before step 1), LRU.

    A trial takes its model out while it trains and puts it back only after a clean finish, so
    two trials never share one model and a failed fit never leaves its model behind.
    """

    def __init__(self, max_params: int = MAX_PARAMS) -> None:
        self.max_params = max_params
        self._models: OrderedDict[str, tuple[Any, Snapshot]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def models(self) -> list[Any]:
        """The warm models, least recently kept first (benchmarks, tests)."""
        with self._lock:
            return [model for model, _ in self._models.values()]

    def take(self, key: str) -> tuple[Any, Snapshot] | None:
        """Take the model for ``key`` out (None when there is none): it is the caller's now."""
        with self._lock:
            return self._models.pop(key, None)

    def keep(self, key: str, model: Any, snapshot: Snapshot, limit: int) -> None:
        """Put a model back after a clean trial; the least recently used ones go beyond
        ``limit`` models or ``max_params`` parameters in all."""
        params = int(model.count_params())
        if params > self.max_params:
            return
        with self._lock:
            self._models[key] = (model, snapshot)
            total = sum(int(m.count_params()) for m, _ in self._models.values())
            while len(self._models) > limit or total > self.max_params:
                _, (gone, _) = self._models.popitem(last=False)
                total -= int(gone.count_params())

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


PROCESS_MODELS = WarmModels()  # this process's (a worker serves trial after trial)


def clear_warm_models() -> None:
    """Forget this process's warm models (tests, memory pressure)."""
    PROCESS_MODELS.clear()


def warm_key(
    layers: Sequence[Layer],
    input_shape: tuple[int, ...],
    training: TrainingSpec,
    num_classes: int,
    device: str,
) -> str:
    """What a compiled model's traced functions depend on (the seed and data are not)."""
    payload = {
        "layers": [layer.model_dump(mode="json") for layer in layers],
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "device": device,
        "compile": training.model_dump(
            mode="json",
            include={
                "optimizer",
                "learning_rate",
                "loss",
                "metrics",
                "jit_compile",
                "mixed_precision",
                *TRAINING_KNOBS,
            },
        ),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def optimizer_snapshot(optimizer: Any) -> Snapshot:
    """The optimizer's variables now (before its first step: what ``reset`` puts back)."""
    arrays = [np.array(v.numpy()) for v in optimizer.variables]
    return [a if np.any(a) else None for a in arrays]


def reset(model: Any, initial: Any, snapshot: Snapshot) -> None:
    """Give ``model`` the seed's initial state held by ``initial`` (same architecture)."""
    for target, source in zip(model.variables, initial.variables, strict=True):
        target.assign(source.value)
    for variable, value in zip(model.optimizer.variables, snapshot, strict=True):
        variable.assign(np.zeros(variable.shape, variable.dtype) if value is None else value)
