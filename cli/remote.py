"""The ``archbench`` commands that talk to a running service, built on ``archbench.client``.

submit (with ``--wait``: live progress, then the report and verdict), wait, ls, status, cancel,
report, export and datasets (ls, upload). ``--url``/``--api-key`` come from flags or
``ARCHBENCH_URL``/``ARCHBENCH_API_KEY``. Exit codes: 0 succeeded, 1 failed, 2 bad input, 3
cancelled or timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from archbench.client import Client
from archbench.errors import (
    ArchbenchError,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    WaitTimeout,
)
from cli.progress import follow
from core.status import ComparisonStatus

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8000"
STATUS_EXIT: dict[str, int] = {
    ComparisonStatus.SUCCEEDED: EXIT_OK,
    ComparisonStatus.FAILED: EXIT_FAILED,
    ComparisonStatus.CANCELLED: EXIT_CANCELLED,
}
BAD_INPUT = (InvalidInput, NotFound, Conflict, PayloadTooLarge, Unauthorized)


def _err(msg: str) -> None:
    print(f"archbench: {msg}", file=sys.stderr)


def _report_problem(exc: ArchbenchError) -> int:
    """Print an error answer with its located errors; the exit code it deserves."""
    if isinstance(exc, InvalidInput) and exc.errors:
        # The detail repeats the first located error: the list says it all, once each.
        _err(f"{exc.title} ({exc.status}): {len(exc.errors)} error(s)")
        for e in exc.errors:
            _err(f"  at {'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}")
    elif exc.status == 0:  # nothing answered: no HTTP status to show
        _err(exc.detail)
    else:
        _err(f"{exc.title} ({exc.status}): {exc.detail}")
    return EXIT_BAD_INPUT if isinstance(exc, BAD_INPUT) else EXIT_FAILED


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, api_key=args.api_key or None)


def _finish(client: Client, comparison_id: str, status: str) -> int:
    """Print the report table and the verdict; the exit code for ``status``."""
    try:
        print(client.report_text(comparison_id, "text"), flush=True)
    except ArchbenchError as exc:
        _err(f"no report: {exc.detail}")
    print(f"comparison {comparison_id} {status}", flush=True)
    return STATUS_EXIT.get(status, EXIT_FAILED)


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a comparison from a JSON file; with --wait, follow it live to the end."""
    with _client(args) as client:
        try:
            created = client.submit(args.file)
        except ValueError as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
        print(created["id"], flush=True)
        for w in created.get("warnings") or []:  # stderr: stdout stays the id for scripts
            _err(f"warning at {'.'.join(str(p) for p in w.get('loc', []))}: {w.get('msg')}")
        if not args.wait:
            return EXIT_OK
        return _follow(client, created, args.timeout)


def _follow(client: Client, comparison: dict[str, Any], timeout: float | None) -> int:
    try:
        status = follow(client, comparison, timeout)
    except WaitTimeout as exc:
        _err(f"timed out after {timeout:g} s: {exc.detail}")
        return EXIT_CANCELLED
    return _finish(client, comparison["id"], status)


def cmd_wait(args: argparse.Namespace) -> int:
    """Follow a comparison to its end, with progress; the exit code says how it ended."""
    with _client(args) as client:
        return _follow(client, client.get(args.id), args.timeout)


def cmd_ls(args: argparse.Namespace) -> int:
    """List comparisons, newest first."""
    with _client(args) as client:
        items = client.list_comparisons(status=args.status, name=args.name, limit=args.limit)
    if args.json:
        print(json.dumps(items, indent=2))
        return EXIT_OK
    print(f"{'id':36}  {'status':9}  {'trials':>9}  {'epochs':>11}  {'created':19}  name")
    for c in items:
        p = c["progress"]
        trials = f"{p['trials_succeeded'] + p['trials_failed']}/{p['trials_total']}"
        epochs = f"{p['epochs_done']}/{p['epochs_total']}"
        created = str(c["created_at"])[:19].replace("T", " ")
        print(
            f"{c['id']:36}  {c['status']:9}  {trials:>9}  {epochs:>11}  {created:19}  {c['name']}"
        )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """A comparison's status and progress."""
    with _client(args) as client:
        c = client.get(args.id)
    if args.json:
        print(json.dumps(c, indent=2))
        return EXIT_OK
    p = c["progress"]
    print(f"{c['id']}  {c['name']}")
    print(f"status   {c['status']}")
    print(
        f"trials   {p['trials_succeeded']} succeeded, {p['trials_failed']} failed, "
        f"{p['trials_running']} running of {p['trials_total']}"
    )
    print(f"epochs   {p['epochs_done']}/{p['epochs_total']}")
    for key in ("created_at", "started_at", "finished_at"):
        if c.get(key):
            print(f"{key.split('_')[0]:8} {c[key]}")
    if c.get("error"):
        print(f"error    {c['error'].get('detail')}")
    return EXIT_OK


