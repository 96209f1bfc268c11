"""The trial-memory factors (models/memory.py) fit the peaks measured in real worker
processes (bench/memory_calibration.json, written by bench/memory_calibration.py): every
model's estimate is within 1.5x of its measured peak. A change to the factors or to what the
submit counts that breaks the fit fails here; new measurements replace the file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


def test_the_estimates_are_within_1_5x_of_the_measured_peaks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = importlib.util.spec_from_file_location(
        "memory_calibration", BENCH / "memory_calibration.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = json.loads((BENCH / "memory_calibration.json").read_text())
    assert len(rows) >= 10
    assert module.main(["--rows", str(BENCH / "memory_calibration.json")]) == 0
    out = capsys.readouterr().out
    assert "worst ratio" in out
    for row in rows:
        assert row["model"] in out
