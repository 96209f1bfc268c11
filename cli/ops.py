"""Operator subcommands: ``archbench sweep`` (once, or ``--forever`` as its own service).

Every worker already runs the sweeper in a thread; a separate sweeper keeps crash recovery
going while no worker is up (for instance during a rolling upgrade of all of them). Several
sweepers at once are harmless: each step is a guarded UPDATE.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

__all__ = ["cmd_sweep", "register"]

log = logging.getLogger("archbench.sweeper")


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run the sweeper once (printing what it did as JSON), or forever every --interval s."""
    from core.config import get_settings
    from core.logging import configure_logging
    from core.trials.sweeper import sweep

    configure_logging("sweeper")
    settings = get_settings()
    if not args.forever:
        print(json.dumps(dataclasses.asdict(sweep(settings))), flush=True)
        return 0
    interval = args.interval if args.interval is not None else settings.sweep_seconds
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    log.info("sweeper started: every %.1f s", interval)
    while not stop.is_set():
        try:
            result = sweep(settings)
            if any(dataclasses.astuple(result)):
                log.info("swept: %s", dataclasses.asdict(result))
            if args.alive_file:  # the container's health check reads its age
                Path(args.alive_file).touch()
        except Exception:
            log.exception("sweep failed; trying again in %.1f s", interval)
        stop.wait(interval)
    log.info("sweeper stopped")
    return 0


def register(sub: Any) -> None:
    """Add ``sweep`` to the ``archbench`` command."""
    p = sub.add_parser("sweep", help="requeue trials of dead workers and lost messages")
    p.add_argument("--forever", action="store_true", help="keep sweeping until stopped")
    p.add_argument(
        "--alive-file",
        default=None,
        help="with --forever: touch this file after each sweep that reached the database "
        "(a health check tests its age)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between sweeps (ARCHBENCH_SWEEP_SECONDS)",
    )
    p.set_defaults(func=cmd_sweep)
