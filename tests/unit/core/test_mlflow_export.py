"""The MLflow export of two comparisons with the same name and variant names, read back from
the store: a parent run each with its own verdict, design and report; the trials as its
children; the resubmission's reused trials not logged twice.

mlflow-skinny (the project's dependency) cannot serve a tracking server (that needs the full
``mlflow`` package and Flask), and MLflow 3 refuses the ``file:`` store unless told to, so
the store is MLflow's SQLite backend (the one a tracking server runs on), read back through
MLflow's own client. Its artifacts land beside the database file."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from core.exports.mlflow import log_bundle
from tests.support.exports import two_comparisons


@pytest.mark.slow  # MLflow migrates a new SQLite store: half a minute on a busy machine
def test_two_comparisons_are_apart_with_their_verdicts_and_reuse_logged_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = two_comparisons()
    one = log_bundle(uri, first)
    two = log_bundle(uri, second)
    assert (len(one.new), len(one.reused)) == (6, 0)
    assert (len(two.new), len(two.reused)) == (2, 6)  # only seed 3 is new work
    assert "View run" not in capsys.readouterr().out

    ml = MlflowClient(tracking_uri=uri)
    experiment = ml.get_experiment_by_name("archbench/same-name")
    assert experiment is not None
    runs = ml.search_runs([experiment.experiment_id], max_results=100)
    assert len(runs) == 2 + 6 + 2  # two parents, each trial's work once
    parents = {r.data.tags["archbench.comparison_id"]: r for r in runs if not _parent(r)}
    assert set(parents) == {first.comparison["id"], second.comparison["id"]}
    for bundle in (first, second):
        parent = parents[bundle.comparison["id"]]
        assert parent.data.tags["archbench.verdict"] == bundle.verdict
        assert bundle.verdict in parent.data.tags["mlflow.note.content"]
        assert parent.info.status == "FINISHED"
        params = parent.data.params
        assert params["split"] == "fixed"
        assert params["seeds"] == str(bundle.comparison["spec"]["seeds"]).replace(" ", "")
        assert params["equivalence_margin"] == "0.02"
        assert params["test"] == "paired_t"
        names = {a.path for a in ml.list_artifacts(parent.info.run_id)}
        assert {"report.json", "report.md", "report.png", "similarity.png"} <= names
        local = ml.download_artifacts(parent.info.run_id, "report.md", str(tmp_path))
        assert bundle.verdict in Path(local).read_text()
        children = [r for r in runs if _parent(r) == parent.info.run_id]
        own = [t for t in bundle.trials if not t["reused_from"]]
        assert sorted(r.data.tags["archbench.trial_id"] for r in children) == sorted(
            t["id"] for t in own
        )
        for child in children:
            trial = next(t for t in own if t["id"] == child.data.tags["archbench.trial_id"])
            assert child.data.metrics["test_accuracy"] == pytest.approx(trial["test_accuracy"])
    # The resubmission names the runs it reuses: the first comparison's, by trial.
    first_runs = {r.data.tags.get("archbench.trial_id"): r.info.run_id for r in runs}
    for trial in second.trials:
        if trial["reused_from"]:
            assert two.by_trial[trial["id"]] == first_runs[trial["reused_from"]]
    local = ml.download_artifacts(two.parent, "reused_runs.json", str(tmp_path / "r"))
    assert len(Path(local).read_text().strip().splitlines()) == 6 + 2

    again = log_bundle(uri, second)
    assert (len(again.new), len(again.existing), len(again.reused)) == (0, 2, 6)
    assert len(ml.search_runs([experiment.experiment_id], max_results=100)) == 10
    assert (tmp_path / "mlartifacts").is_dir()  # not ./mlruns wherever the test ran


def _parent(run: object) -> str | None:
    return run.data.tags.get("mlflow.parentRunId")  # type: ignore[attr-defined,no-any-return]
