"""The comparison spec: the body of ``POST /v1/comparisons`` (README, "A tour with curl"; the
OpenAPI document at ``/openapi.json`` has every field).

Variants are kept as raw JSON objects here and validated by ``models`` in
``core.validation``, so that every error, including those inside ``keras_config``, carries
its exact location in the request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from core.datasets import DATASET_NAME

__all__ = [
    "NO_NUL",
    "UNION_TAGS",
    "AnalysisSpec",
    "ComparisonSpec",
    "DatasetRef",
    "EarlyStopping",
    "PrimaryMetric",
    "SeedSchedule",
    "SplitDesign",
    "TrainingSpec",
    "probe_size_of",
    "round_progress",
    "seed_schedule",
]

Optimizer = Literal["adam", "adamw", "sgd", "rmsprop", "adagrad", "nadam"]  # core.optimizers
Loss = Literal["sparse_categorical_crossentropy", "categorical_crossentropy"]
KerasMetric = Literal["accuracy", "sparse_top_k_categorical_accuracy"]
PrimaryMetric = Literal["test_accuracy", "test_loss", "best_val_accuracy"]
SplitDesign = Literal["per_seed", "fixed"]
MAX_SEED = 2**31 - 1


def _no_nul(v: str | None) -> str | None:
    if v is not None and "\x00" in v:
        raise ValueError("must not contain NUL (\\x00) characters")
    return v


NO_NUL = AfterValidator(_no_nul)
"""For every free-text string a client sends: Postgres text cannot hold NUL, so one would
end as a database error; it is refused at the field instead (``Annotated[str, NO_NUL]``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(_Strict):
    """Which data, and how it is split.

    ``split="per_seed"`` (the default): every trial seed draws its own stratified
    train/validation/test split from the dataset (after the similarity probe set is set
    aside by ``split_seed``), so the spread over seeds covers data sampling as well as
    initialisation and data order. ``split="fixed"``: one split for the whole comparison,
    drawn with ``split_seed``.
    """

    name: Annotated[str, Field(pattern=DATASET_NAME, examples=["mnist_5k"])]
    split: Annotated[
        SplitDesign,
        Field(
            description='"per_seed": each seed draws its own stratified split; "fixed": one '
            "split for the comparison, by split_seed."
        ),
    ] = "per_seed"
    test_split: Annotated[float, Field(gt=0.0, lt=0.9)] = 0.2
    validation_split: Annotated[float, Field(ge=0.0, lt=0.9)] = 0.1
    split_seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    max_samples: Annotated[
        int | None,
        Field(ge=20, description="Use a stratified subsample of this many samples (quick runs)."),
    ] = None

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> DatasetRef:
        if self.test_split + self.validation_split >= 0.9:
            raise ValueError("test_split + validation_split must leave at least 10% for training")
        return self


class EarlyStopping(_Strict):
    """Keras EarlyStopping, applied identically to every trial."""

    monitor: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    patience: Annotated[int, Field(ge=0, le=1000)] = 3
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0
    restore_best_weights: bool = True


class TrainingSpec(_Strict):
    """The training budget, identical for every trial of the comparison."""

    epochs: Annotated[int, Field(ge=1)] = 3
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    optimizer: Optimizer = "adam"
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] = 0.001
    loss: Loss = "sparse_categorical_crossentropy"
    metrics: list[KerasMetric] = ["accuracy"]
    early_stopping: EarlyStopping | None = None
    mixed_precision: Annotated[
        bool,
        Field(
            description="Train with a mixed dtype policy: float16 compute on a GPU, bfloat16 "
            "on a CPU; variables stay float32."
        ),
    ] = False
    jit_compile: Annotated[
        bool | None,
        Field(description="XLA-compile the training step; null leaves Keras's own choice."),
    ] = None
    max_seconds: Annotated[
        int | None, Field(ge=1, description="Wall-clock budget per trial; capped by the server.")
    ] = None

    @field_validator("metrics")
    @classmethod
    def _accuracy_first(cls, v: list[KerasMetric]) -> list[KerasMetric]:
        out = list(dict.fromkeys(v))
        if "accuracy" not in out:
            out.insert(0, "accuracy")  # the report and the curves need it
        return out


