"""The stored report at the analysis size limit: its first computation, then GETs of it.

Stores one finished comparison (``--variants`` x ``--seeds`` succeeded trials) straight into a
fresh Postgres database, each trial with as many test predictions as the per-trial analysis
limit admits (``ARCHBENCH_ANALYSIS_MAX_BYTES_PER_TRIAL``, 64 MiB: 1,864,135 examples of 10
classes), serves it with the real api (one process, no worker) and measures:

- the first ``GET /report``, which computes the report (nothing was stored yet): its time and
  the api's peak RSS above its idle RSS (target: under 500 MB);
- ``--gets`` GETs of the stored report: p50 and p99 latency (target: p99 under 50 ms) and the
  api's RSS growth across them;
- for reference, ``GET /trials?limit=1`` (one small read) the same number of times: what the
  machine's database round trips cost at the moment;
- the baseline, a report recomputed for every GET as before reports were stored: the same
  figures computed as the old route did (one session, every trial's predictions at once,
  ``compute_differences``) in a fresh process, its time and peak RSS above idle (the
  statistics' imports are loaded first, as the api's idle is read after a small report).

Usage: ``python bench/report_at_limits.py [--variants 3] [--seeds 3] [--examples N]
[--classes 10] [--gets 100] [--baseline 1]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import httpx
import numpy as np
from _harness import ROOT, api_on_postgres

P99_TARGET_MS = 50.0
PEAK_TARGET_MB = 500.0

BASELINE = """
import json, resource, sys, time
from core.report.build import tested_pairs
from core.report.differences import compute_differences
from core.report.load import assemble_report, load_trial_results, reuse_note
from core.report.similarity import last_hidden_cka, load_predictions
from core.status import TERMINAL
from core.store.db import session_scope
from core.store.tables import Comparison
import scipy.stats, statsmodels.api  # the imports, before idle is read
idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    with session_scope() as s:  # as every GET did: one session, every prediction at once
        c = s.get(Comparison, sys.argv[1])
        pairs = tested_pairs(c.spec.variant_names, c.spec.baseline)
        differences = compute_differences(
            load_predictions(s, c.id),
            pairs,
            cka_last_hidden=last_hidden_cka(s, c.id, pairs),
            interim=c.status not in TERMINAL,
        )
        assemble_report(c, load_trial_results(s, c.id), differences, reuse_note(s, c.id))
    times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": times, "idle_kb": idle, "peak_kb": peak}))
"""


def _status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _timed(client: httpx.Client, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.get(path).raise_for_status()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def warm_up(url: str) -> str:
    """A tiny finished comparison: its report loads the statistics' imports before idle."""
    from sqlalchemy.orm import Session

    from core.store.db import make_engine
    from tests.support.finished import finished_comparison

    engine = make_engine(url)
    with Session(engine) as s:
        cid = finished_comparison(s, variants=2, seeds=3, n_test=50).id
    engine.dispose()
    return cid


def populate(url: str, args: argparse.Namespace) -> str:
    """One finished comparison at the size asked, its predictions synthetic (seeded)."""
    from sqlalchemy import delete, select
    from sqlalchemy.orm import Session

    from core.report.similarity import encode_predictions
    from core.store.db import make_engine
    from core.store.tables import Trial, TrialPrediction
    from tests.support.finished import finished_comparison

    engine = make_engine(url)
    rng = np.random.default_rng(0)
    with Session(engine) as s:
        c = finished_comparison(
            s, variants=args.variants, seeds=args.seeds, n_test=10, classes=args.classes
        )
        labels = rng.integers(0, args.classes, args.examples)
        ids = list(s.scalars(select(Trial.id).where(Trial.comparison_id == c.id)))
        for trial_id in ids:
            s.execute(delete(TrialPrediction).where(TrialPrediction.trial_id == trial_id))
            probs = rng.random((args.examples, args.classes), dtype=np.float32)
            hit = rng.random(args.examples) < 0.9
            probs[np.flatnonzero(hit), labels[hit]] += args.classes
            probs /= probs.sum(axis=1, keepdims=True)
            s.add(encode_predictions(trial_id, np.arange(args.examples), labels, probs))
            s.commit()
            del probs
        cid = c.id
    engine.dispose()
    return cid


def baseline(database_url: str, cid: str, repeat: int) -> dict[str, float]:
    """The report recomputed as every GET did before: time and peak RSS above idle."""
    env = {"ARCHBENCH_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", BASELINE, cid, str(repeat)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "ms": statistics.median(found["seconds"]) * 1000,
        "peak_mb": (found["peak_kb"] - found["idle_kb"]) / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    from core.config import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", type=int, default=3)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--examples", type=int, default=0, help="per trial; 0: the limit admits")
    p.add_argument("--gets", type=int, default=100)
    p.add_argument("--baseline", type=int, default=1, help="recomputations measured")
    args = p.parse_args(argv)
    if args.examples <= 0:
        args.examples = Settings().analysis_max_bytes_per_trial // (16 + 2 * args.classes)
    with (
        api_on_postgres("limits", ARCHBENCH_BROKER_URL="memory://") as api,
        httpx.Client(base_url=api.url, timeout=1800) as client,
    ):
        t0 = time.perf_counter()
        cid = populate(api.database_url, args)
        print(
            f"stored {args.variants} x {args.seeds} trials x {args.examples:,} test examples "
            f"({args.classes} classes) in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        path = f"/v1/comparisons/{cid}/report"
        # Warm: imports (the statistics, the report's), connections; then idle is read.
        client.get(f"/v1/comparisons/{warm_up(api.database_url)}/report").raise_for_status()
        idle = _status_mb(api.proc.pid, "VmRSS")
        t0 = time.perf_counter()
        client.get(path).raise_for_status()
        first_s = time.perf_counter() - t0
        first_peak = _status_mb(api.proc.pid, "VmHWM") - idle
        before = _status_mb(api.proc.pid, "VmRSS")
        times = _timed(client, path, args.gets)
        growth = _status_mb(api.proc.pid, "VmRSS") - before
        # The machine's round trips now: a read of one trial row through the same api.
        reference = _timed(client, f"/v1/comparisons/{cid}/trials?limit=1", args.gets)
        base = baseline(api.database_url, cid, args.baseline)
    p50 = statistics.median(times)
    p99 = float(np.percentile(times, 99))
    print(f"first GET (computes): {first_s:.1f} s, api peak {first_peak:.0f} MB above idle")
    print(
        f"{args.gets} GETs of the stored report: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"api RSS growth {growth:+.1f} MB"
    )
    print(
        f"reference, {args.gets} GETs of /trials?limit=1 (one small read): "
        f"p50 {statistics.median(reference):.1f} ms, p99 {np.percentile(reference, 99):.1f} ms"
    )
    print(
        f"baseline (recomputed per GET, all predictions at once): {base['ms'] / 1000:.1f} s, "
        f"peak {base['peak_mb']:.0f} MB above idle"
    )
    print(
        f"ratio vs target: stored p99 {p99 / P99_TARGET_MS:.2f}x ({P99_TARGET_MS:.0f} ms), "
        f"first peak {first_peak / PEAK_TARGET_MB:.2f}x ({PEAK_TARGET_MB:.0f} MB)"
    )
    print(
        f"ratio vs baseline: stored GET p50 {p50 / base['ms']:.4f}x, "
        f"first computation {first_s * 1000 / base['ms']:.2f}x in time, "
        f"{first_peak / max(base['peak_mb'], 1.0):.2f}x in peak memory"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
