"""Live progress of a comparison from its server-sent events: a rich bar on a terminal,
plain lines otherwise (CI logs, pipes, tests)."""

from __future__ import annotations

import sys
from typing import Any

from archbench.client import Client

__all__ = ["follow", "metrics_text"]

SHOWN = ("loss", "accuracy", "val_loss", "val_accuracy")


def metrics_text(row: dict[str, Any]) -> str:
    """The latest epoch's metrics, short: ``loss=0.512 val_accuracy=0.840``."""
    return " ".join(f"{k}={row[k]:.3f}" for k in SHOWN if isinstance(row.get(k), int | float))


def _counts(d: dict[str, Any], comparison: dict[str, Any]) -> dict[str, Any]:
    """A ``progress`` event (the comparison's ``progress`` fields) as the line's counts."""
    p = comparison["progress"]
    return {
        "status": d.get("status", comparison["status"]),
        "succeeded": int(d.get("trials_succeeded", 0)),
        "failed": int(d.get("trials_failed", 0)),
        "running": int(d.get("trials_running", 0)),
        "trials_total": int(d.get("trials_total", p["trials_total"])),
        "epochs_done": int(d.get("epochs_done", 0)),
        "epochs_total": int(d.get("epochs_total", p["epochs_total"])),
    }


def _progress_line(p: dict[str, Any]) -> str:
    done = p["succeeded"] + p["failed"]
    return (
        f"{p['status']}: trials {done}/{p['trials_total']} done ({p['failed']} failed, "
        f"{p['running']} running), epochs {p['epochs_done']}/{p['epochs_total']}"
    )


def _plain(client: Client, comparison: dict[str, Any], timeout: float | None) -> str:
    epochs_planned = comparison["spec"]["training"]["epochs"]
    last = ""
    counts = _counts(comparison["progress"], comparison)
    for event in client.events(comparison["id"], timeout=timeout):
        d = event.data
        if event.event == "progress":
            counts = _counts(d, comparison)
            line = _progress_line(counts)
            if line != last:
                print(line, flush=True)
                last = line
        elif event.event == "epoch":
            print(
                f"  {d['variant']} seed {d['seed']} epoch {d['epoch']}/{epochs_planned}: "
                f"{metrics_text(d)}",
                flush=True,
            )
        elif event.event == "trial_finished":
            acc = d.get("test_accuracy")
            tail = f": test_accuracy={acc:.4f}" if isinstance(acc, int | float) else ""
            print(f"  {d['variant']} seed {d['seed']} {d['status']}{tail}", flush=True)
        elif event.event == "comparison_finished":
            # The last progress event can predate the comparison's own end by a poll: the
            # last line says how it ended, with the final counts.
            line = _progress_line(_final_counts(client, comparison, counts, str(d["status"])))
            if line != last:
                print(line, flush=True)
            return str(d["status"])
    return str(client.get(comparison["id"])["status"])


def _final_counts(
    client: Client, comparison: dict[str, Any], last: dict[str, Any], status: str
) -> dict[str, Any]:
    """The ended comparison's counts; the last progress seen, with its final status, when
    the service cannot be asked (the comparison has ended either way)."""
    try:
        ended = client.get(comparison["id"])
    except Exception:
        return {**last, "status": status}
    return _counts({**ended["progress"], "status": ended["status"]}, comparison)


def _rich(client: Client, comparison: dict[str, Any], timeout: float | None) -> str:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    p = comparison["progress"]
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs · {task.fields[trials]} · {task.fields[latest]}"),
        TimeElapsedColumn(),
    )
    status = comparison["status"]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(
            comparison["name"][:40],
            total=p["epochs_total"],
            completed=p["epochs_done"],
            trials=f"0/{p['trials_total']} trials",
            latest="",
        )

        def show(c: dict[str, Any], status: str) -> None:
            bar.update(
                task,
                completed=c["epochs_done"],
                trials=f"{c['succeeded'] + c['failed']}/{c['trials_total']} trials ({status})",
            )

        counts = _counts(p, comparison)
        for event in client.events(comparison["id"], timeout=timeout):
            d = event.data
            if event.event == "progress":
                counts = _counts(d, comparison)
                show(counts, counts["status"])
            elif event.event == "epoch":
                bar.update(
                    task, latest=f"{d['variant']} s{d['seed']} e{d['epoch']} {metrics_text(d)}"
                )
            elif event.event == "trial_finished" and d["status"] == "failed":
                console.print(f"[red]{d['variant']} seed {d['seed']} failed[/red]")
            elif event.event == "comparison_finished":
                # The last progress event can predate the comparison's own end by a poll:
                # the bar's final frame shows how it ended, with the final counts.
                status = str(d["status"])
                show(_final_counts(client, comparison, counts, status), status)
                break
        else:
            status = str(client.get(comparison["id"])["status"])
    return status


def follow(client: Client, comparison: dict[str, Any], timeout: float | None) -> str:
    """Show progress until the comparison ends; returns its final status."""
    if sys.stdout.isatty():
        return _rich(client, comparison, timeout)
    return _plain(client, comparison, timeout)
