"""The report's typed shape: pydantic models of what ``GET .../report`` answers.

``core.report.build.build_report`` makes a plain dict (the renderers and stored reports read
dicts); ``Report.model_validate`` checks it, and the api serves it with
``response_model=Report`` so ``/openapi.json`` documents every field. The field names are
those of the HTTP contract (versions 1.0, 1.1 and 1.2) that the README documents.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Conclusion",
    "Design",
    "Looks",
    "MetricSummary",
    "PairDifference",
    "PairwiseResult",
    "PerClassAccuracy",
    "PerSeedValue",
    "Report",
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
    level: float = Field(description="The current look's own level (its share of alpha).")
    alpha_spent: float = Field(description="Alpha spent up to and including this look.")
    final_level: float | None = Field(
        default=None, description="The last planned look's own level (adaptive designs)."
    )


class Design(_Model):
    """How the report tested: split, test, family, margin, sequential looks."""

    split: str = Field(description='"per_seed" or "fixed".')
    paired: bool = Field(description="Every tested pair was tested paired (same seeds).")
    test: str | None = Field(description='"paired_t", "welch", "mixed", or null when untested.')
    alpha: float
    equivalence_margin: float = Field(description="In the primary metric's units.")
    baseline: str | None
    sequential: str | None = Field(
        description='"lan_demets_pocock" for adaptive seeds, null for a list of seeds.'
    )
    looks: Looks
    family_size: int = Field(description="Pairs in the tested family (Holm's m).")
    multiplicity: str = Field(description="How p-values are adjusted: holm.")
    interval_adjustment: str = Field(description="How ci95_adjusted is adjusted: bonferroni.")


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
    paired: bool
    n_paired: int | None = Field(
        default=None,
        description="The seeds both variants have, over which the paired test ran (a seed "
        "only one has is left out); null for Welch.",
    )
    correlation: float | None = Field(description="Pearson r of the per-seed values (paired).")
    diff: float | None = Field(description="mean(a) - mean(b).")
    ci95: Interval | None = Field(description="Unadjusted 95% interval of diff.")
    ci95_adjusted: Interval | None = Field(
        description="Bonferroni interval at 1 - level/m (the look's level, m pairs)."
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
    conclusion: Conclusion
    mde: float | None = Field(description="Difference detected with 80% power, metric units.")
    seeds_needed: int | None = Field(description="Seeds per variant to decide; null if decided.")
    level: float | None = Field(description="The look's level the pair was tested at.")


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
    verdict: str
    notes: list[str]