CANCEL_WAIT_SECONDS = 10.0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a comparison (queued trials never start, running ones stop at a batch)."""
    with _client(args) as client:
        c = client.cancel(args.id)
        try:  # running trials stop at their next batch: print the state that follows
            c = client.wait(args.id, timeout=CANCEL_WAIT_SECONDS, poll=0.5)
        except WaitTimeout:
            print(
                f"{c['id']} cancelling: running trials stop at their next batch "
                f"(`archbench wait {c['id']}` follows it)"
            )
            return EXIT_OK
    print(f"{c['id']} {c['status']}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Print a comparison's report as text, JSON, CSV or Markdown."""
    with _client(args) as client:
        print(client.report_text(args.id, args.format))
    return EXIT_OK


def _bundle(client: Client, comparison_id: str) -> Any:
    """The comparison, its rows, its report and the report's files, as the exporters take
    them (``similarity.png`` only when the comparison has the similarity analysis)."""
    from core.exports.bundle import ComparisonBundle

    report = dict(client.report(comparison_id))
    files = {
        "report.json": (json.dumps(report, indent=2) + "\n").encode(),
        "report.md": client.report_text(comparison_id, "md").encode(),
        "report.png": client.report_png(comparison_id),
    }
    with contextlib.suppress(ArchbenchError):  # no stored probe activations: no figure
        files["similarity.png"] = client.similarity_png(comparison_id)
    return ComparisonBundle(
        comparison=client.get(comparison_id),
        trials=client.trials(comparison_id),
        metrics=client.metrics(comparison_id),
        report=report,
        files=files,
    )


def _write_out(out: Path, client: Client, bundle: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials.csv").write_text(client.csv(bundle.comparison["id"], "trials"))
    (out / "metrics.csv").write_text(client.csv(bundle.comparison["id"], "metrics"))
    for name in ("report.md", "report.png", "report.json"):
        (out / name).write_bytes(bundle.files[name])
    print(f"wrote trials.csv, metrics.csv, report.json, report.md, report.png to {out}")


def cmd_export(args: argparse.Namespace) -> int:
    """Write trials.csv, metrics.csv, report.json/.md/.png to --out; log the comparison (a
    parent run with the verdict and the report, a child run per trial) to --mlflow; write
    TensorBoard event files under --tensorboard DIR/<name>-<id>; write W&B offline runs (a
    group per comparison: a comparison run with the verdict, a run per trial) to --wandb DIR."""
    if not (args.out or args.mlflow or args.tensorboard or args.wandb):
        _err(
            "export needs --out DIR, --mlflow URI, --tensorboard DIR or --wandb DIR "
            "(any of them together)"
        )
        return EXIT_BAD_INPUT
    with _client(args) as client:
        bundle = _bundle(client, args.id)
        if args.out:
            _write_out(Path(args.out), client, bundle)
        if args.mlflow:
            from core.exports.mlflow import log_bundle

            try:
                result = log_bundle(args.mlflow, bundle, experiment=args.experiment)
            except ImportError as exc:
                _err(str(exc))
                return EXIT_FAILED
            print(result.summary(args.mlflow))
            if result.view:
                print(f"view: {result.view}")
        if args.tensorboard:
            from core.exports.tensorboard import write_event_files

            try:
                written = write_event_files(Path(args.tensorboard), bundle)
            except ImportError:
                _err("--tensorboard needs the tensorboard package: pip install tensorboard")
                return EXIT_FAILED
            except ValueError as exc:
                _err(str(exc))
                return EXIT_BAD_INPUT
            print(written.summary(Path(args.tensorboard)))
        if args.wandb:
            from core.exports.wandb import write_offline_runs

            try:
                offline = write_offline_runs(Path(args.wandb), bundle)
            except ImportError as exc:
                _err(str(exc))
                return EXIT_FAILED
            print(offline.summary())
    return EXIT_OK


def cmd_datasets_upload(args: argparse.Namespace) -> int:
    """Upload an .npz (x_train, y_train and optionally x_test, y_test) for this API key's
    tenant; a spec then names it by --name or by the upload:<id> printed."""
    with _client(args) as client:
        try:
            ds = client.upload_dataset(args.file, name=args.name)
        except ValueError as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
    usable = ds.get("label") or ds["name"]
    print(
        f"uploaded {args.file} as {ds['name']}"
        + (f" ({ds['label']})" if ds.get("label") else "")
        + f": {ds.get('samples', 0):,} samples of shape {tuple(ds.get('input_shape', []))}, "
        f"{ds.get('num_classes')} classes"
    )
    for member in ds.get("dropped") or []:
        print(f"  not stored: {member.get('member', member)}")
    print(f'a spec uses it as "dataset": {{"name": "{usable}"}}')
    return EXIT_OK


def cmd_datasets_ls(args: argparse.Namespace) -> int:
    """The built-in datasets, then this tenant's uploads."""
    with _client(args) as client:
        items = client.datasets()
    if args.json:
        print(json.dumps(items, indent=2))
        return EXIT_OK
    print(f"{'name':44}  {'label':20}  {'samples':>8}  {'classes':>7}  input")
    for d in items:
        print(
            f"{d['name']:44}  {d.get('label') or '':20}  {d.get('samples', 0):>8,}  "
            f"{d.get('num_classes', 0):>7}  {tuple(d.get('input_shape', []))}"
        )
    return EXIT_OK


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("ARCHBENCH_URL", DEFAULT_URL))
    p.add_argument("--api-key", default=os.environ.get("ARCHBENCH_API_KEY"))


