"""What one attempt at a trial is given: one frozen config in named parts (worker.training).

No Keras import here (the Celery parent process imports it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.spec import TrainingSpec
from worker.datasets import Split

if TYPE_CHECKING:
    from models.spec import Layer

__all__ = ["Analyse", "EvaluationConfig", "ModelConfig", "ResumeConfig", "TrialConfig"]

Analyse = Callable[[Any, Split, np.ndarray | None], Any]
"""``analyse(model, split, probs)``: what the trained model is asked last (worker.analysis)."""


@dataclass(frozen=True)
class ModelConfig:
    """What to build: the architecture's layers and input shape, the Keras model's name, and
    its classes (None: the width of the model's output)."""

    layers: Sequence[Layer]
    input_shape: tuple[int, ...]
    name: str = "model"
    num_classes: int | None = None


@dataclass(frozen=True)
class ResumeConfig:
    """Where the trial's resume point lives (None: this attempt keeps none; see
    worker/checkpoint.py) and the epoch rows earlier attempts stored, which count towards
    ``best_val_accuracy``."""

    checkpoint_dir: Path | None = None
    previous_epochs: Sequence[Mapping[str, float]] = ()


@dataclass(frozen=True)
class EvaluationConfig:
    """What the trained model is asked (never a stopped one).

    ``predict_test``: evaluate through one ``predict`` over the test set, the scores computed
    from its probabilities with the same loss, regularization and metric objects
    (``worker.keras_objects.scores_from``), and hand the probabilities to ``analyse`` (one
    forward pass over the test set instead of two). ``analyse``'s answer is
    ``TrainResult.analysis``. ``measure_inference``: time a compiled forward pass.
    ``test``: False for a tuning trial, which is never evaluated on the test split (no test
    scores, no inference time, no analysis).
    """

    measure_inference: bool = True
    predict_test: bool = False
    analyse: Analyse | None = None
    test: bool = True


@dataclass(frozen=True, eq=False)
class TrialConfig:
    """Everything one attempt at a trial is given, in named parts (as Determined's Core API
    hands a trial one context): what to build (``model``), the data (``split``), how to fit
    (``training``, and the two seeds of ``core.seeding``: ``seed``, the data seed, orders the
    training data; ``init_seed``, None for the data seed itself, draws the initial weights and
    the layers' own random states; ``max_seconds`` is the worker's own limit beside
    ``training.max_seconds``: the lower one holds, over every attempt), where to resume from
    (``resume``), what to ask the trained model (``evaluation``), and how many compiled models
    this process keeps warm (``warm_models``; 0 builds and compiles a new model every time).
    """

    model: ModelConfig
    split: Split
    training: TrainingSpec
    seed: int
    max_seconds: float | None = None
    resume: ResumeConfig = field(default_factory=ResumeConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    warm_models: int = 4
    init_seed: int | None = None

    @property
    def initialisation_seed(self) -> int:
        """The seed the model is built under: ``init_seed``, else the data seed."""
        return self.seed if self.init_seed is None else self.init_seed
