"""The W&B offline export of two comparisons with the same name and variant names, read back
from the run files themselves (tests.support.wandb_records, not the SDK that wrote them): a
group each, a comparison run with its own verdict, design and report, its trials' runs; the
resubmission's reused trials not written twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.exports.wandb import comparison_run_id, trial_run_id, write_offline_runs
from tests.support.exports import two_comparisons
from tests.support.wandb_records import read_all


@pytest.mark.slow  # the wandb SDK starts its core process for each run: about a second each
def test_two_comparisons_are_two_groups_with_their_verdicts(tmp_path: Path) -> None:
    first, second = two_comparisons()
    one = write_offline_runs(tmp_path, first)
    two = write_offline_runs(tmp_path, second)
    assert (len(one.new), len(one.reused)) == (1 + 6, 0)
    assert (len(two.new), len(two.reused)) == (1 + 2, 6)  # only seed 3 is new work
    runs = read_all(tmp_path / "wandb")
    assert len(runs) == 2 + 6 + 2
    groups = {r.group for r in runs}
    assert groups == {"same-name-11111111", "same-name-22222222"}
    for bundle in (first, second):
        cid = bundle.comparison["id"]
        [parent] = [r for r in runs if r.run_id == comparison_run_id(bundle.comparison)]
        assert parent.job_type == "comparison"
        assert parent.summary["verdict"] == bundle.verdict
        assert parent.summary["final"] is True
        assert str(bundle.verdict) in parent.notes  # the report's Markdown
        assert parent.config["comparison_id"] == cid
        assert parent.config["split"] == "fixed"
        assert parent.config["equivalence_margin"] == "0.02"
        assert parent.config["seeds"] == str(bundle.comparison["spec"]["seeds"]).replace(" ", "")
        [files] = parent.artifacts.values()
        assert sorted(files) == ["report.json", "report.md", "report.png", "similarity.png"]
        children = [r for r in runs if r.group == parent.group and r is not parent]
        own = [t for t in bundle.trials if not t["reused_from"]]
        assert sorted(r.run_id for r in children) == sorted(trial_run_id(t["id"]) for t in own)
        for child in children:
            assert child.job_type == "trial"
            trial = next(t for t in own if trial_run_id(t["id"]) == child.run_id)
            assert child.config["comparison_id"] == cid
            assert (child.config["variant"], child.config["seed"]) == (
                trial["variant"],
                trial["seed"],
            )
            assert child.summary["test_accuracy"] == pytest.approx(trial["test_accuracy"])
            want = [r["loss"] for r in bundle.metrics if r["trial_id"] == trial["id"]]
            got = [h["loss"] for h in sorted(child.history, key=lambda h: h["_step"])]
            assert got == pytest.approx(want)
    [parent2] = [r for r in runs if r.run_id == comparison_run_id(second.comparison)]
    assert parent2.config["reused_runs"] == {
        t["id"]: trial_run_id(t["reused_from"]) for t in second.trials if t["reused_from"]
    }

    again = write_offline_runs(tmp_path, second)
    assert (len(again.new), len(again.existing), len(again.reused)) == (1, 2, 6)
    assert len(read_all(tmp_path / "wandb")) == 10  # the comparison run rewritten, not added
