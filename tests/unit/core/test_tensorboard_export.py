"""TensorBoard event files written without TensorFlow, read back with TensorBoard's reader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from core.exports.bundle import ComparisonBundle
from core.exports.tensorboard import write_event_files
from tests.support.exports import two_comparisons

ROOT = Path(__file__).resolve().parents[3]


def _trials() -> list[dict[str, Any]]:
    return [
        {
            "id": "t1",
            "variant": "conv64x2",
            "seed": 0,
            "status": "succeeded",
            "started_at": "2026-12-03T06:40:17Z",
            "test_accuracy": 0.9393,
            "test_loss": 0.21,
            "best_val_accuracy": 0.95,
        },
        {
            "id": "t2",
            "variant": "conv64x2",
            "seed": 1,
            "status": "failed",
            "started_at": None,
            "test_accuracy": None,
        },
        {"id": "t3", "variant": "a/b c", "seed": 7, "status": "queued"},
    ]


def _metrics() -> list[dict[str, Any]]:
    rows = []
    for trial_id, seed, epochs in (("t1", 0, 3), ("t2", 1, 1)):
        for epoch in range(1, epochs + 1):
            rows.append(
                {
                    "trial_id": trial_id,
                    "variant": "conv64x2",
                    "seed": seed,
                    "epoch": epoch,
                    "loss": 1.0 / epoch + seed,
                    "accuracy": 0.5 + epoch / 10,
                    "val_loss": None if epoch == 2 else 1.5 / epoch,
                    "val_accuracy": 0.4 + epoch / 20,
                    "seconds": 0.25 * epoch,
                }
            )
    return rows


COMPARISON = {"id": "0b8c1f2e-0000-4000-8000-000000000000", "name": "quick mnist"}
FOLDER = "quick_mnist-0b8c1f2e"


def _bundle() -> ComparisonBundle:
    return ComparisonBundle(COMPARISON, _trials(), _metrics())


def _texts(run: Path) -> dict[str, str]:
    acc = event_accumulator.EventAccumulator(
        str(run), size_guidance={event_accumulator.TENSORS: 0}
    ).Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        [event] = acc.Tensors(tag)
        out[tag] = tensor_util.make_ndarray(event.tensor_proto).item().decode()
    return out


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    acc = event_accumulator.EventAccumulator(
        str(run), size_guidance={event_accumulator.TENSORS: 0}
    ).Reload()
    return {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
        for tag in acc.Tags()["tensors"]
    }


def test_one_run_per_trial_step_is_epoch(tmp_path: Path) -> None:
    result = write_event_files(tmp_path, _bundle())
    assert result.new == [f"{FOLDER}/conv64x2/seed0", f"{FOLDER}/conv64x2/seed1"]
    assert result.empty == 1  # the queued trial has no epoch yet
    first = _scalars(tmp_path / FOLDER / "conv64x2" / "seed0")
    rows = [r for r in _metrics() if r["trial_id"] == "t1"]
    for key in ("loss", "accuracy", "val_accuracy"):
        want = [(r["epoch"], r[key]) for r in rows]
        got = first[key]
        assert [s for s, _ in got] == [s for s, _ in want]
        assert np.allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)  # float32
    assert [s for s, _ in first["val_loss"]] == [1, 3]  # the missing value is skipped
    assert [s for s, _ in first["epoch_seconds"]] == [1, 2, 3]
    assert first["test_accuracy"] == [(3, float(np.float32(0.9393)))]
    second = _scalars(tmp_path / FOLDER / "conv64x2" / "seed1")
    assert [s for s, _ in second["loss"]] == [1]
    assert "test_accuracy" not in second  # a failed trial has none

    again = write_event_files(tmp_path, _bundle())
    assert again.new == []
    assert again.existing == [f"{FOLDER}/conv64x2/seed0", f"{FOLDER}/conv64x2/seed1"]
    assert "0 new TensorBoard run(s)" in again.summary(tmp_path)
    assert "2 already there" in again.summary(tmp_path)
    assert len(list((tmp_path / FOLDER / "conv64x2" / "seed0").iterdir())) == 1  # nothing twice


def test_two_comparisons_with_the_same_variant_names_are_written_apart(tmp_path: Path) -> None:
    first, second = two_comparisons()
    one = write_event_files(tmp_path, first)
    two = write_event_files(tmp_path, second)
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["same-name-11111111", "same-name-22222222"]
    assert len(one.new) == 6
    assert len(two.new) == 8  # nothing skipped as "already there"
    assert one.existing == two.existing == []
    for bundle, folder in zip((first, second), folders, strict=True):
        texts = _texts(tmp_path / folder / "report")
        assert texts["verdict"] == f"{bundle.verdict} (final)"
        assert str(bundle.verdict) in texts["report"]
        assert "- equivalence_margin: 0.02" in texts["design"].splitlines()
        assert str(bundle.comparison["id"]) in texts["comparison"]
        runs = {p.parent.name + "/" + p.name for p in (tmp_path / folder).glob("*/seed*")}
        seeds = bundle.comparison["spec"]["seeds"]
        assert runs == {f"{v}/seed{s}" for v in ("conv", "mlp") for s in seeds}
        for trial in bundle.trials:  # each run holds its own comparison's curve
            want = [r["loss"] for r in bundle.metrics if r["trial_id"] == trial["id"]]
            got = _scalars(tmp_path / folder / trial["variant"] / f"seed{trial['seed']}")
            assert np.allclose([v for _, v in got["loss"]], want, rtol=1e-6)
    seed3 = _scalars(tmp_path / folders[1] / "conv" / "seed3")
    assert np.isclose(seed3["loss"][0][1], 1.05)  # the resubmission's new seed, its own folder


def test_a_folder_holding_another_comparison_is_never_merged_into(tmp_path: Path) -> None:
    first, _ = two_comparisons()
    write_event_files(tmp_path, first)
    impostor = {**first.comparison, "id": "11111111-ffff-4fff-8fff-00000000000f"}
    with pytest.raises(ValueError, match="never merged"):
        write_event_files(tmp_path, ComparisonBundle(impostor, first.trials, first.metrics))
    assert len(list((tmp_path / "same-name-11111111").glob("*/seed*"))) == 6


def test_writing_does_not_import_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from core.exports.tensorboard import write_event_files; "
        "from core.exports.bundle import ComparisonBundle; "
        "write_event_files(Path(sys.argv[1]), ComparisonBundle({'id': 'c', 'name': 'n'}, "
        "[{'id': 't', 'variant': 'v', 'seed': 0, 'status': 'succeeded'}], "
        "[{'trial_id': 't', 'variant': 'v', 'seed': 0, 'epoch': 1, 'loss': 0.5}])); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; print('ok')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list((tmp_path / "n-c" / "v" / "seed0").glob("events.out.tfevents.*"))
