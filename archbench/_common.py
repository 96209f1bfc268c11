"""What the sync and async clients share: building a spec, parsing events, making tables."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RECONNECT_SECONDS",
    "RETRY_STATUSES",
    "Event",
    "EventFilter",
    "Reconnect",
    "SpecSource",
    "SseParser",
    "build_spec",
    "keras_variant",
    "to_frame",
]

SpecSource = Mapping[str, Any] | str | os.PathLike[str]
"""A comparison spec: a dict, or the path of a JSON file holding one."""


def _is_keras_model(obj: Any) -> bool:
    return callable(getattr(obj, "to_json", None)) and callable(getattr(obj, "get_config", None))


def keras_variant(model: Any, name: str | None = None) -> dict[str, Any]:
    """A variant from a Keras ``Sequential`` or functional ``keras.Model``: its ``to_json()``,
    parsed by the service.

    Nothing is trained or deserialised here; the service reads the JSON against its whitelist.
    """
    if not _is_keras_model(model):
        raise TypeError(f"expected a Keras model with to_json(), got {type(model).__name__}")
    return {"name": name or str(model.name), "keras_config": json.loads(model.to_json())}


def _variant(item: Any) -> Any:
    if _is_keras_model(item):
        return keras_variant(item)
    if isinstance(item, tuple) and len(item) == 2 and _is_keras_model(item[1]):
        return keras_variant(item[1], str(item[0]))
    return item


def build_spec(
    spec: SpecSource,
    variants: Mapping[str, Any] | Sequence[Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a submission from a dict or a JSON file, with Keras models converted.

    ``variants`` (or the spec's own ``variants`` list) may hold variant dicts, Keras models
    (named by ``model.name``), ``(name, model)`` pairs, or be a ``{name: model}`` mapping.
    """
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        try:
            body = json.loads(path.read_text())
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError(f"{path} must hold a JSON object, not {type(body).__name__}")
    else:
        body = dict(spec)
    if overrides:
        body.update(overrides)
    if variants is not None:
        if isinstance(variants, Mapping):
            body["variants"] = [_variant((name, m)) for name, m in variants.items()]
        else:
            body["variants"] = [_variant(v) for v in variants]
    elif isinstance(body.get("variants"), list):
        body["variants"] = [_variant(v) for v in body["variants"]]
    return body


@dataclass(frozen=True)
class Event:
    """One server-sent event: ``trial_started``, ``epoch``, ``trial_finished``, ``progress``
    or ``comparison_finished``; ``data`` is its decoded JSON."""

    event: str
    data: Any
    id: str | None = None


class SseParser:
    """Incremental ``text/event-stream`` parser: feed lines, get events."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        """Take one line (without its newline); return an event when one is complete."""
        line = line.rstrip("\r")
        if not line:
            if not self._data:
                self._event = "message"
                return None
            raw = "\n".join(self._data)
            try:
                data: Any = json.loads(raw)
            except ValueError:
                data = raw
            event = Event(self._event, data, self._id)
            self._event, self._data, self._id = "message", [], None
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        return None


class EventFilter:
    """Drops the events a reconnected stream repeats.

    Every ``/events`` stream starts by replaying what already happened (its ``id:`` counter
    starts again at 1), so after a reconnect the events a follower already has come again.
    They are recognised by what they are about: ``trial_started``/``trial_finished`` by the
    trial, ``epoch`` by (trial, epoch), ``comparison_finished`` once, and a ``progress`` equal
    to the last one passed on.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[Any, ...]] = set()
        self._progress: str | None = None

    def is_new(self, event: Event) -> bool:
        """True the first time an event is seen (and remember it)."""
        d = event.data if isinstance(event.data, dict) else {}
        if event.event == "progress":
            key = json.dumps(d, sort_keys=True, default=str)
            if key == self._progress:
                return False
            self._progress = key
            return True
        if event.event == "epoch":
            seen: tuple[Any, ...] = ("epoch", d.get("trial_id"), d.get("epoch"))
        elif event.event in ("trial_started", "trial_finished"):
            seen = (event.event, d.get("id"))
        elif event.event == "comparison_finished":
            seen = (event.event,)
        else:
            return True
        if seen in self._seen:
            return False
        self._seen.add(seen)
        return True


RECONNECT_SECONDS = 120.0
"""Without a timeout, how long a follower keeps trying to get a lost stream back."""
RETRY_STATUSES = frozenset({502, 503, 504})
"""Answers a restarting service (or the proxy in front of it) gives: try again."""


class Reconnect:
    """When a followed event stream is lost: how long to wait before trying again, or give up.

    A stream that never connected is not retried (a wrong URL fails at once). Once it has,
    a lost connection (the api restarted, a proxy dropped it) is retried with exponential
    backoff (0.2 s doubling to 5 s) until the caller's deadline or, without one, for
    ``window`` seconds of failing in a row.
    """

    def __init__(self, deadline: float | None, window: float = RECONNECT_SECONDS) -> None:
        self.deadline = deadline
        self.window = window
        self.ever_connected = False
        self._delay = 0.2
        self._failing_since: float | None = None

    def connected(self) -> None:
        """The stream is open: the next failure starts a fresh backoff."""
        self.ever_connected = True
        self._delay = 0.2
        self._failing_since = None

    def backoff(self) -> float | None:
        """Seconds to wait before the next try; None to give up."""
        if not self.ever_connected:
            return None
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if self.deadline is None and now - self._failing_since > self.window:
            return None
        wait = self._delay
        self._delay = min(self._delay * 2, 5.0)
        if self.deadline is not None:
            wait = max(0.0, min(wait, self.deadline - now))
        return wait


def to_frame(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Any:
    """Rows as a pandas DataFrame; pandas is optional, so say how to get it when missing."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "as_frame=True needs pandas, which is not installed: pip install pandas "
            "(or call without as_frame to get a list of dicts)"
        ) from None
    frame = pd.DataFrame(list(rows))
    if columns is not None and frame.empty:
        frame = pd.DataFrame(columns=list(columns))
    for col in ("started_at", "finished_at", "created_at"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col], utc=True, errors="coerce")
    return frame
