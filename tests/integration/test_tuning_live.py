"""The tuning stage on the real stack (api, a Celery worker, Postgres, Redis, Keras): a tuned
comparison runs its tuning trials (validation only: no test score, no stored predictions),
then its final trials at each variant's selected configuration, and succeeds; a worker
SIGKILLed during the tuning stage loses no tuning trial and doubles none. Tiny: 8x8 digits,
small dense models, two tuning trials per variant."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.store.tables import EpochMetric, Trial, TrialPrediction
from tests.support.helpers import wait_done
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.services, pytest.mark.worker]

SETTINGS = {
    "ARCHBENCH_LEASE_SECONDS": "10",
    "ARCHBENCH_SWEEP_SECONDS": "1",
    "ARCHBENCH_MAX_ATTEMPTS": "2",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with process_stack(tmp_path_factory.mktemp("tuning"), **SETTINGS) as s:
        yield s


def dense(name: str, units: int) -> dict[str, Any]:
    return {
        "name": name,
        "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": units, "activation": "relu"},
            {"type": "Dropout", "rate": 0.2, "name": "drop"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }


def tuned(name: str, *, epochs: int, tuning_epochs: int, samples: int) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": {"name": "digits", "max_samples": samples, "split": "fixed"},
        "training": {"epochs": epochs, "batch_size": 32},
        "seeds": [0, 1],
        "reuse": False,
        "analysis": {"probe_size": 16},
        "variants": [dense("wide", 32), dense("narrow", 8)],
        "tuning": {
            "space": {
                "learning_rate": {"log_uniform": [1e-3, 1e-1]},
                "dropout.drop": {"uniform": [0.0, 0.5]},
            },
            "trials": 2,
            "sampler": "random",
            "epochs": tuning_epochs,
        },
    }


def rows(stack: Stack, cid: str) -> list[Trial]:
    with stack.db() as s:
        out = list(s.scalars(select(Trial).where(Trial.comparison_id == cid)))
        s.expunge_all()
        return out


def check_stages(stack: Stack, client: httpx.Client, cid: str) -> None:
    """Two tuning trials per variant, validation only; the final trials at the selected
    configs over seeds 0 and 1, tested; /trials lists both stages."""
    trials = rows(stack, cid)
    tuning = [t for t in trials if t.stage == "tuning"]
    final = [t for t in trials if t.stage == "test"]
    assert sorted((t.variant, t.status) for t in tuning) == [
        ("narrow", "succeeded"),
        ("narrow", "succeeded"),
        ("wide", "succeeded"),
        ("wide", "succeeded"),
    ]
    assert sorted((t.variant, int(t.seed)) for t in final) == [
        ("narrow", 0),
        ("narrow", 1),
        ("wide", 0),
        ("wide", 1),
    ]
    for t in tuning:
        assert (t.test_accuracy, t.test_loss, t.test_metrics) == (None, None, None)
        assert t.inference_ms_per_sample is None
        assert t.best_val_accuracy is not None
        assert set(t.config or {}) == {"learning_rate", "dropout.drop"}
    with stack.db() as s:
        tested = s.scalar(
            select(func.count())
            .select_from(TrialPrediction)
            .where(TrialPrediction.trial_id.in_([t.id for t in tuning]))
        )
        assert tested == 0
    for variant in ("wide", "narrow"):
        mine = [t for t in tuning if t.variant == variant]
        best = max(mine, key=lambda t: (t.best_val_accuracy or 0.0, -t.seed))
        for t in final:
            if t.variant == variant:
                assert t.config == best.config
                assert t.test_accuracy is not None
    listed = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
    assert sorted(t["stage"] for t in listed) == ["test"] * 4 + ["tuning"] * 4
    assert all(t["config"] for t in listed)
    report = client.get(f"/v1/comparisons/{cid}/report").json()
    assert report["design"]["tuning"]["trials"] == 2
    assert report["design"]["tuning"]["selected_on"] == "validation"
    assert {v["n"] for v in report["variants"]} == {2}


def test_a_tuned_comparison_runs_end_to_end(stack: Stack) -> None:
    with stack.client() as client:
        resp = client.post(
            "/v1/comparisons", json=tuned("tuned", epochs=2, tuning_epochs=1, samples=400)
        )
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        done = wait_done(client, cid, timeout=240)
        assert done["status"] == "succeeded", done
        assert done["progress"]["trials_total"] == 8
        assert done["progress"]["trials_succeeded"] == 8
        check_stages(stack, client, cid)


def test_a_worker_killed_in_the_tuning_stage_loses_and_doubles_nothing(stack: Stack) -> None:
    with stack.client() as client:
        resp = client.post(
            "/v1/comparisons", json=tuned("killed", epochs=6, tuning_epochs=5, samples=1500)
        )
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        deadline = time.monotonic() + 120
        while True:
            running = [t for t in rows(stack, cid) if t.stage == "tuning" and t.epochs_done >= 1]
            if running:
                break
            assert time.monotonic() < deadline, "no tuning trial trained an epoch"
            time.sleep(0.1)
        victim = next(n for n in stack.procs if n.startswith("w"))
        stack.kill(victim)
        stack.start_worker(f"w-after-{victim}")
        done = wait_done(client, cid, timeout=300)
        assert done["status"] == "succeeded", done
        trials = rows(stack, cid)
        assert len(trials) == 8  # four tuning trials and four final ones, no more
        assert max(t.attempts for t in trials if t.stage == "tuning") == 2  # one was resumed
        with stack.db() as s:
            counted = s.execute(
                select(EpochMetric.trial_id, func.count())
                .where(EpochMetric.trial_id.in_([t.id for t in trials]))
                .group_by(EpochMetric.trial_id)
            ).all()
            per_trial = {str(tid): int(n) for tid, n in counted}
        for t in trials:
            assert per_trial[t.id] == (5 if t.stage == "tuning" else 6) == t.epochs_done
        tuning = [t for t in trials if t.stage == "tuning"]
        final = [t for t in trials if t.stage == "test"]
        assert len({(t.variant, t.seed) for t in tuning}) == 4
        assert len({(t.variant, t.seed) for t in final}) == 4
        assert all(t.test_accuracy is None for t in tuning)
