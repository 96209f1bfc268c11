"""Live progress of a comparison from its server-sent events: a rich bar on a terminal,
plain lines otherwise (CI logs, pipes, tests)."""

from __future__ import annotations

import sys
from typing import Any

from archbench.client import Client
from core.status import TrialStatus

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
        "trials_succeeded": int(d.get("trials_succeeded", 0)),
        "trials_failed": int(d.get("trials_failed", 0)),
        "trials_running": int(d.get("trials_running", 0)),
        "trials_total": int(d.get("trials_total", p["trials_total"])),
        "epochs_done": int(d.get("epochs_done", 0)),
        "epochs_total": int(d.get("epochs_total", p["epochs_total"])),
    }


def _progress_line(p: dict[str, Any]) -> str:
    done = p["trials_succeeded"] + p["trials_failed"]
    return (
        f"{p['status']}: trials {done}/{p['trials_total']} done ({p['trials_failed']} failed, "
        f"{p['trials_running']} running), epochs {p['epochs_done']}/{p['epochs_total']}"
    )


def _plain(client: Client, comparison: dict[str, Any], timeout: float | None) -> str:
    epochs_planned = comparison["spec"]["training"]["epochs"]
    last = ""
    for event in client.events(comparison["id"], timeout=timeout):
        d = event.data
        if event.event == "progress":
            line = _progress_line(_counts(d, comparison))
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
            # The stream's last progress event (sent on a status change too) already said
            # how it ended.
            return str(d["status"])
    return str(client.get(comparison["id"])["status"])


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
        for event in client.events(comparison["id"], timeout=timeout):
            d = event.data
            if event.event == "progress":
                c = _counts(d, comparison)
                done = c["trials_succeeded"] + c["trials_failed"]
                bar.update(
                    task,
                    completed=c["epochs_done"],
                    trials=f"{done}/{c['trials_total']} trials ({c['status']})",
                )
            elif event.event == "epoch":
                bar.update(
                    task, latest=f"{d['variant']} s{d['seed']} e{d['epoch']} {metrics_text(d)}"
                )
            elif event.event == "trial_finished" and d["status"] == TrialStatus.FAILED:
                console.print(f"[red]{d['variant']} seed {d['seed']} failed[/red]")
            elif event.event == "comparison_finished":
                # The last progress event (sent on a status change too) drew the final frame.
                status = str(d["status"])
                break
        else:
            status = str(client.get(comparison["id"])["status"])
    return status


def follow(client: Client, comparison: dict[str, Any], timeout: float | None) -> str:
    """Show progress until the comparison ends; returns its final status."""
    if sys.stdout.isatty():
        return _rich(client, comparison, timeout)
    return _plain(client, comparison, timeout)
