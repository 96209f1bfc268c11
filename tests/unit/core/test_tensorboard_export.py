"""TensorBoard event files written without TensorFlow, read back with TensorBoard's reader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from core.exports.tensorboard import write_event_files

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


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    acc = event_accumulator.EventAccumulator(
        str(run), size_guidance={event_accumulator.TENSORS: 0}
    ).Reload()
    return {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
        for tag in acc.Tags()["tensors"]
    }


def test_one_run_per_trial_step_is_epoch(tmp_path: Path) -> None:
    result = write_event_files(tmp_path, _trials(), _metrics())
    assert result.new == ["conv64x2/seed0", "conv64x2/seed1"]
    assert result.empty == 1  # the queued trial has no epoch yet
    first = _scalars(tmp_path / "conv64x2" / "seed0")
    rows = [r for r in _metrics() if r["trial_id"] == "t1"]
    for key in ("loss", "accuracy", "val_accuracy"):
        want = [(r["epoch"], r[key]) for r in rows]
        got = first[key]
        assert [s for s, _ in got] == [s for s, _ in want]
        assert np.allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)  # float32
    assert [s for s, _ in first["val_loss"]] == [1, 3]  # the missing value is skipped
    assert [s for s, _ in first["epoch_seconds"]] == [1, 2, 3]
    assert first["test_accuracy"] == [(3, float(np.float32(0.9393)))]
    second = _scalars(tmp_path / "conv64x2" / "seed1")
    assert [s for s, _ in second["loss"]] == [1]
    assert "test_accuracy" not in second  # a failed trial has none

    again = write_event_files(tmp_path, _trials(), _metrics())
    assert again.new == []
    assert again.existing == ["conv64x2/seed0", "conv64x2/seed1"]
    assert "0 new TensorBoard run(s)" in again.summary(tmp_path)
    assert "2 already there" in again.summary(tmp_path)
    assert len(list((tmp_path / "conv64x2" / "seed0").iterdir())) == 1  # nothing twice


def test_writing_does_not_import_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from core.exports.tensorboard import write_event_files; "
        "write_event_files(Path(sys.argv[1]), "
        "[{'id': 't', 'variant': 'v', 'seed': 0, 'status': 'succeeded'}], "
        "[{'trial_id': 't', 'variant': 'v', 'seed': 0, 'epoch': 1, 'loss': 0.5}]); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; print('ok')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list((tmp_path / "v" / "seed0").glob("events.out.tfevents.*"))
