"""``archbench``: run the service (up, api, worker, migrate) and talk to it (submit, report).

Exit codes a CI job can use: 0 succeeded, 1 failed, 2 bad input, 3 cancelled or timed out.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cli import remote

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8000"
_SELF = [sys.executable, "-m", "cli.main"]  # how a parent starts archbench children


def _err(msg: str) -> None:
    print(f"archbench: {msg}", file=sys.stderr)


def _database_failure(url: str, exc: Exception) -> str:
    """One line for a database that cannot be used: where it is, what failed, what to do."""
    from sqlalchemy import make_url

    from core.config import normalise_database_url

    try:
        u = make_url(normalise_database_url(url))
        if u.get_backend_name() == "sqlite":
            where = f"the SQLite file {u.database or ':memory:'}"
        else:
            where = f"{u.host or 'localhost'}:{u.port or 5432}/{u.database or ''}"
    except Exception:
        where = "ARCHBENCH_DATABASE_URL (unparsable)"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    what = reason[0].strip() if reason else type(exc).__name__
    return (
        f"cannot use the database at {where}: {what}. Check that it is running and reachable "
        "from here, and that ARCHBENCH_DATABASE_URL names the right host, port, user and database"
    )


def _database_ready(url: str, *, migrate: bool) -> str | None:
    """Migrate (``migrate``) or check the database; the one-line problem, or None when fine.

    A database ahead of this code is never "migrated": only newer code can serve it.
    """
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from core.store.migrate import schema_problem, schema_state, upgrade

    try:
        if migrate:
            if schema_state(url)[0] == "ahead":
                return schema_problem(url)
            upgrade(url)
        return schema_problem(url)
    except (DBAPIError, ArgumentError) as exc:  # ArgumentError: a URL no dialect understands
        return _database_failure(url, exc)


def cmd_migrate(_: argparse.Namespace) -> int:
    """Bring the configured database to the newest schema."""
    from core.config import get_settings

    url = get_settings().database_url
    problem = _database_ready(url, migrate=True)
    if problem:
        _err(problem)
        return EXIT_FAILED
    from core.store.migrate import head_revision

    print(f"database at revision {head_revision()} (head)")
    return EXIT_OK


def cmd_api(args: argparse.Namespace) -> int:
    """Serve the HTTP api with uvicorn."""
    import uvicorn

    from core.config import get_settings
    from core.logging import configure_logging, logging_config

    configure_logging("api")

    problem = _database_ready(get_settings().database_url, migrate=False)
    if problem:
        _err(problem)
        return EXIT_FAILED
    from api.auth import UnsafeConfiguration, check_auth_setup

    try:
        # Here, not only in the app's start-up, where uvicorn would follow the reason with
        # its whole traceback: a refused start is one line.
        check_auth_setup(get_settings(), quiet=True)
    except UnsafeConfiguration as exc:
        _err(str(exc))
        return EXIT_FAILED
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        log_config=logging_config("api"),
        access_log=False,
    )
    return EXIT_OK


def _select_gpus(spec: str | None) -> list[str] | None:
    """The GPUs ``--gpus`` picks, as device ids a child's ``CUDA_VISIBLE_DEVICES`` takes.

    Indices count the GPUs this process sees: under ``CUDA_VISIBLE_DEVICES=2,3``, ``--gpus 0``
    is physical GPU 2 (see ``worker.devices.visible_gpu_ids``).
    """
    from worker.devices import visible_gpu_ids

    if spec is None:
        return None
    ids = visible_gpu_ids()
    if not ids:
        raise SystemExit(
            f"archbench: --gpus {spec} was given but no GPU is visible on this machine"
        )
    if spec == "all":
        return ids
    try:
        gpus = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(
            f"archbench: --gpus takes 'all' or indices like 0,1; got {spec!r}"
        ) from None
    bad = [g for g in gpus if g < 0 or g >= len(ids)]
    if bad or not gpus:
        raise SystemExit(f"archbench: --gpus {spec}: this machine has GPUs 0..{len(ids) - 1}")
    return [ids[g] for g in dict.fromkeys(gpus)]


Child = tuple[list[str], dict[str, str]]


def gpu_worker_children(
    device_ids: Sequence[str], trials_per_gpu: int, env: Mapping[str, str]
) -> list[Child]:
    """``archbench worker --gpus``: one (argv, env) per GPU, pinned to it, memory growth on."""
    from worker.devices import pin_env

    children = []
    for dev in device_ids:
        name = f"archbench-gpu{dev}" if dev.isdigit() else f"archbench-{dev}"
        argv = [*_SELF, "worker", "--concurrency", str(trials_per_gpu), "--name", name]
        children.append((argv, {**env, **pin_env(dev)}))
    return children


def up_worker_children(workers: int, *, cpu: bool, env: Mapping[str, str]) -> list[Child]:
    """``archbench up``'s workers: worker i pinned to visible GPU i % count when there are
    GPUs (so N workers spread over them), to none with ``--cpu``, else left as they are."""
    from worker.devices import pin_env, visible_gpu_ids

    ids = [] if cpu else visible_gpu_ids()
    children = []
    for i in range(workers):
        worker_env = dict(env)
        if cpu:
            worker_env.update(pin_env(None))
        elif ids:
            worker_env.update(pin_env(ids[i % len(ids)]))
        argv = [*_SELF, "worker", "--concurrency", "1", "--name", f"archbench{i}"]
        children.append((argv, worker_env))
    return children


def node_name(name: str) -> str:
    """The Celery node name ``name@<host>``, where the host is the heartbeat's identity (the
    hostname, and the PID namespace in a container) with ``/`` as ``-``: two workers sharing a
    hostname (host networking) were one node, ``archbench@vm``, to ``celery inspect ping``, so
    each container's health check was answered by whichever worker replied."""
    from worker.heartbeat import host_identity

    return f"{name}@{host_identity().replace('/', '-')}"


