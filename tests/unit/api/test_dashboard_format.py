"""The dashboard writes numbers and colours as the report does: format.js run with node on
the same numbers as core/report_format.py; the variant colours of app.js and report.png come
from one table (core/palette.py)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import report_format as fmt
from core.palette import PALETTE, palette_js, variant_colours
from core.report import EpochPoint, TrialResult

STATIC = Path(__file__).resolve().parents[3] / "api" / "static"
NUMBERS = [
    0.9393, 0.93925, 0.125, 0.5, 0.0, 1.0, 0.00004, 0.987654321, 12.3456789, -0.0123,
    0.3 + 0.6, 2.0 / 3.0, 866570.0, 1234.56785, 0.015, 0.025, 0.00125, -0.0, -0.00001,
    0.999999, 9.99995, 0.000125, -1234567.891,
]  # fmt: skip
# And many more: random values across magnitudes, and exact binary ties (k / 2**n).
_rng = np.random.default_rng(17)
NUMBERS += [float(x) for x in _rng.normal(0, 1, 200) * 10.0 ** _rng.integers(-6, 7, 200)]
NUMBERS += [k / 2**n for k in range(1, 40, 3) for n in (3, 5, 7)]
COUNTS = [0, 7, 866_570, 1_234_567_890]


def _trial(variant: str, seed: int, value: float, params: int) -> TrialResult:
    """A succeeded trial whose test accuracy is ``value``, with three rising epochs."""
    curve = tuple(
        EpochPoint(epoch=i + 1, val_accuracy=v, val_loss=1 - v, accuracy=v, loss=1 - v, seconds=2.0)
        for i, v in enumerate((value - 0.1, value - 0.02, value))
    )
    return TrialResult(
        variant=variant,
        seed=seed,
        status="succeeded",
        params=params,
        flops=10 * params,
        test_accuracy=value,
        test_loss=1 - value,
        best_val_accuracy=value,
        train_seconds=6.0,
        epochs_done=3,
        epochs_planned=3,
        stop_reason=None,
        inference_ms_per_sample=0.05,
        curve=curve,
    )


def _node(script: str) -> object:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed: the dashboard's formatter cannot be run here")
    code = (STATIC / "format.js").read_text() + "\n" + script
    out = subprocess.run([node, "-e", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_format_js_writes_numbers_as_report_format() -> None:
    got = _node(
        f"const xs = {json.dumps(NUMBERS)}; const ns = {json.dumps(COUNTS)};"
        "console.log(JSON.stringify({"
        "acc: xs.map((x) => level(x, 'test_accuracy')),"
        "loss: xs.map((x) => level(x, 'test_loss')),"
        "gap: xs.map((x) => gap(x, 'test_accuracy')),"
        "signed: xs.map((x) => gap(x, 'test_loss', true)),"
        "counts: ns.map(count),"
        "ci: levelInterval([0.9381, 0.9503], 'test_accuracy'),"
        "none: [level(null, 'test_accuracy'), count(undefined), levelInterval(null, 'x')],"
        "}));"
    )
    assert got == {
        "acc": [fmt.level(x, "test_accuracy") for x in NUMBERS],
        "loss": [fmt.level(x, "test_loss") for x in NUMBERS],
        "gap": [fmt.gap(x, "test_accuracy") for x in NUMBERS],
        "signed": [fmt.gap(x, "test_loss", signed=True) for x in NUMBERS],
        "counts": [fmt.count(n) for n in COUNTS],
        "ci": fmt.level_interval([0.9381, 0.9503], "test_accuracy"),
        "none": [fmt.DASH, fmt.DASH, fmt.DASH],
    }
    assert got["acc"][0] == "93.93%"  # not 0.9393
    assert got["counts"][2] == "866,570"  # not 866570


def test_the_dashboard_takes_its_colours_from_the_palette() -> None:
    app = (STATIC / "app.js").read_text()
    assert not any(colour in app for colour in PALETTE)  # no copy of the table
    assert "PALETTE[i % PALETTE.length]" in app
    index = (STATIC / "index.html").read_text()
    assert index.index("/static/palette.js") < index.index("/static/app.js")
    assert index.index("/static/format.js") < index.index("/static/app.js")
    assert json.dumps(list(PALETTE)) in palette_js()


def test_report_png_draws_each_variant_in_its_palette_colour() -> None:
    from core.report import build_report
    from core.report_plot import render_png

    names = ["conv128", "conv64x2", "conv64x3"]
    trials = [
        _trial(name, seed, 0.9 + 0.01 * i + 0.001 * seed, 100_000)
        for i, name in enumerate(names)
        for seed in range(3)
    ]
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=names,
        trials=trials,
        final=True,
    )
    png = render_png(report, trials, title="colours")
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    present = {tuple(p) for p in pixels}
    for name, colour in variant_colours(names).items():
        rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in present, (name, colour)


def test_the_page_can_load_the_palette_and_the_formatter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    with TestClient(create_app(check_migrations=False)) as client:
        palette = client.get("/static/palette.js")
        assert palette.status_code == 200
        assert palette.headers["content-type"].startswith("text/javascript")
        assert palette.text == palette_js()
        formatter = client.get("/static/format.js")
        assert formatter.status_code == 200
        assert "function level(" in formatter.text
