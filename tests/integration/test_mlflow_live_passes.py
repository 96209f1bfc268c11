"""worker.mlflow_live's pass on a real Postgres and a real MLflow store (SQLite), in process.

A comparison MLflow refuses (its experiment was deleted in the store) must not stop the others
from being logged, and no transaction may hold the trials' rows while MLflow is called.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.config import Settings, get_settings
from core.store.db import session_scope
from core.store.tables import Comparison, MlflowRun, Trial, utcnow
from tests.support.helpers import stored_spec
from tests.support.services import fresh_database, in_process_database

pytestmark = [pytest.mark.services]


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHBENCH_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with fresh_database("archbench_mlflow") as url, in_process_database(url, monkeypatch):
        yield get_settings()


def ended(name: str) -> tuple[str, str]:
    """A comparison with one succeeded trial; returns (comparison id, trial id)."""
    with session_scope() as s:
        c = Comparison(
            tenant="default",
            name=name,
            status="succeeded",
            spec=stored_spec(),
            trials_total=1,
            epochs_total=1,
            finished_at=utcnow(),
        )
        s.add(c)
        s.flush()
        t = Trial(
            comparison_id=c.id,
            variant="v",
            variant_index=0,
            seed=0,
            status="succeeded",
            epochs_planned=1,
            epochs_done=1,
            test_accuracy=0.5,
            finished_at=utcnow(),
        )
        s.add(t)
        s.flush()
        return c.id, t.id


def run_id(trial_id: str) -> str | None:
    with session_scope() as s:
        row = s.get(MlflowRun, trial_id)
        return None if row is None else (row.run_id or "placeholder")


def test_a_refused_comparison_is_skipped_and_no_row_is_locked_during_the_export(
    live: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    import worker.mlflow_live as mlflow_live
    from core.exports.mlflow import export_runs

    store = MlflowClient(tracking_uri=live.mlflow_tracking_uri)
    refused_exp = store.create_experiment("archbench/refused")
    store.delete_experiment(refused_exp)  # runs cannot be created in it any more
    refused, refused_trial = ended("refused")  # the older: first in the pass
    fine, fine_trial = ended("fine")

    real_export = export_runs  # the one worker.mlflow_live exports with
    exported: list[str] = []
    locked: list[str] = []

    def export(uri: str, info: dict[str, Any], rows: Any, epochs: Any) -> list[str]:
        exported.append(str(info["id"]))
        # Another connection must be able to lock the trials now: nothing holds them.
        with session_scope() as other:
            try:
                other.execute(
                    select(Trial.id)
                    .where(Trial.id.in_([r["id"] for r in rows]))
                    .with_for_update(nowait=True)
                ).all()
            except Exception:
                locked.append(str(info["id"]))
        return real_export(uri, info, rows, epochs)

    monkeypatch.setattr(mlflow_live, "export_runs", export)
    monkeypatch.setattr(mlflow_live, "_backoff", {}, raising=False)  # no earlier failures
    assert mlflow_live.log_due(live) == 1
    assert exported == [refused, fine]
    assert locked == []
    assert run_id(refused_trial) is None  # nothing recorded: due again later
    assert run_id(fine_trial) not in (None, "placeholder")
    fine_experiment = store.get_experiment_by_name("archbench/fine")
    assert fine_experiment is not None
    [run] = store.search_runs(
        [fine_experiment.experiment_id],
        filter_string=f"tags.`archbench.trial_id` = '{fine_trial}'",
    )
    assert run.info.run_id == run_id(fine_trial)

    # The refused one waits out its backoff; the next pass does not call MLflow for it.
    exported.clear()
    assert mlflow_live.log_due(live) == 0
    assert exported == []
    # Once MLflow takes it again (experiment restored) and the backoff passed, it is logged.
    store.restore_experiment(refused_exp)
    later = utcnow() + mlflow_live.BACKOFF_FIRST + timedelta(seconds=1)
    monkeypatch.setattr(mlflow_live, "utcnow", lambda: later)
    assert mlflow_live.log_due(live) == 1
    assert exported == [refused]
    assert run_id(refused_trial) not in (None, "placeholder")
    assert refused not in mlflow_live._backoff


def test_two_exporters_racing_never_claim_the_same_trial(
    live: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exporter B reads the due trials before A commits its claim and claims after: the
    placeholder A inserted decides, so each trial is claimed (and logged) by one of them."""
    import threading

    import worker.mlflow_live as mlflow_live

    for _ in range(5):
        cid, trial_id = ended("raced")
        gate = threading.Barrier(2)
        claims: list[Any] = []

        def claim(cid: str, trial_id: str, gate: threading.Barrier, out: list[Any]) -> None:
            gate.wait()
            out.append(mlflow_live._claim(live, cid, [trial_id]))

        threads = [
            threading.Thread(target=claim, args=(cid, trial_id, gate, claims)) for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        won = [c for c in claims if c is not None]
        assert len(claims) == 2
        assert len(won) == 1, claims
        assert [r["id"] for r in won[0][2]] == [trial_id]
        # The loser's view of it afterwards: nothing due, nothing to claim.
        assert mlflow_live._claim(live, cid, [trial_id]) is None
        # A failed export releases only its own claim; then the trial is due again.
        mlflow_live._release([trial_id], won[0][0] - timedelta(seconds=1))
        assert run_id(trial_id) == "placeholder"
        mlflow_live._release([trial_id], won[0][0])
        assert run_id(trial_id) is None
