"""Every endpoint the clients call, described once: its method, path, query, body and how its
answer is read (httpx's own pattern: a shared request builder, and clients that only do I/O).

Each function here returns a ``Call``; ``Client`` sends it with ``httpx.Client`` and
``AsyncClient`` with ``httpx.AsyncClient``, then both hand the answer to ``call.parse``. What
follows the I/O (paging, polling, following a stream) is decided by ``Listing``, ``poll_pause``
and ``Follow``, also shared, so the two clients differ only in ``await``.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

import httpx

from archbench._common import (
    RETRY_STATUSES,
    Event,
    EventFilter,
    Reconnect,
    SpecSource,
    SseParser,
    build_spec,
    to_frame,
)
from archbench.errors import WaitTimeout, error_from_response, unreachable
from archbench.notebook import Comparison, Report
from archbench.status import TERMINAL
from archbench.types import Analysis, Dataset, Delivery, Page, Similarity

T = TypeVar("T")

# The columns of GET .../predictions (an empty answer still gets them).
PREDICTION_COLUMNS = (
    "trial_id",
    "variant",
    "seed",
    "example",
    "label",
    "predicted",
    "p_true",
    "confidence",
)
ReportFormat = Literal["text", "md", "csv", "json"]
Table = Literal["trials", "metrics", "report"]
Variants = Mapping[str, Any] | Sequence[Any] | None
UPLOAD_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    data: Mapping[str, str] | None = None

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` (and the async one's)."""
        out: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            out["json"] = self.json
        if self.files is not None:
            out["files"], out["data"] = self.files, self.data
        return out


def comparison_path(comparison_id: str, tail: str = "") -> str:
    """The path of a comparison, or of one of its sub-resources (``tail``)."""
    return f"/v1/comparisons/{comparison_id}{tail}"


def _json(resp: httpx.Response) -> Any:
    return resp.json()


def _items(resp: httpx.Response) -> Any:
    return resp.json()["items"]


def _text(resp: httpx.Response) -> str:
    return resp.text


def _content(resp: httpx.Response) -> bytes:
    return resp.content


def _comparison(resp: httpx.Response) -> Comparison:
    return Comparison(resp.json())


def _present(**params: str | None) -> dict[str, str]:
    return {k: v for k, v in params.items() if v}


def submit(
    spec: SpecSource,
    variants: Variants,
    idempotency_key: str | None,
    overrides: Mapping[str, Any],
) -> Call[Comparison]:
    """``POST /v1/comparisons``."""
    body = build_spec(spec, variants, overrides)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", "/v1/comparisons", _comparison, json=body, headers=headers)


def get(comparison_id: str) -> Call[Comparison]:
    """``GET /v1/comparisons/{id}``."""
    return Call("GET", comparison_path(comparison_id), _comparison)


def list_page(params: Mapping[str, Any]) -> Call[Page]:
    """One page of ``GET /v1/comparisons``."""
    return Call("GET", "/v1/comparisons", cast(Callable[[httpx.Response], Page], _json), params)


def cancel(comparison_id: str) -> Call[Comparison]:
    """``POST /v1/comparisons/{id}/cancel``."""
    return Call("POST", comparison_path(comparison_id, "/cancel"), _comparison)


def _rows(path: str, params: Mapping[str, Any], as_frame: bool) -> Call[Any]:
    parse: Callable[[httpx.Response], Any] = _items
    if as_frame:
        parse = lambda resp: to_frame(_items(resp))  # noqa: E731
    return Call("GET", path, parse, params)


def trials(comparison_id: str, as_frame: bool) -> Call[Any]:
    """``GET .../trials``: ``list[TrialRow]``, or a DataFrame with ``as_frame``."""
    return _rows(comparison_path(comparison_id, "/trials"), {}, as_frame)


def metrics(comparison_id: str, variant: str | None, as_frame: bool) -> Call[Any]:
    """``GET .../metrics``: ``list[MetricRow]``, or a DataFrame with ``as_frame``."""
    return _rows(comparison_path(comparison_id, "/metrics"), _present(variant=variant), as_frame)


def report(comparison_id: str, as_frame: bool) -> Call[Any]:
    """``GET .../report``: a ``Report``, or its per-variant table as a DataFrame."""
    if as_frame:
        parse: Callable[[httpx.Response], Any] = lambda resp: to_frame(resp.json()["variants"])  # noqa: E731
    else:
        parse = lambda resp: Report(resp.json())  # noqa: E731
    return Call("GET", comparison_path(comparison_id, "/report"), parse)


