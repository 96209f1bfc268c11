"""The dashboard writes a report's numbers as core/report/format.py does (the verdict, the
Markdown and text reports, the PNG): app.js's formatters, run with node on the same numbers,
give the same strings, ties and near-ties of binary doubles included."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.report import format as fmt

APP_JS = Path(__file__).resolve().parents[3] / "api" / "static" / "app.js"
_rng = np.random.default_rng(17)
NUMBERS = [
    0.9393, 0.93925, 0.125, 0.5, 0.0, 1.0, 0.00004, 0.987654321, 12.3456789, -0.0123,
    0.3 + 0.6, 2.0 / 3.0, 866570.0, 1234.56785, 0.015, 0.025, 0.00125, -0.0, -0.00001,
    0.999999, 9.99995, 0.000125, -1234567.891, 0.0005, 0.0015, 0.0125,
]  # fmt: skip
NUMBERS += [float(x) for x in _rng.normal(0, 1, 300) * 10.0 ** _rng.integers(-6, 7, 300)]
NUMBERS += [k / 2**n for k in range(1, 60, 3) for n in (3, 4, 5, 7, 9)]  # exact binary ties
COUNTS = [0, 7, 866_570, 1_234_567_890]


def _formatters() -> str:
    """The formatter block of app.js (it runs in a page, so the rest needs a DOM)."""
    text = APP_JS.read_text()
    match = re.search(r"// Report numbers.*?\n(?=const CONCLUSION_WORDS)", text, re.S)
    assert match, "app.js has no report-number formatters"
    return match.group(0)


def _node(script: str) -> object:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("node is needed to run the dashboard's formatters (.ci/run installs it)")
        pytest.skip("node is not installed: the dashboard's formatters cannot be run here")
    out = subprocess.run(
        [node, "-e", _formatters() + "\n" + script], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def test_app_js_writes_report_numbers_as_report_format() -> None:
    acc, loss = {"primary_metric": "test_accuracy"}, {"primary_metric": "test_loss"}
    got = _node(
        f"const xs = {json.dumps(NUMBERS)}; const ns = {json.dumps(COUNTS)};"
        f"const acc = {json.dumps(acc)}, loss = {json.dumps(loss)};"
        "const ps = xs.filter((x) => x >= 0 && x <= 1);"
        "console.log(JSON.stringify({"
        "level: xs.map((x) => fmtLevel(x, acc)),"
        "loss: xs.map((x) => fmtLevel(x, loss)),"
        "gap: xs.map((x) => fmtGap(x, acc)),"
        "signed: xs.map((x) => fmtGap(x, loss, true)),"
        "ci: fmtLevelCI([0.9381, 0.9503], acc),"
        "p: ps.map(fmtP),"
        "effect: xs.map(fmtEffect),"
        "counts: ns.map(fmtCount),"
        "none: [fmtLevel(null, acc), fmtCount(undefined), fmtP(null)],"
        "}));"
    )
    ps = [x for x in NUMBERS if 0 <= x <= 1]
    assert got == {
        "level": [fmt.level(x, "test_accuracy") for x in NUMBERS],
        "loss": [fmt.level(x, "test_loss") for x in NUMBERS],
        "gap": [fmt.gap(x, "test_accuracy") for x in NUMBERS],
        "signed": [fmt.gap(x, "test_loss", signed=True) for x in NUMBERS],
        "ci": fmt.level_interval([0.9381, 0.9503], "test_accuracy"),
        "p": [fmt.p_value(p) for p in ps],
        "effect": [fmt.effect(x) for x in NUMBERS],
        "counts": [fmt.count(n) for n in COUNTS],
        "none": [fmt.DASH, fmt.DASH, fmt.DASH],
    }
    assert got["level"][1] == "93.92%"  # 0.93925 is a hair below the tie in binary
    assert got["counts"][2] == "866,570"


def test_the_trials_table_uses_the_report_formatters() -> None:
    text = APP_JS.read_text()
    assert 'fmtLevel(t.test_accuracy, { primary_metric: "test_accuracy" })' in text
    assert "fmt(t.test_accuracy)" not in text
