"""Two comparisons with the same name and variant names, the second a resubmission that
reuses the first one's trials and adds a seed: what the exporters must keep apart."""

from __future__ import annotations

from typing import Any

from core.exports.bundle import ComparisonBundle

PNG = b"\x89PNG\r\n\x1a\n" + b"not a real image, the exporters copy bytes"
VARIANTS = ("conv", "mlp")


def _spec(seeds: list[int]) -> dict[str, Any]:
    return {
        "dataset": {"name": "mnist_5k", "split": "fixed", "split_seed": 7},
        "seeds": seeds,
        "equivalence_margin": 0.02,
        "baseline": "mlp",
        "primary_metric": "test_accuracy",
        "training": {"epochs": 2, "batch_size": 32, "optimizer": "adam"},
        "variants": [{"name": v, "layers": [{"type": "Flatten"}]} for v in VARIANTS],
    }


def _trial(cid: str, variant: str, seed: int, shift: float) -> dict[str, Any]:
    return {
        "id": f"{cid[:4]}-{variant}-{seed}",
        "comparison_id": cid,
        "variant": variant,
        "seed": seed,
        "status": "succeeded",
        "epochs_done": 2,
        "started_at": "2026-12-07T10:00:00Z",
        "finished_at": "2026-12-07T10:01:00Z",
        "test_accuracy": 0.8 + shift + seed / 100,
        "test_loss": 0.5 - shift,
        "best_val_accuracy": 0.79 + shift,
        "reused_from": None,
    }


def _epochs(trial: dict[str, Any], shift: float) -> list[dict[str, Any]]:
    return [
        {
            "trial_id": trial["id"],
            "variant": trial["variant"],
            "seed": trial["seed"],
            "epoch": epoch,
            "loss": 1.0 / epoch + shift,
            "val_accuracy": 0.5 + epoch / 10 + shift,
            "seconds": 0.5,
        }
        for epoch in (1, 2)
    ]


def _bundle(cid: str, seeds: list[int], verdict: str, earlier: ComparisonBundle | None) -> Any:
    shift = 0.0 if earlier is None else 0.05
    comparison = {
        "id": cid,
        "name": "same-name",
        "status": "succeeded",
        "created_at": "2026-12-07T09:59:00Z",
        "finished_at": "2026-12-07T10:02:00Z",
        "spec": _spec(seeds),
    }
    reusable = {(t["variant"], t["seed"]): t for t in (earlier.trials if earlier else [])}
    trials, metrics = [], []
    for variant in VARIANTS:
        for seed in seeds:
            source = reusable.get((variant, seed))
            trial = _trial(cid, variant, seed, 0.0 if source else shift)
            if source:
                trial["reused_from"] = source["id"]
            trials.append(trial)
            metrics += _epochs(trial, 0.0 if source else shift)
    report = {
        "comparison_id": cid,
        "final": True,
        "verdict": verdict,
        "design": {"split": "fixed", "test": "paired_t", "alpha": 0.05},
    }
    files = {
        "report.json": b'{"verdict": "' + verdict.encode() + b'"}',
        "report.md": f"# same-name\n\n{verdict}\n".encode(),
        "report.png": PNG,
        "similarity.png": PNG,
    }
    return ComparisonBundle(comparison, trials, metrics, report, files)


def two_comparisons() -> tuple[ComparisonBundle, ComparisonBundle]:
    """The first (seeds 0-2) and its resubmission (seeds 0-3, 0-2 reused), same names."""
    first = _bundle(
        "11111111-aaaa-4aaa-8aaa-000000000001",
        [0, 1, 2],
        "conv and mlp are equivalent within 0.02 (3 seeds).",
        None,
    )
    second = _bundle(
        "22222222-bbbb-4bbb-8bbb-000000000002",
        [0, 1, 2, 3],
        "conv is better than mlp by 0.05 (4 seeds).",
        first,
    )
    return first, second