def predictions(comparison_id: str, variant: str | None) -> Call[Any]:
    """``GET .../predictions`` as a DataFrame (with its columns even when empty)."""
    path = comparison_path(comparison_id, "/predictions")
    return Call(
        "GET",
        path,
        lambda resp: to_frame(_items(resp), PREDICTION_COLUMNS),
        _present(variant=variant),
    )


def similarity(comparison_id: str, a: str | None, b: str | None) -> Call[Similarity]:
    """``GET .../similarity``."""
    path = comparison_path(comparison_id, "/similarity")
    return Call("GET", path, lambda resp: cast(Similarity, dict(resp.json())), _present(a=a, b=b))


def similarity_png(comparison_id: str, a: str | None, b: str | None) -> Call[bytes]:
    """``GET .../similarity.png``."""
    path = comparison_path(comparison_id, "/similarity.png")
    return Call("GET", path, _content, _present(a=a, b=b))


def report_text(comparison_id: str, format: ReportFormat) -> Call[str]:
    """``GET .../report?format=``."""
    return Call("GET", comparison_path(comparison_id, "/report"), _text, {"format": format})


def report_png(comparison_id: str) -> Call[bytes]:
    """``GET .../report.png``."""
    return Call("GET", comparison_path(comparison_id, "/report.png"), _content)


def tuning_png(comparison_id: str) -> Call[bytes]:
    """``GET .../tuning.png``."""
    return Call("GET", comparison_path(comparison_id, "/tuning.png"), _content)


def csv(comparison_id: str, table: Table) -> Call[str]:
    """A table as CSV: ``GET .../{table}?format=csv``."""
    return Call("GET", comparison_path(comparison_id, f"/{table}"), _text, {"format": "csv"})


def deliveries(comparison_id: str) -> Call[list[Delivery]]:
    """``GET .../deliveries``."""
    return Call("GET", comparison_path(comparison_id, "/deliveries"), lambda r: list(_items(r)))


def analyze(variant: Any, dataset: str | None) -> Call[Analysis]:
    """``POST /v1/architectures/analyze`` of one variant (a dict or a Keras model)."""
    body: dict[str, Any] = {"variant": build_spec({"variants": [variant]})["variants"][0]}
    if dataset:
        body["dataset"] = {"name": dataset}
    parse: Callable[[httpx.Response], Analysis] = lambda r: cast(Analysis, dict(r.json()))  # noqa: E731
    return Call("POST", "/v1/architectures/analyze", parse, json=body)


def datasets_page(params: Mapping[str, Any]) -> Call[Page]:
    """One page of ``GET /v1/datasets``."""
    return Call("GET", "/v1/datasets", cast(Callable[[httpx.Response], Page], _json), params)


def _npz(arrays: Mapping[str, Any]) -> bytes:
    """The arrays as the bytes of an ``.npz`` (numpy is needed only here)."""
    try:
        import numpy as np
    except ImportError:
        raise ImportError(
            "upload_dataset from arrays needs numpy: pip install numpy (or pass an .npz path)"
        ) from None
    buf = io.BytesIO()
    named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez_compressed(buf, **named)
    return buf.getvalue()


def upload_dataset(
    path: str | os.PathLike[str] | None,
    arrays: Mapping[str, Any | None],
    name: str | None,
) -> Call[Dataset]:
    """``POST /v1/datasets``: an ``.npz`` file at ``path``, or one made of ``arrays``
    (``x_train``, ``y_train`` and optionally ``x_test``, ``y_test``)."""
    given = {k: v for k, v in arrays.items() if v is not None}
    if (path is None) == (not given):
        raise ValueError("upload_dataset takes an .npz path or x_train=..., y_train=... arrays")
    if path is not None:
        file = Path(path)
        try:
            content, filename = file.read_bytes(), file.name
        except OSError as exc:
            raise ValueError(f"cannot read {file}: {exc}") from None
    else:
        missing = [k for k in ("x_train", "y_train") if k not in given]
        if ("x_test" in given) != ("y_test" in given):
            missing.append("y_test" if "x_test" in given else "x_test")
        if missing:
            raise ValueError(f"upload_dataset needs {' and '.join(missing)} as well")
        content, filename = _npz(given), f"{name or 'arrays'}.npz"
    files = {"file": (filename, content, "application/octet-stream")}
    data = {"name": name} if name else {}
    parse: Callable[[httpx.Response], Dataset] = lambda r: cast(Dataset, dict(r.json()))  # noqa: E731
    return Call("POST", "/v1/datasets", parse, files=files, data=data)


