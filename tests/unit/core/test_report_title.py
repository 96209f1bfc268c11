"""The Markdown report's title (the comparison's name) carries no terminal control codes:
ESC sequences and BEL are stripped as they are from stored errors."""

from __future__ import annotations

from core.report.build import build_report
from core.report.render import render_markdown
from tests.support.trials import make_trial


def test_control_characters_are_stripped_from_the_title() -> None:
    names = ["a", "b"]
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
    title = (
        "\x1b[31mred\x1b[0m run\x07 \x1b]8;;http://evil.example\x07link\x1b]8;;\x07 \x9b1mend\x00"
    )
    text = render_markdown(report, title=title)
    first = text.splitlines()[0]
    assert first == "# red run link end"
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text.replace("\n", ""))
