"""The report's Markdown, terminal, CSV and PNG forms."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.report.build import REPORT_ROW_COLUMNS, TrialResult, build_report, report_rows
from core.report.plot import render_png
from core.report.render import md_escape, render_markdown, render_text, rows_to_csv

Factory = Callable[..., TrialResult]
NAMES = ["conv128", "conv64x2", "conv64x3"]


@pytest.fixture
def trials(trial: Factory) -> list[TrialResult]:
    """Three variants, three seeds each, with one failed and one early-stopped trial."""
    values = {"conv128": [0.941, 0.945, 0.938], "conv64x2": [0.975, 0.978, 0.973]}
    values["conv64x3"] = [0.977, 0.972, 0.979]
    params = {"conv128": 866_570, "conv64x2": 129_738, "conv64x3": 150_000}
    out = [
        trial(name, seed, v, params=params[name], stop_reason="early_stopping" if seed else None)
        for name in NAMES
        for seed, v in enumerate(values[name])
    ]
    return [*out, trial("conv128", 3, None, status="failed")]


@pytest.fixture
def report(trials: list[TrialResult]) -> dict[str, Any]:
    """The report of those trials."""
    return build_report(
        comparison_id="c-1",
        primary_metric="test_accuracy",
        variant_order=NAMES,
        trials=trials,
        final=True,
    )


def _empty_report(final: bool = False) -> dict[str, Any]:
    return build_report(
        comparison_id="c-0",
        primary_metric="test_loss",
        variant_order=["a", "b"],
        trials=[],
        final=final,
    )


def test_markdown_has_title_verdict_tables_and_notes(report: dict[str, Any]) -> None:
    text = render_markdown(report, title="conv128 vs two conv64")
    assert text.startswith("# conv128 vs two conv64\n")
    assert f"**Verdict:** {md_escape(report['verdict'])}" in text
    assert all(f"| {name} |" in text for name in NAMES)
    assert "## Pairwise comparisons" in text
    assert "| conv128 | conv64x2 |" in text
    assert "866,570" in text
    assert all(f"- {md_escape(note)}" in text for note in report["notes"])


def test_markdown_escapes_pipes_in_names(trial: Factory) -> None:
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=["a|b"],
        trials=[trial("a|b", 0, 0.9)],
        final=True,
    )
    assert "| a\\|b |" in render_markdown(report, title="t")


def test_text_table_is_aligned_and_ends_with_the_verdict(report: dict[str, Any]) -> None:
    text = render_text(report)
    assert all(name in text for name in NAMES)
    lines = text.splitlines()
    header, rule = lines[0], lines[1]
    assert set(rule.replace(" ", "")) == {"-"}
    assert len(rule) >= len(header.rstrip()) - 2
    assert report["verdict"] in lines
    assert lines.index(report["verdict"]) > 3


def test_empty_report_renders(trial: Factory) -> None:
    report = _empty_report()
    assert "No trial has finished yet." in render_text(report)
    markdown = render_markdown(report, title="empty")
    assert "| — | a |" in markdown


def test_csv_has_one_header_and_empty_cells_for_none(report: dict[str, Any]) -> None:
    text = rows_to_csv(report_rows(report), REPORT_ROW_COLUMNS)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(REPORT_ROW_COLUMNS)
    assert [r[0] for r in rows[1:]] == NAMES
    assert rows[1][REPORT_ROW_COLUMNS.index("params")] == "866570"
    empty = rows_to_csv(report_rows(_empty_report()), REPORT_ROW_COLUMNS)
    first = next(iter(csv.DictReader(io.StringIO(empty))))
    assert (first["name"], first["mean"], first["ci95_lo"], first["rank"]) == ("a", "", "", "")


def test_csv_quotes_awkward_values() -> None:
    text = rows_to_csv([{"name": 'a,"b"', "ok": True}, {"name": None}], ["name", "ok"])
    assert text == 'name,ok\r\n"a,""b""",true\r\n,\r\n'


def _image(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        # 1200x600, and 18 px taller a line for a verdict of more than four lines
        width, height = image.size
        assert width == 1200
        assert height >= 600
        assert (height - 600) % 18 == 0
        return np.asarray(image.convert("L"), dtype=float)


def test_png_is_the_right_size_and_not_blank(
    report: dict[str, Any], trials: list[TrialResult]
) -> None:
    pixels = _image(render_png(report, trials, title="conv128 vs two conv64"))
    assert pixels.std() > 10.0
    assert (pixels < 128).mean() > 0.005  # lines, dots and text, not a white page


def test_png_with_no_finished_trials() -> None:
    pixels = _image(render_png(_empty_report(), [], title="nothing yet"))
    assert pixels.std() > 5.0


def test_png_with_one_seed_and_no_curves(trial: Factory) -> None:
    trials = [trial("a", 0, 0.9, val_curve=[]), trial("b", 0, 0.8, val_curve=[])]
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=["a", "b"],
        trials=trials,
        final=False,
    )
    _image(render_png(report, trials, title="one seed"))


def test_png_renders_the_same_from_several_threads(
    report: dict[str, Any], trials: list[TrialResult]
) -> None:
    expected = render_png(report, trials, title="threads")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: render_png(report, trials, title="threads"), range(8)))
    assert all(png == expected for png in results)


def test_long_answers_make_the_png_taller_instead_of_being_cut_off(
    report: dict[str, Any], trials: list[TrialResult]
) -> None:
    from core.report.plot_paired import caption_lines

    answers = dict(report["answers"], score=" ".join([str(report["answers"]["score"])] * 6))
    long = dict(report, answers=answers)
    lines = len(caption_lines(long))
    assert lines > 4
    png = render_png(long, trials, title="long answers")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (1200, 600 + 18 * (lines - 4))
