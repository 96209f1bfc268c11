"""The server's limits on a comparison as a whole: variants, seeds, epochs, trial-epochs, the
split, the time budget and the callback. Each check returns located errors (``["body",
"seeds", "max"]``) for ``core.trials.validation`` to raise together with the rest."""

from __future__ import annotations

from core.config import Settings
from core.datasets import DatasetInfo, split_problem
from core.errors import ErrorItem
from core.spec import ComparisonSpec, SeedSchedule
from core.trials.destinations import allows_private, literal_refusal

__all__ = [
    "BODY",
    "callback_errors",
    "limit_errors",
    "over",
    "split_errors",
    "time_errors",
]

BODY: list[str | int] = ["body"]
"""Where a comparison's fields are in the request (``["body", "seeds", "max"]``)."""


def over(loc: list[str | int], msg: str) -> ErrorItem:
    return {"loc": [*BODY, *loc], "msg": msg}


def limit_errors(spec: ComparisonSpec, settings: Settings) -> list[ErrorItem]:
    """This server's limits: variants, seeds, epochs, trial-epochs and the time budget."""
    errors: list[ErrorItem] = []
    if len(spec.variants) > settings.max_variants:
        errors.append(
            over(
                ["variants"],
                f"{len(spec.variants)} variants exceeds the limit of {settings.max_variants}",
            )
        )
    if isinstance(spec.seeds, SeedSchedule):
        if spec.seeds.max < spec.seeds.min:
            errors.append(
                over(
                    ["seeds", "max"],
                    f"max ({spec.seeds.max}) must be at least min ({spec.seeds.min})",
                )
            )
        elif spec.seeds.max > settings.max_seeds:
            errors.append(
                over(
                    ["seeds", "max"],
                    f"{spec.seeds.max} seeds per variant exceeds the limit of {settings.max_seeds}",
                )
            )
    elif len(spec.seeds) > settings.max_seeds:
        errors.append(
            over(["seeds"], f"{len(spec.seeds)} seeds exceeds the limit of {settings.max_seeds}")
        )
    if spec.training.epochs > settings.max_epochs:
        errors.append(
            over(
                ["training", "epochs"],
                f"{spec.training.epochs} epochs exceeds the limit of {settings.max_epochs}",
            )
        )
    # An adaptive comparison is limited by the most it can run (max seeds per variant).
    most_epochs = len(spec.variants) * spec.most_seeds * spec.runs_per_seed * spec.training.epochs
    if most_epochs > settings.max_trial_epochs:
        errors.append(
            over(
                ["training", "epochs"],
                f"{most_epochs:,} trial-epochs (variants x seeds x (1 + replicates) x epochs) "
                f"exceeds the limit of {settings.max_trial_epochs:,}",
            )
        )
    return errors


def split_errors(spec: ComparisonSpec, dataset: DatasetInfo) -> list[ErrorItem]:
    """A split that leaves some class without an example where a trial needs one."""
    problem = split_problem(
        dataset,
        test_split=spec.dataset.test_split,
        validation_split=spec.dataset.validation_split,
        max_samples=spec.dataset.max_samples,
        design=spec.dataset.split,
        probe_size=spec.analysis.probe_reserved,
    )
    return [] if problem is None else [over(["dataset", problem.field], problem.msg)]


def time_errors(spec: ComparisonSpec, settings: Settings) -> list[ErrorItem]:
    if spec.training.max_seconds and spec.training.max_seconds > settings.trial_max_seconds:
        return [
            over(
                ["training", "max_seconds"],
                f"{spec.training.max_seconds} s exceeds the server's ceiling of "
                f"{settings.trial_max_seconds} s per trial",
            )
        ]
    return []


def callback_errors(spec: ComparisonSpec, settings: Settings) -> list[ErrorItem]:
    """A callback this server cannot sign, or (unless allowed) a private address."""
    if not spec.callback_url:
        return []
    if not settings.webhook_secret:
        return [
            over(
                ["callback_url"],
                "webhooks are off on this server: it has no ARCHBENCH_WEBHOOK_SECRET "
                "to sign them with",
            )
        ]
    reason = None if allows_private(settings) else literal_refusal(spec.callback_url)
    if reason:
        return [
            over(
                ["callback_url"],
                f"callback_url must be a public address: {reason} "
                "(ARCHBENCH_WEBHOOK_ALLOW_PRIVATE is off on this server)",
            )
        ]
    return []
