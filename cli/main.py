"""``archbench``: run the service (up, api, worker, migrate) and talk to it (submit, report).

Exit codes a CI job can use: 0 succeeded, 1 failed, 2 bad input, 3 cancelled or timed out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8000"


def _err(msg: str) -> None:
    print(f"archbench: {msg}", file=sys.stderr)


def cmd_migrate(_: argparse.Namespace) -> int:
    """Bring the configured database to the newest schema."""
    from core.config import get_settings
    from core.migrate import current_revision, head_revision, upgrade

    url = get_settings().database_url
    upgrade(url)
    print(f"database at revision {current_revision(url)} (head {head_revision()})")
    return EXIT_OK


def cmd_api(args: argparse.Namespace) -> int:
    """Serve the HTTP api with uvicorn."""
    import uvicorn

    from core.config import get_settings
    from core.migrate import current_revision, head_revision

    settings = get_settings()
    current, head = current_revision(settings.database_url), head_revision()
    if current != head:
        _err(
            f"the database is at revision {current or 'none'} but this archbench needs {head}; "
            "run `archbench migrate` first"
        )
        return EXIT_FAILED
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=False,
    )
    return EXIT_OK


def _parse_gpus(spec: str | None) -> list[int] | None:
    from worker.devices import visible_gpu_count

    if spec is None:
        return None
    count = visible_gpu_count()
    if count == 0:
        raise SystemExit(
            f"archbench: --gpus {spec} was given but no GPU is visible on this machine"
        )
    if spec == "all":
        return list(range(count))
    try:
        gpus = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(
            f"archbench: --gpus takes 'all' or indices like 0,1; got {spec!r}"
        ) from None
    bad = [g for g in gpus if g < 0 or g >= count]
    if bad or not gpus:
        raise SystemExit(f"archbench: --gpus {spec}: this machine has GPUs 0..{count - 1}")
    return gpus


def _worker_argv(concurrency: int, name: str) -> list[str]:
    return [
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--queues=archbench",
        f"--hostname={name}@%h",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
    ]


def cmd_worker(args: argparse.Namespace) -> int:
    """Start training worker(s): one process per GPU, pinned, or one CPU/any-device worker."""
    gpus = _parse_gpus(args.gpus)
    if not gpus:
        from worker.celery_app import app

        app.worker_main(_worker_argv(args.concurrency, args.name or "archbench"))
        return EXIT_OK
    from worker.devices import pin_env

    procs = []
    for g in gpus:
        env = {**os.environ, **pin_env(g)}
        argv = [
            sys.executable,
            "-m",
            "cli.main",
            "worker",
            "--concurrency",
            str(args.concurrency),
            "--name",
            f"archbench-gpu{g}",
        ]
        procs.append(subprocess.Popen(argv, env=env))
    return _supervise(procs)


def _supervise(procs: list[subprocess.Popen[bytes]]) -> int:
    """Wait for children; on Ctrl-C or SIGTERM stop them all cleanly."""
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = EXIT_OK
    while not stopping:
        for p in procs:
            if p.poll() is not None:
                _err(f"process {p.args!r} exited with {p.returncode}; stopping the others")
                code = p.returncode or EXIT_FAILED
                stopping = True
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    return code


def cmd_up(args: argparse.Namespace) -> int:
    """The embedded service: SQLite, a serverless broker, the api and worker(s), one command."""
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ARCHBENCH_DATA_DIR"] = str(data_dir)
    from core.config import get_settings
    from core.migrate import upgrade

    get_settings.cache_clear()
    settings = get_settings()
    upgrade(settings.database_url)
    env = {**os.environ, "ARCHBENCH_DATA_DIR": str(data_dir)}
    py = [sys.executable, "-m", "cli.main"]
    procs = [subprocess.Popen([*py, "api", "--host", args.host, "--port", str(args.port)], env=env)]
    for i in range(args.workers):
        worker_env = dict(env)
        if args.cpu:
            worker_env["CUDA_VISIBLE_DEVICES"] = ""
        procs.append(
            subprocess.Popen(
                [*py, "worker", "--concurrency", "1", "--name", f"archbench{i}"], env=worker_env
            )
        )
    print(
        f"archbench is up at http://{args.host}:{args.port} (data in {data_dir}, "
        f"{args.workers} worker(s)); Ctrl-C stops it",
        flush=True,
    )
    return _supervise(procs)


def _client(args: argparse.Namespace) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    return httpx.Client(base_url=args.url, headers=headers, timeout=30)


def _print_problem(resp: Any) -> None:
    try:
        body = resp.json()
    except ValueError:
        _err(f"HTTP {resp.status_code}: {resp.text[:500]}")
        return
    _err(f"{body.get('title', 'error')} ({resp.status_code}): {body.get('detail', '')}")
    for e in body.get("errors", []) or []:
        _err(f"  at {'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}")


def _wait(client: Any, comparison_id: str, timeout: float | None) -> int:
    start = time.monotonic()
    last = ""
    while True:
        resp = client.get(f"/v1/comparisons/{comparison_id}")
        if resp.status_code != 200:
            _print_problem(resp)
            return EXIT_FAILED
        c = resp.json()
        p = c["progress"]
        line = (
            f"{c['status']}: trials {p['trials_succeeded']}+{p['trials_failed']} failed"
            f"/{p['trials_total']}, epochs {p['epochs_done']}/{p['epochs_total']}"
        )
        if line != last:
            print(line, flush=True)
            last = line
        if c["status"] in ("succeeded", "failed", "cancelled"):
            return {"succeeded": EXIT_OK, "failed": EXIT_FAILED}.get(c["status"], EXIT_CANCELLED)
        if timeout is not None and time.monotonic() - start > timeout:
            _err(f"timed out after {timeout:.0f} s; comparison {comparison_id} is {c['status']}")
            return EXIT_CANCELLED
        time.sleep(1.0)


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a comparison from a JSON file; with --wait, follow it to the end."""
    try:
        body = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as exc:
        _err(f"cannot read {args.file}: {exc}")
        return EXIT_BAD_INPUT
    with _client(args) as client:
        resp = client.post("/v1/comparisons", json=body)
        if resp.status_code != 202:
            _print_problem(resp)
            return EXIT_BAD_INPUT if resp.status_code in (400, 413, 422) else EXIT_FAILED
        c = resp.json()
        print(c["id"], flush=True)
        if not args.wait:
            return EXIT_OK
        code = _wait(client, c["id"], args.timeout)
        report = client.get(f"/v1/comparisons/{c['id']}/report")
        if report.status_code == 200:
            print(report.json().get("verdict", ""))
        return code


