"""The variant colours of the dashboard (app.js) and of report.png come from one table
(core/report/palette.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.report.build import TrialResult
from core.report.palette import PALETTE, palette_js, variant_colours
from tests.support.trials import make_trial

STATIC = Path(__file__).resolve().parents[3] / "api" / "static"


def _trial(variant: str, seed: int, value: float, params: int) -> TrialResult:
    """A succeeded trial whose test accuracy is ``value``, with three rising epochs."""
    return make_trial(variant, seed, value, params=params, flops=10 * params)


def test_the_dashboard_takes_its_colours_from_the_palette() -> None:
    app = (STATIC / "app.js").read_text()
    assert not any(colour in app for colour in PALETTE)  # no copy of the table
    assert "PALETTE[i % PALETTE.length]" in app
    index = (STATIC / "index.html").read_text()
    assert index.index("/static/palette.js") < index.index("/static/app.js")
    assert json.dumps(list(PALETTE)) in palette_js()


def test_report_png_draws_each_variant_in_its_palette_colour() -> None:
    from core.report.build import build_report
    from core.report.plot import render_png

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


def test_the_page_can_load_the_palette(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    with TestClient(create_app(check_migrations=False)) as client:
        palette = client.get("/static/palette.js")
        assert palette.status_code == 200
        assert palette.headers["content-type"].startswith("text/javascript")
        assert palette.text == palette_js()
