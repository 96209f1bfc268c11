"""The report's typed shape: pydantic models of what ``GET .../report`` answers.

``core.report.build.build_report`` makes a plain dict (the renderers and stored reports read
dicts); ``Report.model_validate`` checks it, and the api serves it with
``response_model=Report`` so ``/openapi.json`` documents every field. The field names are
those of the HTTP contract (versions 1.0, 1.1 and 1.2) that the README documents.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Answers",
    "BudgetPointOut",
    "Conclusion",
    "Design",
    "EdgeNote",
    "Looks",
    "MatchedSize",
    "MetricSummary",
    "PairDifference",
    "PairwiseResult",
    "PerClassAccuracy",
    "PerSeedValue",
    "Report",
    "Tuning",
    "TuningVariant",
    "VariantSummary",
]

Conclusion = Literal["a_better", "b_better", "equivalent", "inconclusive", "untested"]
Interval = tuple[float, float]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Looks(_Model):
    """Where the sequential design stands."""

    current: int = Field(description="The current look, 1-based (a look = a round of seeds).")
    planned: int = Field(description="Looks planned: 1 for a list of seeds.")
    complete: bool = Field(
        description="Every trial of the current look has ended; otherwise the conclusions "
        "are withheld."
    )
    seeds_per_variant: list[int] = Field(description="Seeds per variant at each look.")
    level: float = Field(
        description="The current look's nominal level for one pair at alpha: its "
        "group-sequential boundary as a two-sided p-value (alpha for a list of seeds)."
    )
    alpha_spent: float = Field(
        description="The null probability of crossing a boundary up to and including this "
        "look (the joint normal distribution of the look statistics)."
    )
    final_level: float | None = Field(
        default=None, description="The last planned look's nominal level (adaptive designs)."
    )
    boundary: Literal["pocock", "obrien_fleming"] | None = Field(
        default=None, description="The adaptive design's boundary; null for a list of seeds."
    )
    levels: list[float] = Field(
        default_factory=list, description="Every look's nominal level for one pair at alpha."
    )


class MatchedSize(_Model):
    """How a variant was resized to another's size (``core.spec.MatchRecord``)."""

    variant: str = Field(description="The variant whose size it was matched to.")
    by: Literal["params", "flops"]
    tolerance: float
    factor: float = Field(description="The one factor every width (filters, units) was scaled by.")
    widths: list[int | None] = Field(description="Each layer's width after resizing.")
    count: int = Field(description="The resized variant's parameters or FLOPs.")
    target: int = Field(description="The target variant's parameters or FLOPs.")
    gap: float = Field(description="count / target - 1.")


class Design(_Model):
    """How the report tested: split, test, family, margin, sequential looks."""

    split: str = Field(description='"per_seed" or "fixed".')
    paired: bool = Field(description="Every tested pair was tested paired (same seeds).")
    test: str | None = Field(description='"paired_t", "welch", "mixed", or null when untested.')
    alpha: float
    equivalence_margin: float = Field(description="In the primary metric's units.")
    baseline: str | None
    pairs: list[tuple[str, str]] | None = Field(
        default=None, description="The named contrasts tested (the spec's pairs), if any."
    )
    sequential: str | None = Field(
        description='"group_sequential_pocock" or "group_sequential_obrien_fleming" for '
        "adaptive seeds (boundaries from the joint distribution of the look statistics, "
        "Holm over the family at each look, a decided pair stays decided), null for a list."
    )
    looks: Looks
    family_size: int = Field(description="Pairs in the tested family (Holm's m).")
    multiplicity: str = Field(description="How p-values are adjusted: holm.")
    interval_adjustment: str = Field(description="How ci95_adjusted is adjusted: bonferroni.")
    training: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per variant, its value of each training setting that differs between "
        "variants (a variant's own training); empty when they all train alike.",
    )
    matched: dict[str, MatchedSize] = Field(
        default_factory=dict,
        description="Per variant resized to another's size (its match), how: the target, by "
        "params or flops, the width factor, the widths, the counts reached and the gap.",
    )
    tuning: dict[str, Any] | None = Field(
        default=None,
        description="The tuning stage, when the comparison has one: trials per variant (the "
        "same for every variant), sampler, metric, epochs, pruner, the knobs searched, and "
        'selected_on "validation": the selection never saw the test split, and only the '
        "final trials (at each variant's selected configuration) are tested.",
    )
    variant_intervals: str = Field(
        default="t_bounded",
        description="A variant's ci95: the t-interval intersected with the metric's range "
        "(accuracy in [0, 1], loss and timings at least 0).",
    )
    intervals: str = Field(
        default="t",
        description='The pairs\' intervals: "t" (fixed design: 95% t-interval, noncentral-t '
        'for the effect size) or "repeated_<boundary>" (adaptive design: repeated confidence '
        "intervals at one minus the look's nominal level, valid whatever the stopping rule).",
    )


