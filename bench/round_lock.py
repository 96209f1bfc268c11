"""How long deciding an adaptive comparison's next round holds the comparison's row lock.

``core.trials.finalize.finalize_comparison`` locks the comparison's row (``SELECT ... FOR
UPDATE`` on Postgres; SQLite has one writer and no row locks) and, under that lock, asks
``core.trials.rounds.next_round`` whether a tested pair needs more seeds. This script stores one
adaptive comparison whose round has just ended, with everything a worker stores (learning
curves, test-set predictions), and times that decision, rolled back after each run so every
run sees the same rows: on Postgres from the ``FOR UPDATE`` to the end of the decision (the
lock hold, less the commit), on both databases the whole ``finalize_comparison`` call.

Usage: ``python bench/round_lock.py [--variants 3] [--seeds 5] [--examples 10000]
[--epochs 20] [--repeat 5] [--database sqlite|postgres|both]``. Nothing is sent to a broker
(the transaction never commits).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import PG_ADMIN

from core.config import Settings
from core.report.similarity import encode_predictions
from core.spec import ComparisonSpec
from core.store.db import make_engine
from core.store.migrate import upgrade
from core.store.tables import Comparison, EpochMetric, Trial
from core.trials.finalize import finalize_comparison
from core.trials.planning import build_trials
from core.trials.validation import validate_comparison


def _variant(name: str, units: int) -> dict[str, Any]:
    return {
        "name": name,
        "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": units, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }


def store(engine: Engine, url: str, args: argparse.Namespace) -> str:
    """One adaptive comparison whose first round (``--seeds`` per variant) has just ended."""
    body = {
        "name": "round-lock",
        "dataset": {"name": "mnist_5k"},
        "training": {"epochs": args.epochs},
        "seeds": {"min": args.seeds, "max": 4 * args.seeds},
        "variants": [_variant(f"v{i}", 16 * (i + 1)) for i in range(args.variants)],
    }
    validated = validate_comparison(ComparisonSpec.model_validate(body), Settings(database_url=url))
    rng = np.random.default_rng(0)
    with Session(engine) as s:
        comparison = Comparison(
            tenant="default",
            name="round-lock",
            status="running",
            spec=validated.spec,
            analyses=validated.analyses,
            trials_total=validated.trials_total,
            epochs_total=validated.epochs_total,
        )
        s.add(comparison)
        s.flush()
        trials = build_trials(
            comparison.id, validated.spec, validated.analyses, list(range(args.seeds))
        )
        s.add_all(trials)
        s.flush()
        labels = rng.integers(0, 10, args.examples)
        for t in trials:
            for epoch in range(1, args.epochs + 1):
                acc = float(0.5 + 0.4 * epoch / args.epochs + rng.normal(0, 0.01))
                values = {
                    "accuracy": acc,
                    "loss": 1 - acc,
                    "val_accuracy": acc,
                    "val_loss": 1 - acc,
                }
                s.add(EpochMetric(trial_id=t.id, epoch=epoch, values=values, seconds=1.0))
            probs = rng.dirichlet(np.ones(10), args.examples)
            s.add(encode_predictions(t.id, np.arange(args.examples), labels, probs))
        s.execute(
            update(Trial)
            .where(Trial.comparison_id == comparison.id)
            .values(status="succeeded", epochs_done=args.epochs, test_loss=0.5)
        )
        for t in trials:  # close means: the report must ask for more seeds
            s.execute(
                update(Trial)
                .where(Trial.id == t.id)
                .values(test_accuracy=0.9 + 0.002 * t.variant_index + rng.normal(0, 0.01))
            )
        s.commit()
        return comparison.id


def measure(engine: Engine, comparison_id: str, repeat: int) -> tuple[list[float], list[float]]:
    """(lock held until the decision ended, whole finalize) in seconds, one pair per run."""
    locked_at: list[float] = []

    def on_execute(*args: Any) -> None:
        if "FOR UPDATE" in str(args[2]):
            locked_at.append(time.perf_counter())

    event.listen(engine, "before_cursor_execute", on_execute)
    held, whole = [], []
    try:
        for _ in range(repeat):
            locked_at.clear()
            with Session(engine) as s:
                t0 = time.perf_counter()
                finalize_comparison(s, comparison_id)
                t1 = time.perf_counter()
                s.rollback()
            whole.append(t1 - t0)
            held.append(t1 - locked_at[0] if locked_at else float("nan"))
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return held, whole


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, empty database of ``kind``, removed afterwards."""
    if kind == "postgres":
        import psycopg

        name = f"archbench_round_lock_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'archbench.db'}"


def main(argv: list[str] | None = None) -> int:
    """Store the comparison on each database, time the decision and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    print(
        f"{args.variants} variants x {args.seeds} seeds, {args.examples} test predictions and "
        f"{args.epochs} epochs per trial; median (min) of {args.repeat} runs"
    )
    for kind in kinds:
        with database(kind) as url:
            upgrade(url)
            engine = make_engine(url)
            try:
                comparison_id = store(engine, url, args)
                held, whole = measure(engine, comparison_id, args.repeat)
            finally:
                engine.dispose()
        lock = (
            f"row lock held {1000 * statistics.median(held):.1f} ms ({1000 * min(held):.1f}), "
            if kind == "postgres"
            else ""
        )
        print(
            f"{kind}: {lock}finalize_comparison {1000 * statistics.median(whole):.1f} ms "
            f"({1000 * min(whole):.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
