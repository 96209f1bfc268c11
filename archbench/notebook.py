"""How the client's objects show themselves in Jupyter: ``_repr_html_``.

``Client.get``/``submit``/``wait``/``cancel`` return a ``Comparison`` and ``Client.report`` a
``Report``: plain dicts (everything that worked on the dicts still works), which a notebook
renders as HTML: a comparison's name, status and progress bar; a report's verdict, its
per-variant table and its tested pairs. Numbers are written as the service's reports write
them (``93.93%``, ``866,570``; the rules of core/report/format.py, which this package does
not import: it needs only httpx).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from archbench.status import ComparisonStatus

__all__ = ["Comparison", "Report"]

DASH = "\u2014"
_STATUS_COLOURS: dict[str, str] = {
    ComparisonStatus.QUEUED: "#6b7280",
    ComparisonStatus.RUNNING: "#2563eb",
    ComparisonStatus.SUCCEEDED: "#16a34a",
    ComparisonStatus.FAILED: "#dc2626",
    ComparisonStatus.CANCELLED: "#ca8a04",
}


def _level(x: Any, metric: str) -> str:
    if not isinstance(x, int | float):
        return DASH
    return f"{100 * x:,.2f}%" if metric != "test_loss" else f"{x:,.4f}"


def _gap(x: Any, metric: str, signed: bool = False) -> str:
    if not isinstance(x, int | float):
        return DASH
    sign = "+" if signed else ""
    return f"{100 * x:{sign},.2f}" if metric != "test_loss" else f"{x:{sign},.4f}"


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else DASH


def _p(p: Any) -> str:
    if not isinstance(p, int | float):
        return DASH
    return "&lt; 0.001" if p < 0.001 else f"{p:.3f}"


def _interval(ci: Any, cell: Any) -> str:
    if not isinstance(ci, Sequence) or len(ci) != 2:
        return DASH
    return f"{cell(ci[0])} to {cell(ci[1])}"


def _conclusion(pair: Mapping[str, Any]) -> str:
    """A pair's conclusion in words, naming the variant ("conv64x2 better", not "a better")."""
    conclusion = str(pair.get("conclusion") or "")
    side = {"a_better": pair.get("a"), "b_better": pair.get("b")}.get(conclusion)
    return f"{side} better" if side else conclusion.replace("_", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="archbench"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _badge(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "#6b7280")
    return (
        f'<span style="background:{colour};color:#fff;border-radius:4px;padding:1px 6px">'
        f"{escape(status)}</span>"
    )


class Comparison(dict[str, Any]):
    """A comparison resource (status, progress, spec) as the api answers it."""

    def _repr_html_(self) -> str:
        p: Mapping[str, Any] = self.get("progress") or {}
        total, done = int(p.get("epochs_total") or 0), int(p.get("epochs_done") or 0)
        pct = 100.0 * done / total if total else 0.0
        ended = sum(int(p.get(k) or 0) for k in ("trials_succeeded", "trials_failed"))
        ended += int(p.get("trials_cancelled") or 0)
        lines = [
            f"<div><b>{escape(str(self.get('name', '')))}</b> "
            f"<code>{escape(str(self.get('id', '')))}</code> "
            f"{_badge(str(self.get('status', '')))}</div>",
            f'<div style="background:#e5e7eb;width:320px;height:10px;border-radius:5px">'
            f'<div style="background:#2563eb;width:{pct:.1f}%;height:10px;border-radius:5px">'
            f"</div></div>",
            f"<div>trials {_count(ended)}/{_count(p.get('trials_total'))} ended "
            f"({_count(p.get('trials_succeeded'))} succeeded, {_count(p.get('trials_failed'))} "
            f"failed, {_count(p.get('trials_running'))} running, "
            f"{_count(p.get('trials_queued'))} queued) &middot; "
            f"epochs {_count(done)}/{_count(total)} ({pct:.0f}%)</div>",
        ]
        for key in ("created_at", "started_at", "finished_at"):
            if self.get(key):
                lines.append(f"<div>{key.split('_')[0]} {escape(str(self[key]))}</div>")
        error = self.get("error")
        if isinstance(error, Mapping) and error.get("detail"):
            lines.append(f'<div style="color:#dc2626">{escape(str(error["detail"]))}</div>')
        return '<div class="archbench-comparison">' + "".join(lines) + "</div>"


class Report(dict[str, Any]):
    """A comparison's report as the api answers it (``GET .../report``)."""

    def _repr_html_(self) -> str:
        m = str(self.get("primary_metric") or "test_accuracy")
        label = m.replace("_", " ")
        state = "final" if self.get("final") else "partial: trials still running"
        parts = [
            f"<p><b>Verdict</b> ({escape(state)}): {escape(str(self.get('verdict') or ''))}</p>"
        ]
        variants: list[Mapping[str, Any]] = list(self.get("variants") or [])
        order = list(self.get("ranking") or [])
        variants.sort(key=lambda v: order.index(v["name"]) if v.get("name") in order else 1e9)
        rows = [
            [
                DASH if v.get("rank") is None else escape(str(v["rank"])),
                escape(str(v.get("name", ""))),
                _count(v.get("n")),
                _level(v.get("mean"), m)
                + ("" if v.get("std") is None else f" &plusmn; {_gap(v.get('std'), m)}"),
                _interval(v.get("ci95"), lambda x: _level(x, m)),
                _count(v.get("params")),
                _count(v.get("flops")),
                _count(v.get("n_failed")),
            ]
            for v in variants
        ]
        headers = ["rank", "variant", "n", f"{label} mean \u00b1 std", "95% CI", "params"]
        parts.append(_table([*headers, "FLOPs", "failed"], rows))
        pairs: list[Mapping[str, Any]] = list(self.get("pairwise") or [])
        if pairs:
            pair_rows = [
                [
                    escape(f"{pr.get('a', '')} vs {pr.get('b', '')}"),
                    _gap(pr.get("diff"), m, signed=True),
                    _interval(pr.get("ci95"), lambda x: _gap(x, m, True)),
                    _p(pr.get("p_adjusted")),
                    escape(_conclusion(pr)),
                ]
                for pr in pairs
            ]
            parts.append(
                _table(["pair", "difference", "95% CI", "p (adjusted)", "conclusion"], pair_rows)
            )
        notes = [n if isinstance(n, str) else str(n.get("msg", n)) for n in self.get("notes") or []]
        if notes:
            parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
        return '<div class="archbench-report">' + "".join(parts) + "</div>"