class PerSeedValue(_Model):
    seed: int
    value: float


class MetricSummary(_Model):
    mean: float | None = None
    std: float | None = None
    ci95: Interval | None = None


class VariantSummary(_Model):
    """One variant: its primary metric over seeds, rank, tier, counts, timing."""

    name: str
    params: int | None
    flops: int | None
    analysis: dict[str, object] | None
    n: int
    n_failed: int
    n_cancelled: int
    n_running: int
    n_diverged: int = Field(description='Trials that ended with stop_reason "diverged".')
    diverged_scored_worst: list[int] = Field(
        default_factory=list,
        description="Seeds of diverged trials whose primary metric was not finite, scored at "
        "the worst value any trial of the comparison reached (they count against the variant).",
    )
    failed_seeds: list[int]
    cancelled_seeds: list[int]
    seeds_without_metric: list[int]
    stopped_early: dict[str, int]
    rank: int | None = Field(description="Competition rank: exact ties share one.")
    tier: int | None = Field(
        description="1 = the best tested variant and those no tested pair separates from the tier."
    )
    mean: float | None
    std: float | None
    ci95: Interval | None
    min: float | None
    max: float | None
    test_loss: MetricSummary
    best_val_accuracy: MetricSummary
    final_val_accuracy: MetricSummary
    epochs_done_mean: float | None
    epochs_to_95pct_best: float | None
    auc_val_accuracy: float | None
    train_seconds_mean: float | None
    seconds_per_epoch_mean: float | None
    seconds_per_epoch_std: float | None
    seconds_per_epoch_ci95: Interval | None
    inference_ms_per_sample_mean: float | None
    inference_ms_per_sample_std: float | None
    inference_ms_per_sample_ci95: Interval | None
    per_seed: list[PerSeedValue]


class PairwiseResult(_Model):
    """One pair of the tested family: the test, its intervals, effect size and conclusion."""

    a: str
    b: str
    n_a: int
    n_b: int
    test: Literal["paired_t", "welch"] | None
    exact_test: Literal["sign", "mann_whitney"] | None = Field(
        default=None,
        description="Set when the per-seed differences (or both sides) have no spread: the "
        "exact test whose p-value replaces the undefined t-test's.",
    )
    paired: bool
    n_paired: int | None = Field(
        default=None,
        description="The seeds both variants have, over which the paired test ran (a seed "
        "only one has is left out); null for Welch.",
    )
    correlation: float | None = Field(description="Pearson r of the per-seed values (paired).")
    diff: float | None = Field(description="mean(a) - mean(b).")
    ci95: Interval | None = Field(
        description="95% interval of diff, unadjusted for the family: a t-interval, or in "
        "an adaptive design the repeated confidence interval (see interval)."
    )
    ci95_adjusted: Interval | None = Field(
        description="Bonferroni over the family's m pairs: at 1 - alpha/m, or in an adaptive "
        "design the repeated interval at the look's nominal level for alpha/m."
    )
    interval: str | None = Field(
        default=None,
        description='How ci95 and effect_size_ci95 are made: "t" or "repeated_<boundary>".',
    )
    df: float | None
    p_value: float | None
    p_adjusted: float | None = Field(description="Holm-adjusted over the tested family.")
    significant: bool = Field(description="Conclusion is a_better or b_better.")
    effect_size: float | None = Field(
        description="Hedges' g (paired: g_z; unpaired: Bonett's unequal-variance g)."
    )
    effect_size_ci95: Interval | None
    equivalence_p: float | None = Field(description="TOST p against ±equivalence_margin.")
    equivalence_p_adjusted: float | None
    equivalence_ci90: Interval | None = Field(
        default=None,
        description="The 90% interval of diff matching a 5% TOST: inside ±margin exactly "
        "when both one-sided tests reject.",
    )
    conclusion: Conclusion
    practical: Literal["beyond_margin", "within_margin", "undetermined"] | None = Field(
        default=None,
        description="A better pair against the margin: its interval wholly beyond it, wholly "
        "within it (better by a negligible amount), or neither; null when not better.",
    )
    decided_at_look: int | None = Field(
        default=None, description="The look (1-based) at which the pair was decided; it stays."
    )
    decision_p: float | None = Field(
        default=None,
        description="The p-value that decided the pair, at its decision look (the Holm-"
        "adjusted TOST p for equivalent), compared with level.",
    )
    mde: float | None = Field(description="Difference detected with 80% power, metric units.")
    seeds_needed: int | None = Field(description="Seeds per variant to decide; null if decided.")
    seeds_needed_beyond_max: bool = Field(
        default=False, description="seeds_needed exceeds the adaptive design's max."
    )
    level: float | None = Field(
        description="List of seeds: alpha, the level of p_adjusted. Adaptive: the nominal "
        "level the pair's p_value was compared with (its look's boundary for alpha over the "
        "pairs then undecided, Holm's step), at its decision look or the current one."
    )


