"""The client's comparison and report render as HTML in a notebook (``_repr_html_``)."""

from __future__ import annotations

from html.parser import HTMLParser

from archbench.notebook import Comparison, Report
from core.report import format as fmt
from core.report.build import TrialResult, build_report
from tests.support.trials import make_trial

VOID = {"br", "hr", "img", "meta", "input"}


def _trial(variant: str, seed: int, value: float, params: int) -> TrialResult:
    """A succeeded trial whose test accuracy is ``value``, with three rising epochs."""
    return make_trial(variant, seed, value, params=params, flops=10 * params)


class _Checker(HTMLParser):
    """Collects the text and checks every tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, tag
        assert self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _render(html: str) -> tuple[str, list[str]]:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.stack == [], checker.stack
    return " ".join(" ".join(checker.text).split()), checker.tags


def test_a_comparison_shows_its_status_and_progress() -> None:
    c = Comparison(
        {
            "id": "3f1c",
            "name": "conv128 vs conv64x2 <b>",
            "status": "running",
            "created_at": "2026-12-03T06:40:17Z",
            "started_at": "2026-12-03T06:40:19Z",
            "finished_at": None,
            "error": None,
            "progress": {
                "trials_total": 9,
                "trials_succeeded": 4,
                "trials_failed": 1,
                "trials_running": 2,
                "trials_queued": 2,
                "trials_cancelled": 0,
                "epochs_total": 1200,
                "epochs_done": 300,
            },
        }
    )
    assert c["status"] == "running"  # still the dict it was
    text, tags = _render(c._repr_html_())
    assert "conv128 vs conv64x2 <b>" in text  # escaped: shown, not a tag
    assert tags.count("b") == 1
    assert "running" in text
    assert "trials 5/9 ended (4 succeeded, 1 failed, 2 running, 2 queued)" in text
    assert "epochs 300/1,200 (25%)" in text
    assert "width:25.0%" in c._repr_html_()  # the bar
    assert "started 2026-12-03T06:40:19Z" in text

    failed = Comparison({**c, "status": "failed", "error": {"detail": "1 of 9 trials failed"}})
    text, _ = _render(failed._repr_html_())
    assert "failed" in text
    assert "1 of 9 trials failed" in text


def test_a_report_shows_its_verdict_and_tables() -> None:
    names = ["conv128", "conv64x2", "conv64x3"]
    trials = [
        _trial(name, seed, 0.90 + 0.02 * i + 0.003 * ((seed * (i + 2)) % 5), 866_570 - 1000 * i)
        for i, name in enumerate(names)
        for seed in range(5)
    ]
    body = build_report(
        comparison_id="c", primary_metric="test_accuracy", variant_order=names,
        trials=trials, final=True,
    )  # fmt: skip
    report = Report(body)
    text, tags = _render(report._repr_html_())
    assert report["verdict"]
    assert " ".join(str(report["verdict"]).split()) in text
    assert tags.count("table") == 2  # variants, pairs
    for v in report["variants"]:
        assert v["name"] in text
        assert fmt.level(v["mean"], "test_accuracy") in text  # 93.93%, as the PNG writes it
        assert fmt.level_interval(v["ci95"], "test_accuracy") in text
        assert fmt.count(v["params"]) in text  # 866,570
    assert fmt.count(866_570) in text
    table = text[text.index("mean ± std") :]
    ranked = list(report["ranking"])
    assert table.index(ranked[0]) < table.index(ranked[-1])  # in rank order
    for pair in report["pairwise"]:
        assert f"{pair['a']} vs {pair['b']}" in text
        named = {"a_better": f"{pair['a']} better", "b_better": f"{pair['b']} better"}
        assert named.get(pair["conclusion"], pair["conclusion"].replace("_", " ")) in text
        assert "a better" not in text
        assert "b better" not in text
        assert fmt.gap(pair["diff"], "test_accuracy", signed=True) in text
    for note in report["notes"]:
        assert " ".join(note.split()) in text
