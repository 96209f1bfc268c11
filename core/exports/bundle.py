"""What every exporter of a comparison writes: its trials and curves, and its answer.

A ``ComparisonBundle`` is a comparison as the api serves it (the comparison, its trial rows,
its epoch rows) with its report (the JSON, and the rendered files: ``report.json``,
``report.md``, ``report.png``, ``similarity.png`` when there is one). The exporters
(TensorBoard, MLflow, W&B) keep comparisons apart by ``folder_name`` (the comparison's name
and id) and record the design (``design_params``) and the ``verdict`` beside the trials.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "REPORT_FILES",
    "ComparisonBundle",
    "design_params",
    "folder_name",
    "safe_name",
    "seed_label",
]

REPORT_FILES = ("report.json", "report.md", "report.png", "similarity.png")


def safe_name(name: str) -> str:
    """``name`` as one path segment: letters, digits and ``._=-``, the rest ``_``."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("._") or "_"


def folder_name(comparison: Mapping[str, Any]) -> str:
    """The comparison's own folder, ``<name>-<first 8 of its id>``: two comparisons with the
    same name (a resubmission) get two folders."""
    return f"{safe_name(str(comparison['name']))[:80]}-{str(comparison['id'])[:8]}"


def seed_label(trial: Mapping[str, Any]) -> str:
    """A trial's seed in a run's name: ``seed3``, or ``seed3-replicate1`` for a replicate (the
    same data seed, another initialisation seed), so that the two never share a run."""
    replicate = int(trial.get("replicate") or 0)
    seed = f"seed{int(trial['seed'])}"
    return f"{seed}-replicate{replicate}" if replicate else seed


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def design_params(
    comparison: Mapping[str, Any], report: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The comparison's design as flat strings: the split, the seeds, the equivalence margin,
    the tuning, the baseline, the dataset and the primary metric (from the spec), and the
    test and alpha the report used."""
    spec = comparison.get("spec") or {}
    dataset = spec.get("dataset") or {}
    design = (report or {}).get("design") or {}
    out: dict[str, Any] = {
        "dataset": dataset.get("name"),
        "split": dataset.get("split", "per_seed"),
        "split_seed": dataset.get("split_seed"),
        "seeds": spec.get("seeds"),
        "equivalence_margin": spec.get("equivalence_margin", design.get("equivalence_margin")),
        "baseline": spec.get("baseline"),
        "tuning": spec.get("tuning"),
        "primary_metric": spec.get("primary_metric"),
        "variants": [v.get("name") for v in spec.get("variants", [])] or None,
        "test": design.get("test"),
        "alpha": design.get("alpha"),
    }
    return {k: _text(v)[:500] for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class ComparisonBundle:
    """A comparison, its rows and its report, as the exporters take them."""

    comparison: Mapping[str, Any]
    trials: Sequence[Mapping[str, Any]]
    metrics: Sequence[Mapping[str, Any]]
    report: Mapping[str, Any] | None = None
    files: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def verdict(self) -> str | None:
        """The report's verdict, the sentence a person pastes; None without a report."""
        value = (self.report or {}).get("verdict")
        return str(value) if value else None

    @property
    def final(self) -> bool:
        """Whether the report is the final one (the comparison has ended)."""
        return bool((self.report or {}).get("final"))
