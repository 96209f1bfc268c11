"""Names are text: the PNG never parses them as mathtext, the Markdown never as HTML/Markdown."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from core.report.build import TrialResult, build_report
from core.report.plot import render_png
from core.report.render import md_escape, render_markdown
from tests.support.trials import make_trial

NESTED = "$" + "x^{" * 40 + "x" + "}" * 40 + "$"
EVIL = [r"$\frac{a$", NESTED, "<img src=x onerror=alert(1)>", "a|b*c_[d](e)#"]


def _report(names: list[str]) -> tuple[dict[str, Any], list[TrialResult]]:
    trials = [
        make_trial(n, s, 0.9 + 0.01 * i + 0.001 * s) for i, n in enumerate(names) for s in range(3)
    ]
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=names,
        trials=trials,
        final=True,
    )
    return report, trials


@pytest.mark.parametrize("title", [r"$\frac{a$", NESTED, "plain"])
def test_png_draws_math_looking_names_and_titles_as_plain_text(title: str) -> None:
    report, trials = _report(EVIL)
    png = render_png(report, trials, title=title)
    with Image.open(io.BytesIO(png)) as image:
        assert image.size[0] == 1200  # taller when the verdict needs more than four lines


def test_markdown_escapes_raw_names_in_headings_tables_verdict_and_notes() -> None:
    report, _ = _report(EVIL)
    text = render_markdown(report, title="<img src=x onerror=alert(1)> # title")
    assert "<img" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert text.startswith("# &lt;img src=x onerror=alert(1)&gt; \\# title\n")
    assert "| a\\|b\\*c\\_\\[d\\](e)\\# |" in text
    assert md_escape("<b>*x*</b>") == "&lt;b&gt;\\*x\\*&lt;/b&gt;"
