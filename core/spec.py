"""The comparison spec: the body of ``POST /v1/comparisons`` (README, "A tour with curl"; the
OpenAPI document at ``/openapi.json`` has every field).

Variants are kept as raw JSON objects here and validated by ``models`` in
``core.trials.validation``, so that every error, including those inside ``keras_config``, carries
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
    SerializerFunctionWrapHandler,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from core.analysis_spec import MAX_REPLICATES, AnalysisSpec
from core.datasets import DATASET_NAME
from core.optimizers import SCHEDULES, LearningRate, takes
from core.seeds import MAX_SEED, SeedSchedule
from core.spec_robustness import RobustnessSpec
from core.tuning_space import TuningSpec
from core.variants import MatchRecord, MatchSpec, StoredVariant

__all__ = [
    "DEFAULT_MARGIN",
    "MAX_REPLICATES",
    "NO_NUL",
    "TRAINING_KNOBS",
    "UNION_TAGS",
    "VARIANT_TRAINING",
    "AnalysisSpec",
    "ComparisonSpec",
    "DatasetRef",
    "DesignSpec",
    "EarlyStopping",
    "MatchRecord",
    "MatchSpec",
    "PrimaryMetric",
    "SeedSchedule",
    "SplitDesign",
    "StoredSpec",
    "StoredVariant",
    "TrainingSpec",
    "initial_seeds_of",
]

Optimizer = Literal["adam", "adamw", "sgd", "rmsprop", "adagrad", "nadam"]  # core.optimizers
Loss = Literal["sparse_categorical_crossentropy", "categorical_crossentropy"]
KerasMetric = Literal["accuracy", "sparse_top_k_categorical_accuracy"]
PrimaryMetric = Literal["test_accuracy", "test_loss", "best_val_accuracy"]
SplitDesign = Literal["per_seed", "fixed"]


def _no_nul(v: str | None) -> str | None:
    if v is not None and "\x00" in v:
        raise ValueError("must not contain NUL (\\x00) characters")
    return v


NO_NUL = AfterValidator(_no_nul)
"""For every free-text string a client sends: Postgres text cannot hold NUL, so one would
end as a database error; it is refused at the field instead (``Annotated[str, NO_NUL]``)."""


def _without_none(out: dict[str, Any], key: str) -> dict[str, Any]:  # unset: not in the JSON
    return {k: v for k, v in out.items() if not (k == key and v is None)}


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


TRAINING_KNOBS = (
    "momentum",
    "nesterov",
    "weight_decay",
    "beta_1",
    "beta_2",
    "epsilon",
    "clipnorm",
    "clipvalue",
    "label_smoothing",
)
"""The optional training settings (version 1.2): unset (None), they are left out of the
stored JSON and of the reuse key, so a spec without them keeps its key byte for byte."""

VARIANT_TRAINING = ("optimizer", "learning_rate", *TRAINING_KNOBS)
"""What a variant's own ``training`` may set (the rest is the comparison's budget and data
handling, the same for every variant)."""

_Beta = Annotated[float, Field(ge=0.0, lt=1.0)]
_Positive = Annotated[float, Field(gt=0.0, le=1e6)]


class TrainingSpec(_Strict):
    """The training budget, identical for every trial of the comparison (a variant may set
    its own optimizer, learning rate, optimizer arguments and label smoothing:
    ``VARIANT_TRAINING``)."""

    epochs: Annotated[
        int, Field(ge=1, description="Epochs per trial (fewer when early stopping stops it).")
    ] = 3
    batch_size: Annotated[
        int, Field(ge=1, le=65536, description="Samples per training step, for every trial.")
    ] = 64
    optimizer: Annotated[
        Optimizer, Field(description="The Keras optimizer, built anew for each trial.")
    ] = "adam"
    learning_rate: Annotated[
        LearningRate,
        Field(
            description='A number, or a schedule over training steps (batches): {"schedule": '
            '"cosine" | "warmup_cosine" | "exponential" | "piecewise", ...} '
            "(keras.optimizers.schedules)."
        ),
    ] = 0.001
    loss: Annotated[
        Loss,
        Field(
            description="The Keras loss: sparse_categorical_crossentropy for integer labels, "
            "categorical_crossentropy for one-hot ones."
        ),
    ] = "sparse_categorical_crossentropy"
    metrics: Annotated[
        list[KerasMetric],
        Field(description="Keras metrics recorded each epoch; accuracy is always one."),
    ] = ["accuracy"]
    early_stopping: Annotated[
        EarlyStopping | None,
        Field(description="Keras EarlyStopping, the same for every trial; null trains all epochs."),
    ] = None
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
    momentum: Annotated[_Beta | None, Field(description="sgd and rmsprop.")] = None
    nesterov: Annotated[bool | None, Field(description="sgd.")] = None
    weight_decay: Annotated[
        Annotated[float, Field(ge=0.0, le=1.0)] | None,
        Field(description="Decoupled weight decay, every optimizer (null: Keras's default)."),
    ] = None
    beta_1: Annotated[_Beta | None, Field(description="adam, adamw and nadam.")] = None
    beta_2: Annotated[_Beta | None, Field(description="adam, adamw and nadam.")] = None
    epsilon: Annotated[
        Annotated[float, Field(gt=0.0, le=1.0)] | None,
        Field(description="Every optimizer but sgd."),
    ] = None
    clipnorm: Annotated[_Positive | None, Field(description="Every optimizer.")] = None
    clipvalue: Annotated[
        _Positive | None, Field(description="Every optimizer; not together with clipnorm.")
    ] = None
    label_smoothing: Annotated[
        Annotated[float, Field(ge=0.0, lt=1.0)] | None,
        Field(description="categorical_crossentropy only (Keras's sparse loss takes none)."),
    ] = None

    @field_validator("metrics")
    @classmethod
    def _accuracy_first(cls, v: list[KerasMetric]) -> list[KerasMetric]:
        out = list(dict.fromkeys(v))
        if "accuracy" not in out:
            out.insert(0, "accuracy")  # the report and the curves need it
        return out

    @field_validator(
        "momentum", "nesterov", "weight_decay", "beta_1", "beta_2", "epsilon", "clipnorm"
    )
    @classmethod
    def _taken_by_the_optimizer(cls, v: Any, info: ValidationInfo) -> Any:
        optimizer = info.data.get("optimizer")
        if v is not None and optimizer is not None and info.field_name not in takes(optimizer):
            raise ValueError(
                f"{optimizer} takes no {info.field_name}; its arguments are "
                f"{', '.join(takes(optimizer))}"
            )
        return v

    @field_validator("clipvalue")
    @classmethod
    def _one_clip(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("clipnorm") is not None:
            raise ValueError("give clipnorm or clipvalue, not both (Keras takes one)")
        return v

    @field_validator("label_smoothing")
    @classmethod
    def _loss_smooths(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("loss") == "sparse_categorical_crossentropy":
            raise ValueError(
                "sparse_categorical_crossentropy takes no label_smoothing in Keras; use "
                'loss "categorical_crossentropy" (the labels are then one-hot) to smooth them'
            )
        return v

    @model_serializer(mode="wrap")
    def _without_unset_knobs(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for knob in TRAINING_KNOBS:
            if out.get(knob, 0) is None:
                del out[knob]
        return out

    def with_override(self, override: dict[str, Any] | None) -> TrainingSpec:
        """These settings with a variant's own ``training`` (``VARIANT_TRAINING`` keys) over
        them, validated together (``ValidationError`` when they do not fit)."""
        if not override:
            return self
        return TrainingSpec.model_validate({**self.model_dump(mode="json"), **override})


SeedList = Annotated[
    list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(min_length=1, max_length=100_000)
]
UNION_TAGS = frozenset(
    {"seed-list", "seed-schedule", "lr-number"} | {f"lr-{name}" for name in SCHEDULES}
)
"""Tags of the spec's unions: pydantic puts them in an error's location, the api drops them."""


def _seeds_form(v: Any) -> str:
    return "seed-schedule" if isinstance(v, dict | SeedSchedule) else "seed-list"


Seeds = Annotated[
    Annotated[SeedList, Tag("seed-list")] | Annotated[SeedSchedule, Tag("seed-schedule")],
    Discriminator(_seeds_form),
]


DEFAULT_MARGIN = 0.01


def initial_seeds_of(seeds: list[int] | SeedSchedule) -> list[int]:
    """The seeds every variant starts with: the whole list, or 0..min-1 of a schedule."""
    return list(range(seeds.min)) if isinstance(seeds, SeedSchedule) else list(seeds)


VariantName = Annotated[str, Field(min_length=1, max_length=200), NO_NUL]


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
    ] = DEFAULT_MARGIN
    pairs: Annotated[
        list[tuple[VariantName, VariantName]] | None,
        Field(
            max_length=10_000,
            description='Named contrasts, e.g. [["conv64x2", "conv64x2_drop"]]: when given, the '
            "tested family is these pairs (instead of all pairs or the baseline's).",
        ),
    ] = None
    variants: Annotated[
        list[dict[str, Any]],
        Field(
            min_length=1,
            description="The architectures: each a name and layers (or a keras_config), and "
            "optionally a training of its own over the comparison's: optimizer, learning_rate, "
            "the optimizer arguments and label_smoothing.",
        ),
    ]
    callback_url: Annotated[str | None, Field(max_length=2000), NO_NUL] = None
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    robustness: RobustnessSpec | None = None
    reuse: Annotated[
        bool,
        Field(
            description="Reuse the result of an identical trial already trained (same "
            "architecture, data, split, training settings, seed and library versions)."
        ),
    ] = True
    tuning: Annotated[
        TuningSpec | None,
        Field(
            description="Tune each variant first, at equal budgets: trials configurations per "
            "variant from space, scored on validation; the best trains over the seeds."
        ),
    ] = None

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
        return initial_seeds_of(self.seeds)

    @property
    def most_seeds(self) -> int:
        """The most seeds per variant this comparison can run (for the limits)."""
        return self.seeds.max if isinstance(self.seeds, SeedSchedule) else len(self.seeds)

    @property
    def runs_per_seed(self) -> int:
        """Trials per variant and seed: the variant's own and its ``analysis.replicates``."""
        return 1 + self.analysis.replicates


