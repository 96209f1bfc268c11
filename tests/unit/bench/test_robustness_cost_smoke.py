"""The robustness cost benchmark runs at a tiny size and prints its ratio (not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.mark.slow  # trains the article's three models for one epoch in a subprocess
def test_robustness_cost_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "robustness_cost.py", "--seeds", "1", "--epochs", "1", "--samples", "200"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "with/without robustness" in proc.stdout
    assert proc.stdout.count(" copies of ") == 3  # one line per article model