class PerClassAccuracy(_Model):
    label: str | int
    accuracy_a: float | None = None
    accuracy_b: float | None = None
    p_adjusted: float | None = None
    # core.report.differences: Wilson 95% intervals and the test examples behind each accuracy.
    accuracy_a_ci95: Interval | None = None
    accuracy_b_ci95: Interval | None = None
    n_a: int | None = None
    n_b: int | None = None
    # core.report.classes: the pair's "differs" rule on the class's examples alone, Holm across
    # the pair's classes; ``differs`` is True only in a pair that differs.
    beyond_seeds_p: float | None = None
    beyond_seeds_p_adjusted: float | None = None
    differs: bool | None = None


class PairDifference(BaseModel):
    """How two variants differ beyond the primary metric (``core.report.differences``)."""

    model_config = ConfigDict(extra="allow")

    a: str | None = None
    b: str | None = None
    disagreement: float | None = None
    disagreement_ci95: Interval | None = None
    within_a: float | None = None
    within_b: float | None = None
    within: float | None = None
    beyond_seeds_p: float | None = None
    beyond_seeds_p_adjusted: float | None = None
    error_overlap: float | None = None
    mcnemar_p_adjusted: float | None = None
    per_class: list[PerClassAccuracy] | None = None
    ece_a: float | None = None
    ece_b: float | None = None
    cka_last_hidden: float | None = None
    cka_last_hidden_within_a: float | None = None
    cka_last_hidden_within_b: float | None = None
    sentence: str | None = None
    # core.report.differences: the paired seeds and shared examples behind the figures, McNemar
    # before the Holm adjustment, the NLL of each variant, and whether they are shown to differ
    # more than two seeds of one model (``beyond_seeds_p_adjusted`` < 0.05; False: not shown;
    # None: fewer than three paired seeds, or trials still to come).
    seeds: list[int] | None = None
    n_examples: int | None = None
    mcnemar_p: float | None = None
    nll_a: float | None = None
    nll_b: float | None = None
    differs: bool | None = None
    # core.report.controls: the disagreement's 95% interval over seeds (beside the one over
    # test examples), the control the pair is compared with ("replicates": a variant's trial
    # against its replicate at the same data seed; "seeds": two seeds of one variant, when
    # there are no replicates) and the seeds its test ran over, and the last hidden layers'
    # CKA interval over seeds.
    disagreement_ci95_seeds: Interval | None = None
    control: Literal["replicates", "seeds"] | None = None
    control_seeds: list[int] | None = None
    cka_last_hidden_ci95: Interval | None = None