# --------------------------------------------------------------------------- as stored


class DesignSpec(_Strict):
    """What a comparison's spec says about its statistical design: all the report reads of
    it. Built without a spec (``DesignSpec()``): one fixed split, no baseline, the default margin,
    and ``seeds`` unknown (None)."""

    split: SplitDesign = "fixed"
    baseline: str | None = None
    equivalence_margin: float = DEFAULT_MARGIN
    seeds: list[int] | SeedSchedule | None = None
    training: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per variant, the training settings that differ between variants (empty when they all
    train alike)."""
    pairs: list[tuple[str, str]] | None = None
    matched: dict[str, MatchRecord] = Field(default_factory=dict)
    """Per resized variant, how it was matched to another's size (empty when none was)."""
    tuning: TuningSpec | None = None


class StoredSpec(_Strict):
    """A comparison's spec as validated and stored (``Comparison.spec``), parsed once where it
    is read from the database and passed to every layer as this model.

    It is the request (``ComparisonSpec``) normalised: every default filled in, each variant
    in native layers with its input shape, ``analysis.probe_size`` the size the comparison
    got and ``training.max_seconds`` the budget it got. Specs stored by earlier versions
    load as what they ran: without ``dataset.split`` (before 1.1) on the fixed split, and
    without ``analysis`` (before the analysis existed) as None; the worker then records the
    defaults (``analysis_or_default``) and the reuse key leaves it out.
    """

    name: str
    dataset: DatasetRef
    training: TrainingSpec
    seeds: Seeds
    primary_metric: PrimaryMetric = "test_accuracy"
    baseline: str | None = None
    equivalence_margin: float = DEFAULT_MARGIN
    pairs: list[tuple[str, str]] | None = None
    variants: list[StoredVariant]
    callback_url: str | None = None
    analysis: AnalysisSpec | None = None
    robustness: RobustnessSpec | None = None  # defaults filled in; None: left out of the JSON
    reuse: bool = True
    tuning: TuningSpec | None = None
    """None (left out of the JSON): the variants train at the spec's own settings."""

    @model_serializer(mode="wrap")
    def _without_unset_stages(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A spec without a tuning stage or robustness keeps the JSON (and hashes) it had.
        return _without_none(_without_none(handler(self), "tuning"), "robustness")

    @model_validator(mode="before")
    @classmethod
    def _before_split_designs(cls, data: Any) -> Any:
        dataset = data.get("dataset") if isinstance(data, dict) else None
        if isinstance(dataset, dict) and "split" not in dataset:
            return {**data, "dataset": {**dataset, "split": "fixed"}}
        return data

    @classmethod
    def load(cls, stored: dict[str, Any]) -> StoredSpec:
        """The model of a spec as the database holds it (JSON)."""
        return cls.model_validate(stored)

    def dump(self) -> dict[str, Any]:
        """The JSON the database holds, and the api shows (``model_dump(mode="json")``)."""
        return self.model_dump(mode="json")

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def schedule(self) -> SeedSchedule | None:
        """The adaptive schedule, or None for a list of seeds."""
        return self.seeds if isinstance(self.seeds, SeedSchedule) else None

    @property
    def initial_seeds(self) -> list[int]:
        """The seeds every variant starts with (the whole list, or 0..min-1)."""
        return initial_seeds_of(self.seeds)

    @property
    def analysis_or_default(self) -> AnalysisSpec:
        """What each trial records: the stored analysis, or the defaults for a spec stored
        before the analysis existed."""
        return self.analysis if self.analysis is not None else AnalysisSpec()

    @property
    def probe_reserved(self) -> int:
        """The probe set this comparison's trials use (0 with similarity off)."""
        return self.analysis_or_default.probe_reserved

    @property
    def design(self) -> DesignSpec:
        """The statistical design, for the report."""
        return DesignSpec(
            split=self.dataset.split,
            baseline=self.baseline,
            equivalence_margin=self.equivalence_margin,
            seeds=self.seeds,
            training=self.training_differences(),
            pairs=self.pairs,
            matched={v.name: v.match for v in self.variants if v.match is not None},
            tuning=self.tuning,
        )

    def training_for(self, variant_index: int) -> TrainingSpec:
        """The training settings variant ``variant_index`` trains with: the comparison's, with
        the variant's own over them."""
        return self.training.with_override(self.variants[variant_index].training)

    def training_differences(self) -> dict[str, dict[str, Any]]:
        """Per variant, its value of each training setting that is not the same for every
        variant (JSON values, unset knobs as None); empty when they all train alike."""
        if not any(v.training for v in self.variants):
            return {}
        dumps = [
            self.training_for(i).model_dump(mode="json", exclude={"max_seconds"})
            for i in range(len(self.variants))
        ]
        keys = sorted({k for d in dumps for k in d})
        differ = [k for k in keys if any(d.get(k) != dumps[0].get(k) for d in dumps)]
        return {
            v.name: {k: d.get(k) for k in differ} for v, d in zip(self.variants, dumps, strict=True)
        }

    @property
    def runs_per_seed(self) -> int:
        """Trials per variant and seed: the variant's own and its ``analysis.replicates``."""
        return 1 + self.analysis_or_default.replicates

    def round_progress(self, trials_total: int) -> tuple[int, int]:
        """(round, rounds_max) from the comparison's trial count: 1 and 1 for a list."""
        schedule = self.schedule
        if schedule is None or not self.variants:
            return 1, 1
        per_seed = len(self.variants) * self.runs_per_seed
        return schedule.round_of(trials_total // per_seed), schedule.rounds_max