class SeedSchedule(_Strict):
    """Adaptive seeds: ``min`` seeds per variant (0..min-1), then ``step`` more per variant in
    rounds while some tested pair is undecided, up to ``max`` seeds per variant."""

    min: Annotated[int, Field(ge=1, le=MAX_SEED)] = 3
    max: Annotated[int, Field(ge=1, le=MAX_SEED)] = 20
    step: Annotated[int, Field(ge=1, le=MAX_SEED)] = 1

    # max >= min is checked by core.validation, which can point at ["body", "seeds", "max"].

    @property
    def rounds_max(self) -> int:
        """How many rounds (looks) the schedule can take: 1 + ceil((max - min) / step)."""
        return 1 + -(-(self.max - self.min) // self.step)

    def round_of(self, seeds_per_variant: int) -> int:
        """The round whose seeds are ``seeds_per_variant`` per variant (1 = the first)."""
        extra = max(0, seeds_per_variant - self.min)
        return min(self.rounds_max, 1 + -(-extra // self.step))

    def next_count(self, seeds_per_variant: int) -> int:
        """Seeds per variant after one more round (``max`` at most)."""
        return min(self.max, seeds_per_variant + self.step)


SeedList = Annotated[
    list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(min_length=1, max_length=100_000)
]
UNION_TAGS = frozenset({"seed-list", "seed-schedule"})
"""Tags of the spec's unions: pydantic puts them in an error's location, the api drops them."""


def _seeds_form(v: Any) -> str:
    return "seed-schedule" if isinstance(v, dict | SeedSchedule) else "seed-list"


Seeds = Annotated[
    Annotated[SeedList, Tag("seed-list")] | Annotated[SeedSchedule, Tag("seed-schedule")],
    Discriminator(_seeds_form),
]


# 256: a Gram costs probe_size^2 x width multiply-adds per layer, and at 512 the article's
# conv128 (86,528 activations in its one hidden layer) spent more on it than on training
# (bench/README.md); it also leaves more examples for training under the per-seed design.
DEFAULT_PROBE_SIZE = 256


def probe_size_of(spec: dict[str, Any]) -> int:
    """The probe set a normalised spec asks for: ``analysis.probe_size`` when similarity is on
    (the defaults: on, 256), else 0. Under the per-seed design it is set aside before the
    seeds' splits, so it changes every trial's training data (and the reuse key covers it);
    with similarity off every example is available for the seeds' splits."""
    analysis = spec.get("analysis") or {}
    if not analysis.get("similarity", True):
        return 0
    return int(analysis.get("probe_size", DEFAULT_PROBE_SIZE))


def seed_schedule(spec: dict[str, Any]) -> SeedSchedule | None:
    """The adaptive schedule of a normalised spec, or None for a list of seeds."""
    seeds = spec.get("seeds")
    return SeedSchedule.model_validate(seeds) if isinstance(seeds, dict) else None


def round_progress(spec: dict[str, Any], trials_total: int) -> tuple[int, int]:
    """(round, rounds_max) of a stored comparison from its trial count: 1 and 1 for a list."""
    schedule = seed_schedule(spec)
    variants = spec.get("variants")
    if schedule is None or not isinstance(variants, list) or not variants:
        return 1, 1
    return schedule.round_of(trials_total // len(variants)), schedule.rounds_max


class AnalysisSpec(_Strict):
    """What each trial records besides its scores, for "do they differ?" (issue 14):
    its test-set predictions, and per layer the centered Gram matrix of its activations over
    a probe set of ``probe_size`` examples (what linear CKA needs). The server refuses, at
    submit, a probe larger than the test set and a trial whose stored analysis would exceed
    ``ARCHBENCH_ANALYSIS_MAX_BYTES_PER_TRIAL``."""

    predictions: bool = True
    similarity: bool = True
    probe_size: Annotated[int, Field(ge=2, le=4096)] = DEFAULT_PROBE_SIZE


class ComparisonSpec(_Strict):
    """A comparison: several architectures trained on the same data, budget and seeds."""

    name: Annotated[str, Field(min_length=1, max_length=200), NO_NUL]
    dataset: DatasetRef
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    seeds: Annotated[
        Seeds,
        Field(
            description="A list of seeds, or {min, max, step}: seeds 0..min-1 per variant, then "
            "step more per variant in rounds while a tested pair is undecided, up to max."
        ),
    ] = Field(default_factory=lambda: [0, 1, 2])
    primary_metric: PrimaryMetric = "test_accuracy"
    baseline: Annotated[
        str | None,
        Field(
            max_length=200,
            description="A variant name: the tested family is every other variant against it "
            "(without it, all pairs).",
        ),
        NO_NUL,
    ] = None
    equivalence_margin: Annotated[
        float,
        Field(
            gt=0.0,
            le=1e6,
            description="The difference, in the primary metric's units, within which two "
            "variants count as equivalent (TOST).",
        ),
    ] = 0.01
    variants: Annotated[list[dict[str, Any]], Field(min_length=1)]
    callback_url: Annotated[str | None, Field(max_length=2000), NO_NUL] = None
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    reuse: Annotated[
        bool,
        Field(
            description="Reuse the result of an identical trial already trained (same "
            "architecture, data, split, training settings, seed and library versions)."
        ),
    ] = True

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("callback_url must be an absolute http:// or https:// URL")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int] | SeedSchedule) -> list[int] | SeedSchedule:
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError("seeds must be unique")
        return v

    @property
    def initial_seeds(self) -> list[int]:
        """The seeds every variant starts with (the whole list, or 0..min-1)."""
        if isinstance(self.seeds, SeedSchedule):
            return list(range(self.seeds.min))
        return list(self.seeds)

    @property
    def most_seeds(self) -> int:
        """The most seeds per variant this comparison can run (for the limits)."""
        return self.seeds.max if isinstance(self.seeds, SeedSchedule) else len(self.seeds)
