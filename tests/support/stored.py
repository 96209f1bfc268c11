"""Stored specs as earlier versions wrote them, and the reuse key as the dict-reading code
computed it: what the typed ``core.spec.StoredSpec`` is checked against."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from core.trials.reuse import SEEDING


def legacy_of(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored spec's JSON as version 1.0 stored it: no split design, no analysis, no
    baseline, no equivalence margin, and a list of seeds."""
    old = copy.deepcopy(stored)
    for key in ("analysis", "baseline", "equivalence_margin"):
        old.pop(key, None)
    old["dataset"].pop("split", None)
    if isinstance(old["seeds"], dict):
        old["seeds"] = list(range(old["seeds"]["min"]))
    return old


def dict_hash(spec: dict[str, Any], index: int, seed: int, versions: dict[str, Any]) -> str:
    """The reuse key of a trial as the code before the typed spec computed it, from the
    stored JSON (a spec without ``split`` had the fixed split; without ``analysis``, the
    defaults, left out of the key)."""
    variant = spec["variants"][index]
    training = {k: v for k, v in spec["training"].items() if k != "max_seconds"}
    dataset = {"split": "fixed", **spec["dataset"]}
    analysis = spec.get("analysis") or {}
    probe = int(analysis.get("probe_size", 256)) if analysis.get("similarity", True) else 0
    key = {
        "layers": variant["layers"],
        "input_shape": variant["input_shape"],
        "dataset": dataset,
        "probe_reserved": probe if dataset["split"] == "per_seed" else 0,
        "training": training,
        "seed": seed,
        "seeding": SEEDING,
        "versions": versions,
    }
    if spec.get("analysis") is not None:
        key["analysis"] = spec["analysis"]
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