class Answers(_Model):
    """One answer per level, each leading with its conclusion, then its figures."""

    score: str = Field(description="Is one better on the primary metric? (the tested pairs)")
    predictions: str | None = Field(
        default=None, description="Do they get different examples wrong, beyond seed luck?"
    )
    representations: str | None = Field(
        default=None, description="Do their last hidden layers represent the data alike (CKA)?"
    )
    robustness: str | None = Field(
        default=None,
        description="Is one more accurate under corruption, and does one degrade less?",
    )


class StructuralDifference(_Model):
    """One place where two variants' graphs differ (``models.structure``)."""

    op: Literal["added", "removed", "changed"]
    a: list[str] = Field(description="The layers of variant a involved (empty for an addition).")
    b: list[str] = Field(description="The layers of variant b involved (empty for a removal).")
    text: str


class PairStructure(_Model):
    """How the graphs of a tested pair differ, from an alignment of their layers."""

    a: str
    b: str
    differences: list[StructuralDifference]
    note: str | None = Field(
        default=None,
        description="Set when they differ in more than one place: a difference in their "
        "scores then cannot be pinned on one of them.",
    )


class BudgetPointOut(_Model):
    """The expected best validation score after ``trials`` tuning trials (Dodge et al.)."""

    trials: int
    mean: float
    std: float = Field(description="Its standard deviation over the draws of that many trials.")


class EdgeNote(_Model):
    """A selected knob at the edge of its range: the space may have been too narrow."""

    knob: str
    value: bool | int | float | str
    edge: Literal["low", "high"]
    text: str


class TuningVariant(_Model):
    """One variant's tuning: what was selected, how the budget went."""

    name: str
    trials: int = Field(description="Tuning trials that completed with a finite score.")
    pruned: int = Field(description="Tuning trials the pruner stopped.")
    failed: int = Field(description="Tuning trials that failed or were cancelled.")
    running: int = Field(description="Tuning trials still queued or running.")
    selected: dict[str, bool | int | float | str] | None = Field(
        description="The configuration with the best validation score; null before any."
    )
    validation_score: float | None = Field(description="Its validation score.")
    on_edge: list[EdgeNote] = Field(
        description="The selected knobs at an edge of their range: the space was too narrow."
    )
    expected_best: list[BudgetPointOut] = Field(
        description="The expected best validation score for n = 1..trials completed trials."
    )
    still_rising: bool = Field(
        description="The last doubling of the budget (n/2 to n) still gained more than the "
        "equivalence margin: the budget was not enough to call the comparison fair."
    )
    notes: list[str]


class Tuning(_Model):
    """The tuning stage: equal budgets per variant, selected on the validation split."""

    sampler: Literal["tpe", "random", "grid"]
    metric: Literal["val_accuracy", "val_loss"]
    trials_per_variant: int = Field(description="The budget: tuning trials per variant.")
    pruner: Literal["median", "successive_halving"] | None
    epochs: int | None = Field(description="Epochs per tuning trial (null: training's).")
    space: dict[str, Any]
    selection: str = Field(
        description="How the configuration was selected: on the validation split of the "
        "tuning trials, over their own seeds; the test split is only seen by the final trials."
    )
    margin: float = Field(description="The gain a doubling of the budget must exceed to rise.")
    variants: list[TuningVariant]
    verdict: str
    notes: list[str]


class Report(_Model):
    """The comparison report (partial while running: ``final`` false, ``interim`` true)."""

    comparison_id: str
    name: str | None = None
    status: str | None = None
    final: bool
    interim: bool
    primary_metric: str
    higher_is_better: bool
    design: Design
    variants: list[VariantSummary]
    pairwise: list[PairwiseResult]
    ranking: list[str]
    differences: list[PairDifference]
    structure: list[PairStructure] = Field(
        default_factory=list,
        description="Per tested pair, how the two architectures differ structurally.",
    )
    robustness: dict[str, Any] | None = Field(
        default=None,
        description="Accuracy under corruption, each variant's drop from clean and its mCE, "
        "per tested pair (core.report.robustness_section); only when the comparison asked "
        "for robustness.",
    )
    verdict: str
    answers: Answers | None = Field(
        default=None, description="The verdict split by question, each part labelled."
    )
    notes: list[str]
    tuning: Tuning | None = Field(
        default=None, description="The tuning stage's section; null without one."
    )
