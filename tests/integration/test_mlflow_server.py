"""The MLflow export against a real tracking server (``mlflow server``, started here), read
back through the server's REST API: two comparisons with the same name and variant names
land apart, a parent run each with its verdict, design and report files (uploaded through
the server's artifact proxy), the trials as its children, the resubmission's reused trials
logged once, and no "View run" line from MLflow for any of the runs.

tests/unit/core/test_mlflow_export.py checks the same shape on a local SQLite store; only a
server shows the artifact upload over HTTP and the "View run" lines MLflow prints for one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.exports.bundle import REPORT_FILES, ComparisonBundle
from core.exports.mlflow import log_bundle
from tests.support.exports import two_comparisons
from tests.support.mlflow_server import Rest, tracking_server

pytestmark = [pytest.mark.slow]  # the server migrates its new store first: a minute or two


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    with tracking_server(folder) as uri:
        yield uri, folder


def test_two_comparisons_on_a_tracking_server_are_apart_with_their_verdicts(
    server: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    uri, folder = server
    monkeypatch.chdir(tmp_path)  # nothing may be written where the export runs
    first, second = two_comparisons()
    one = log_bundle(uri, first)
    two = log_bundle(uri, second)
    printed = capfd.readouterr()
    assert "View run" not in printed.out + printed.err
    assert (len(one.new), len(one.reused)) == (6, 0)
    assert (len(two.new), len(two.reused)) == (2, 6)  # only seed 3 is new work

    rest = Rest(uri)
    experiment = rest.experiment_id("archbench/same-name")
    assert one.view == f"{uri}/#/experiments/{experiment}/runs/{one.parent}"
    runs = rest.runs(experiment)
    assert len(runs) == 2 + 6 + 2  # two parents, each trial's work once
    parents = {r["tags"]["archbench.comparison_id"]: r for r in runs if _is_parent(r)}
    assert set(parents) == {first.comparison["id"], second.comparison["id"]}
    assert parents[first.comparison["id"]]["id"] == one.parent
    assert parents[second.comparison["id"]]["id"] == two.parent
    for bundle in (first, second):
        _check_parent(rest, parents[bundle.comparison["id"]], bundle)
        _check_children(runs, parents[bundle.comparison["id"]], bundle)

    # The resubmission names the runs it reuses: the first comparison's, by trial.
    by_trial = {r["tags"].get("archbench.trial_id"): r["id"] for r in runs}
    reused = json.loads(rest.artifact(two.parent, "reused_runs.json"))
    expected = {t["id"]: by_trial[t["reused_from"]] for t in second.trials if t["reused_from"]}
    assert reused == expected
    assert len(reused) == 6

    again = log_bundle(uri, second)
    assert (len(again.new), len(again.existing), len(again.reused)) == (0, 2, 6)
    assert len(rest.runs(experiment)) == 10
    # The files went to the server (its artifact store), none beside the exporting process.
    assert list(tmp_path.iterdir()) == []
    stored = {p.name for p in (folder / "artifacts").rglob("*") if p.is_file()}
    assert set(REPORT_FILES) | {"reused_runs.json"} <= stored
    assert "View run" not in "".join(capfd.readouterr())


def _is_parent(run: dict[str, Any]) -> bool:
    return bool(run["tags"].get("archbench.role") == "comparison")


def _check_parent(rest: Rest, parent: dict[str, Any], bundle: ComparisonBundle) -> None:
    """The verdict (tag and description), the design as params, the report's four files."""
    assert "mlflow.parentRunId" not in parent["tags"]
    assert parent["status"] == "FINISHED"
    assert parent["tags"]["archbench.verdict"] == bundle.verdict
    assert bundle.verdict in parent["tags"]["mlflow.note.content"]
    assert parent["name"] == f"same-name-{bundle.comparison['id'][:8]}"
    params = parent["params"]
    assert params["split"] == "fixed"
    assert params["seeds"] == json.dumps(bundle.comparison["spec"]["seeds"]).replace(" ", "")
    assert params["equivalence_margin"] == "0.02"
    assert params["test"] == "paired_t"
    assert set(REPORT_FILES) <= rest.artifacts(parent["id"])
    for name in REPORT_FILES:
        assert rest.artifact(parent["id"], name) == bundle.files[name]


def _check_children(
    runs: list[dict[str, Any]], parent: dict[str, Any], bundle: ComparisonBundle
) -> None:
    """The comparison's own trials (not the reused ones) are its children, and only they."""
    children = [r for r in runs if r["tags"].get("mlflow.parentRunId") == parent["id"]]
    own = {t["id"]: t for t in bundle.trials if not t["reused_from"]}
    assert sorted(r["tags"]["archbench.trial_id"] for r in children) == sorted(own)
    for child in children:
        trial = own[child["tags"]["archbench.trial_id"]]
        assert child["tags"]["archbench.comparison_id"] == bundle.comparison["id"]
        assert child["name"] == f"{trial['variant']}-seed{trial['seed']}"
        assert child["status"] == "FINISHED"
        assert child["params"]["variant"] == trial["variant"]
        assert child["metrics"]["test_accuracy"] == pytest.approx(trial["test_accuracy"])