def check(resp: httpx.Response) -> httpx.Response:
    """The answer, or the typed error it stands for."""
    if resp.status_code >= 400:
        raise error_from_response(resp)
    return resp


# What follows the I/O, once for both clients: paging, polling and following a stream.


def remaining(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (a ``time.monotonic()``), None without one."""
    return None if deadline is None else deadline - time.monotonic()


def deadline_of(timeout: float | None) -> float | None:
    """The monotonic deadline ``timeout`` seconds from now, None without one."""
    return None if timeout is None else time.monotonic() + timeout


class Listing(Generic[T]):
    """Paging through a list: the next page's query until ``limit`` items are in or the pages
    end; ``wrap`` makes each item what the client returns."""

    def __init__(self, filters: Mapping[str, str | None], limit: int, wrap: Callable[[Any], T]):
        self.items: list[T] = []
        self._filters = _present(**filters)
        self._limit, self._wrap = limit, wrap
        self._cursor: str | None = None
        self._more = True

    def query(self) -> dict[str, Any] | None:
        """The next page's query parameters; None when done."""
        if not self._more or len(self.items) >= self._limit:
            return None
        params: dict[str, Any] = {"limit": min(500, self._limit - len(self.items))}
        params.update(self._filters)
        if self._cursor:
            params["cursor"] = self._cursor
        return params

    def add(self, page: Page) -> None:
        """Take a page the query was answered with."""
        self.items.extend(self._wrap(item) for item in page["items"])
        self._cursor = page.get("next_cursor")
        self._more = bool(self._cursor)


def poll_pause(
    comparison_id: str,
    comparison: Mapping[str, Any],
    deadline: float | None,
    timeout: float | None,
    poll: float,
) -> float | None:
    """``wait``'s step: None when the comparison has ended, else the seconds to sleep before
    the next poll; raises WaitTimeout when the time is up."""
    if comparison["status"] in TERMINAL:
        return None
    left = remaining(deadline)
    if left is not None and left <= 0:
        raise WaitTimeout(comparison_id, float(timeout or 0), dict(comparison))
    return poll if left is None else max(0.0, min(poll, left))


class Follow:
    """``events``'s decisions: which events are new, when a refused or lost stream is tried
    again (and after how long), and when the time is up."""

    def __init__(self, url: str, comparison_id: str, timeout: float | None) -> None:
        self.url, self.comparison_id, self.timeout = url, comparison_id, timeout
        self.path = comparison_path(comparison_id, "/events")
        self._deadline = deadline_of(timeout)
        self._fresh, self._retry = EventFilter(), Reconnect(self._deadline)
        self._parser = SseParser()
        self._wait: float | None = 0.0

    def attempt(self) -> httpx.Timeout:
        """A new try at the stream; returns the timeouts to open it with."""
        self._wait = 0.0
        left = remaining(self._deadline)
        read = 60.0 if left is None else max(0.1, min(left, 60.0))
        return httpx.Timeout(30.0, read=read)

    def refused(self, resp: httpx.Response) -> None:
        """The stream was answered with an error (its body read): try again later, or raise."""
        self._wait = self._retry.backoff() if resp.status_code in RETRY_STATUSES else None
        if self._wait is None:
            raise error_from_response(resp)

    def opened(self) -> None:
        """The stream is open."""
        self._retry.connected()
        self._parser = SseParser()

    def feed(self, line: str) -> Event | None:
        """The event this line of the stream completes, if it is new."""
        event = self._parser.feed(line)
        return event if event is not None and self._fresh.is_new(event) else None

    def lost(self, exc: httpx.TransportError) -> None:
        """The connection failed: try again later, or raise."""
        self._wait = self._retry.backoff()
        if self._wait is None:
            raise unreachable(self.url, exc) from exc

    def check_time(self) -> None:
        """Raise WaitTimeout when the time is up."""
        left = remaining(self._deadline)
        if left is not None and left <= 0:
            raise WaitTimeout(self.comparison_id, float(self.timeout or 0), None)

    def pause(self) -> float:
        """After a try: the seconds to wait before the next (0: none); raises WaitTimeout when
        the time is up."""
        self.check_time()
        return self._wait or 0.0