def _register_datasets(sub: Any) -> None:
    """``archbench datasets upload FILE [--name NAME]`` and ``archbench datasets ls``."""
    datasets = sub.add_parser("datasets", help="list or upload datasets")
    verbs = datasets.add_subparsers(dest="verb", required=True)
    upload = verbs.add_parser(
        "upload", help="upload an .npz dataset", description=cmd_datasets_upload.__doc__
    )
    _connection_args(upload)
    upload.add_argument("file", help=".npz with x_train, y_train (x_test, y_test optional)")
    upload.add_argument(
        "--name", default=None, help="a name, unique among your uploads, for specs to use"
    )
    upload.set_defaults(func=_guarded(cmd_datasets_upload))
    ls = verbs.add_parser("ls", help="list datasets", description=cmd_datasets_ls.__doc__)
    _connection_args(ls)
    ls.add_argument("--json", action="store_true", help="print the JSON")
    ls.set_defaults(func=_guarded(cmd_datasets_ls))


def _guarded(func: Any) -> Any:
    """Turn client errors into a message and the right exit code, never a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except ArchbenchError as exc:
            return _report_problem(exc)

    run.__doc__ = func.__doc__
    return run


def register(sub: Any) -> None:
    """Add the client commands to the ``archbench`` parser."""
    commands = (
        ("submit", cmd_submit, "submit a comparison JSON file (--wait to follow it)"),
        ("wait", cmd_wait, "follow a comparison to its end"),
        ("ls", cmd_ls, "list comparisons"),
        ("status", cmd_status, "a comparison's status and progress"),
        ("cancel", cmd_cancel, "cancel a comparison"),
        ("report", cmd_report, "print a comparison's report"),
        ("export", cmd_export, "write a comparison's tables, report and plot; log to MLflow"),
    )
    for name, func, helptext in commands:
        p = sub.add_parser(name, help=helptext, description=func.__doc__)
        _connection_args(p)
        if name == "submit":
            p.add_argument("file")
            p.add_argument("--wait", action="store_true", help="follow it live to the end")
        elif name != "ls":
            p.add_argument("id")
        if name in ("submit", "wait"):
            p.add_argument("--timeout", type=float, default=None, help="seconds (exit code 3)")
        if name in ("ls", "status"):
            p.add_argument("--json", action="store_true", help="print the JSON")
        if name == "ls":
            p.add_argument("--status", choices=[s.value for s in ComparisonStatus])
            p.add_argument("--name", default=None, help="substring of the name")
            p.add_argument("--limit", type=int, default=50)
        if name == "report":
            p.add_argument("--format", choices=["text", "json", "csv", "md"], default="text")
        if name == "export":
            p.add_argument("--out", default=None, help="folder for the files")
            p.add_argument(
                "--mlflow", default=None, help="MLflow tracking URI, e.g. sqlite:///m.db"
            )
            p.add_argument("--experiment", default=None, help="MLflow experiment name")
            p.add_argument(
                "--tensorboard",
                default=None,
                help="folder for TensorBoard event files: one run per trial, step = epoch",
            )
            p.add_argument(
                "--wandb",
                default=None,
                help="folder for W&B offline runs (wandb extra); then: wandb sync DIR/wandb/*",
            )
        p.set_defaults(func=_guarded(func))
    _register_datasets(sub)
