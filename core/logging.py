"""Structured logs: one JSON object per line for machines, a readable line for a terminal.

Every record carries ``ts``, ``level``, ``logger``, ``msg`` and ``component`` (api, worker,
up, sweeper), plus ``comparison_id`` and ``trial_id`` whenever the code that logged knew
them: either passed with ``extra=`` or set for a whole block with :func:`log_context`
(the worker sets both around a trial, the api sets ``comparison_id`` for requests under
``/v1/comparisons/{id}``). ``ARCHBENCH_LOG_FORMAT=json|text`` overrides the choice made from
whether stderr is a terminal; ``ARCHBENCH_LOG_LEVEL`` sets the level (default INFO).
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CONTEXT_FIELDS",
    "HumanFormatter",
    "JsonFormatter",
    "configure_logging",
    "log_context",
    "logging_config",
    "wants_json",
]

CONTEXT_FIELDS = ("comparison_id", "trial_id")
_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"archbench_{name}", default=None) for name in CONTEXT_FIELDS
}
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Attach ``comparison_id`` / ``trial_id`` to every record logged inside the block."""
    tokens = [(_context[k], _context[k].set(v)) for k, v in ids.items() if k in _context]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context ids and ``extra=`` fields of a record."""
    out: dict[str, Any] = {}
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None) or _context[name].get()
        if value is not None:
            out[name] = value
    for key, value in vars(record).items():
        if key not in _STANDARD and key not in out and not key.startswith("_"):
            out[key] = value
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, component: str = "archbench") -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object."""
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "component": self.component,
            "pid": record.process,
        }
        body.update(_fields(record))
        if record.exc_info:
            body["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            body["exc"] = "".join(traceback.format_exception(*record.exc_info))
        elif record.exc_text:
            body["exc"] = record.exc_text
        return json.dumps(body, default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """``time level logger [ids] message`` for people at a terminal."""

    def __init__(self, component: str = "archbench") -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s", "%H:%M:%S")
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        """The record as one readable line (plus a traceback if any)."""
        line = super().format(record)
        ids = " ".join(f"{k}={v}" for k, v in _fields(record).items() if k in CONTEXT_FIELDS)
        return f"{line}  [{ids}]" if ids else line


def wants_json() -> bool:
    """JSON unless stderr is a terminal; ``ARCHBENCH_LOG_FORMAT`` overrides."""
    choice = os.environ.get("ARCHBENCH_LOG_FORMAT", "").lower()
    if choice in ("json", "text"):
        return choice == "json"
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def logging_config(component: str, *, json_logs: bool | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict (also handed to uvicorn for its worker processes)."""
    use_json = wants_json() if json_logs is None else json_logs
    formatter = JsonFormatter if use_json else HumanFormatter
    level = os.environ.get("ARCHBENCH_LOG_LEVEL", "INFO").upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "archbench": {"()": f"{__name__}.{formatter.__name__}", "component": component}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "archbench",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        # uvicorn and celery bring handlers of their own: route them through ours instead.
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task")
            },
            # Alembic logs one INFO line per built-in plugin it loads: noise on every start.
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging(component: str, *, json_logs: bool | None = None) -> None:
    """Send every log record of this process to stderr, as JSON or as readable text."""
    # TensorFlow's C++ side writes to fd 2 directly, bypassing Python logging: keep it quiet
    # unless the operator asked for it (child processes inherit this).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.config.dictConfig(logging_config(component, json_logs=json_logs))
    logging.captureWarnings(True)