def cmd_wait(args: argparse.Namespace) -> int:
    """Wait for a comparison to end."""
    with _client(args) as client:
        return _wait(client, args.id, args.timeout)


def cmd_report(args: argparse.Namespace) -> int:
    """Print a comparison's report."""
    with _client(args) as client:
        fmt = {"text": "text", "json": "json", "csv": "csv", "md": "md"}[args.format]
        resp = client.get(f"/v1/comparisons/{args.id}/report", params={"format": fmt})
        if resp.status_code != 200:
            _print_problem(resp)
            return EXIT_FAILED
        print(resp.text)
        return EXIT_OK


# Modules that add subcommands: each has ``register(subparsers) -> None``.
EXTENSIONS: list[str] = []


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(prog="archbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the embedded service (api + worker, SQLite)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data-dir", default=os.environ.get("ARCHBENCH_DATA_DIR", ".archbench"))
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--cpu", action="store_true", help="hide GPUs from the workers")
    up.set_defaults(func=cmd_up)

    api = sub.add_parser("api", help="serve the HTTP api")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="start a training worker")
    worker.add_argument("--gpus", default=None, help="'all' or indices like 0,1: one process each")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--name", default=None)
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="migrate the database").set_defaults(func=cmd_migrate)

    for name, func, helptext in (
        ("submit", cmd_submit, "submit a comparison JSON file"),
        ("wait", cmd_wait, "wait for a comparison to end"),
        ("report", cmd_report, "print a comparison's report"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--url", default=os.environ.get("ARCHBENCH_URL", DEFAULT_URL))
        p.add_argument("--api-key", default=os.environ.get("ARCHBENCH_API_KEY"))
        p.add_argument("--timeout", type=float, default=None)
        if name == "submit":
            p.add_argument("file")
            p.add_argument("--wait", action="store_true")
        else:
            p.add_argument("id")
        if name == "report":
            p.add_argument("--format", choices=["text", "json", "csv", "md"], default="text")
        p.set_defaults(func=func)
    for module in EXTENSIONS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``archbench`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