def _worker_argv(concurrency: int, name: str) -> list[str]:
    return [
        *(["--quiet"] if not sys.stdout.isatty() else []),  # no banner among JSON log lines
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--queues=archbench",
        f"--hostname={node_name(name)}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
    ]


def _check_worker_args(args: argparse.Namespace) -> None:
    """Reject option combinations that would be silently ignored."""
    if args.gpus is not None and args.concurrency is not None:
        raise SystemExit(
            "archbench: --concurrency is for a worker without --gpus; with --gpus use "
            "--trials-per-gpu N (trials trained at once on each GPU)"
        )
    if args.trials_per_gpu < 1 or (args.concurrency is not None and args.concurrency < 1):
        raise SystemExit("archbench: --concurrency and --trials-per-gpu must be at least 1")
    if args.trials_per_gpu > 1 and not args.gpus:
        raise SystemExit("archbench: --trials-per-gpu needs --gpus; use --concurrency without GPUs")


def cmd_worker(args: argparse.Namespace) -> int:
    """Start training worker(s): one process per GPU, pinned, or one CPU/any-device worker."""
    from core.logging import configure_logging

    _check_worker_args(args)
    gpus = _select_gpus(args.gpus)
    configure_logging("worker")
    from sqlalchemy.exc import DBAPIError

    from core.config import get_settings
    from core.store.migrate import schema_problem

    # A worker on a schema it does not match would take message after message and hand each
    # back: refuse to start, as the api does. A database that cannot be reached right now is
    # different: a worker rides out an outage (each claim waits, then goes back to the
    # queue), so it starts and says so.
    url = get_settings().database_url
    try:
        problem = schema_problem(url)
    except DBAPIError as exc:
        problem = None
        _err(_database_failure(url, exc) + "; starting anyway, trials wait for it")
    if problem:
        _err(problem)
        return EXIT_FAILED
    if not gpus:
        from worker.celery_app import app

        app.worker_main(_worker_argv(args.concurrency or 1, args.name or "archbench"))
        return EXIT_OK
    children = gpu_worker_children(gpus, args.trials_per_gpu, os.environ)
    # Each GPU's worker finishes its running trial (Celery's warm shutdown) however long it
    # takes: the container's stop_grace_period (or whoever sent SIGTERM) decides when to kill.
    procs = [subprocess.Popen(argv, env=env) for argv, env in children]
    return _supervise(procs, stop_seconds=None)


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _supervise(
    procs: list[subprocess.Popen[bytes]],
    ready: tuple[str, Callable[[], None]] | None = None,
    stop_seconds: float | None = 20.0,
) -> int:
    """Wait for children; on Ctrl-C or SIGTERM stop them all cleanly, killing those still
    running after ``stop_seconds`` (None: wait for them). With ``ready`` (a base URL and a
    callback), call the callback once, as soon as ``URL/healthz`` answers."""
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
        if ready is not None and not stopping and _answers(ready[0]):
            ready[1]()
            ready = None
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = None if stop_seconds is None else time.monotonic() + stop_seconds
    for p in procs:
        try:
            p.wait(timeout=None if deadline is None else max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    return code


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served (one line), or None when it is free.

    Bound and let go at once, as uvicorn binds it (``SO_REUSEADDR``: a port another process
    listens on is refused, one left in TIME_WAIT is not)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = exc.strerror or str(exc)
            return (
                f"cannot serve on {host}:{port}: {why.lower()} (another archbench up? "
                f"`archbench ls --url http://{host}:{port}` asks what answers there); stop it "
                f"or choose another port with --port"
            )
    return None


def cmd_up(args: argparse.Namespace) -> int:
    """The embedded service: SQLite, a serverless broker, the api and worker(s), one command."""
    from core.logging import configure_logging

    # Before anything starts: a served port would fail the api after the workers started,
    # and the other instance's health check would have announced this one as up.
    problem = port_in_use(args.host, args.port)
    if problem:
        _err(problem)
        return EXIT_FAILED
    configure_logging("up")
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ARCHBENCH_DATA_DIR"] = str(data_dir)
    from core.config import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    problem = _database_ready(settings.database_url, migrate=True)
    if problem:
        _err(problem)
        return EXIT_FAILED
    env = {**os.environ, "ARCHBENCH_DATA_DIR": str(data_dir)}
    procs = [
        subprocess.Popen([*_SELF, "api", "--host", args.host, "--port", str(args.port)], env=env)
    ]
    for argv, worker_env in up_worker_children(args.workers, cpu=args.cpu, env=env):
        procs.append(subprocess.Popen(argv, env=worker_env))
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"

    def announce() -> None:
        print(
            f"archbench is up at http://{args.host}:{args.port} (data in {data_dir}, "
            f"{args.workers} worker(s)); Ctrl-C stops it",
            flush=True,
        )

    return _supervise(procs, ready=(url, announce))


# Modules that add subcommands: each has ``register(subparsers) -> None``.
EXTENSIONS: list[str] = ["cli.ops", "cli.keys"]


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
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="trials at once in this worker without --gpus (default 1); not with --gpus",
    )
    worker.add_argument(
        "--trials-per-gpu",
        type=int,
        default=1,
        help="with --gpus: small trials trained at once on each GPU (memory growth shares it)",
    )
    worker.add_argument("--name", default=None)
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="migrate the database").set_defaults(func=cmd_migrate)

    remote.register(sub)  # submit, wait, ls, status, cancel, report, export
    for module in EXTENSIONS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``archbench`` command."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``archbench ls | head``): what it wanted it has. Python would
        # fail again flushing stdout at exit, so stdout goes to /dev/null from here.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
