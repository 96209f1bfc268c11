"""The archbench Python client, sync (``Client``) and async (``AsyncClient``), on httpx.

    from archbench.client import Client

    with Client("http://127.0.0.1:8000", api_key=None) as ab:
        c = ab.submit("examples/quick.json")          # or a dict, or Keras Sequential models
        ab.wait(c["id"], timeout=600)
        print(ab.report(c["id"])["verdict"])
        df = ab.metrics(c["id"], as_frame=True)        # pandas, if installed

Errors arrive as the typed exceptions of ``archbench.errors``, each with the problem object.
TensorFlow is never imported: Keras models are sent as their ``to_json()``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Literal

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

# The columns of GET .../predictions (an empty answer still gets them).
PREDICTION_COLUMNS = ("trial_id", "variant", "seed", "example", "label", "predicted", "p_true")

__all__ = ["AsyncClient", "Client", "Event"]

DEFAULT_URL = "http://127.0.0.1:8000"
ReportFormat = Literal["text", "md", "csv", "json"]
Table = Literal["trials", "metrics", "report"]
Variants = Mapping[str, Any] | Sequence[Any] | None


def _base_url(url: str | None) -> str:
    return (url or os.environ.get("ARCHBENCH_URL") or DEFAULT_URL).rstrip("/")


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("ARCHBENCH_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _path(comparison_id: str, tail: str = "") -> str:
    return f"/v1/comparisons/{comparison_id}{tail}"


def _submit_headers(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _stream_timeout(deadline: float | None) -> httpx.Timeout:
    left = _remaining(deadline)
    read = 60.0 if left is None else max(0.1, min(left, 60.0))
    return httpx.Timeout(30.0, read=read)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


# The logic of list_comparisons, wait and events lives below, once for both clients; the
# clients' methods only do the I/O (a request, a stream, a sleep), each in its own way.


class _Listing:
    """``list_comparisons``'s paging: the next page's query until ``limit`` items are in or
    the pages end."""

    def __init__(self, status: str | None, name: str | None, limit: int) -> None:
        self.items: list[Comparison] = []
        self._filters = {k: v for k, v in (("status", status), ("name", name)) if v}
        self._limit = limit
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

    def add(self, page: Mapping[str, Any]) -> None:
        """Take a page the query was answered with."""
        self.items.extend(Comparison(item) for item in page["items"])
        self._cursor = page.get("next_cursor")
        self._more = bool(self._cursor)


def _poll_pause(
    comparison_id: str,
    comparison: dict[str, Any],
    deadline: float | None,
    timeout: float | None,
    poll: float,
) -> float | None:
    """``wait``'s step: None when the comparison has ended, else the seconds to sleep before
    the next poll; raises WaitTimeout when the time is up."""
    if comparison["status"] in TERMINAL:
        return None
    left = _remaining(deadline)
    if left is not None and left <= 0:
        raise WaitTimeout(comparison_id, float(timeout or 0), comparison)
    return poll if left is None else max(0.0, min(poll, left))


class _Follow:
    """``events``'s decisions: which events are new, when a refused or lost stream is tried
    again (and after how long), and when the time is up."""

    def __init__(self, url: str, comparison_id: str, timeout: float | None) -> None:
        self.url, self.comparison_id, self.timeout = url, comparison_id, timeout
        self.path = _path(comparison_id, "/events")
        self._deadline = _deadline(timeout)
        self._fresh, self._retry = EventFilter(), Reconnect(self._deadline)
        self._parser = SseParser()
        self._wait: float | None = 0.0

    def attempt(self) -> httpx.Timeout:
        """A new try at the stream; returns the timeouts to open it with."""
        self._wait = 0.0
        return _stream_timeout(self._deadline)

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
        left = _remaining(self._deadline)
        if left is not None and left <= 0:
            raise WaitTimeout(self.comparison_id, float(self.timeout or 0), None)

    def pause(self) -> float:
        """After a try: the seconds to wait before the next (0: none); raises WaitTimeout when
        the time is up."""
        self.check_time()
        return self._wait or 0.0


class Client:
    """A synchronous archbench client; use as a context manager or call ``close()``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _base_url(url)
        self._http = httpx.Client(
            base_url=self.url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        if resp.status_code >= 400:
            raise error_from_response(resp)
        return resp

    def submit(
        self,
        spec: SpecSource,
        *,
        variants: Variants = None,
        idempotency_key: str | None = None,
        **overrides: Any,
    ) -> Comparison:
        """Submit a comparison (a dict, a JSON file path, Keras models as variants)."""
        body = build_spec(spec, variants, overrides)
        headers = _submit_headers(idempotency_key)
        return Comparison(
            self._request("POST", "/v1/comparisons", json=body, headers=headers).json()
        )

    def get(self, comparison_id: str) -> Comparison:
        """A comparison's status and progress."""
        return Comparison(self._request("GET", _path(comparison_id)).json())

    def list_comparisons(
        self, *, status: str | None = None, name: str | None = None, limit: int = 50
    ) -> list[Comparison]:
        """Comparisons, newest first, following pages up to ``limit`` items."""
        listing = _Listing(status, name, limit)
        while (params := listing.query()) is not None:
            listing.add(self._request("GET", "/v1/comparisons", params=params).json())
        return listing.items

    def cancel(self, comparison_id: str) -> Comparison:
        """Cancel a comparison; raises Conflict when it already ended."""
        return Comparison(self._request("POST", _path(comparison_id, "/cancel")).json())

    def wait(
        self, comparison_id: str, timeout: float | None = None, *, poll: float = 1.0
    ) -> Comparison:
        """Poll until the comparison ends; raises WaitTimeout after ``timeout`` seconds."""
        deadline = _deadline(timeout)
        while True:
            comparison = self.get(comparison_id)
            pause = _poll_pause(comparison_id, comparison, deadline, timeout, poll)
            if pause is None:
                return comparison
            time.sleep(pause)

    def events(self, comparison_id: str, timeout: float | None = None) -> Iterator[Event]:
        """Follow the comparison's server-sent events until ``comparison_finished``.

        A stream lost midway (the api restarted) is reopened with backoff until ``timeout``
        (or for two minutes without one); the events the new stream replays are dropped, so
        each one arrives once.
        """
        follow = _Follow(self.url, comparison_id, timeout)
        while True:
            try:
                with self._http.stream("GET", follow.path, timeout=follow.attempt()) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        follow.refused(resp)
                    else:
                        follow.opened()
                        for line in resp.iter_lines():
                            if (event := follow.feed(line)) is not None:
                                yield event
                                if event.event == "comparison_finished":
                                    return
                            follow.check_time()
            except httpx.ReadTimeout:
                pass
            except httpx.TransportError as exc:
                follow.lost(exc)
            if wait := follow.pause():
                time.sleep(wait)

    def trials(self, comparison_id: str, *, as_frame: bool = False) -> Any:
        """One row per (variant, seed): a list of dicts, or a DataFrame with ``as_frame``."""
        rows = self._request("GET", _path(comparison_id, "/trials")).json()["items"]
        return to_frame(rows) if as_frame else rows

    def metrics(
        self, comparison_id: str, *, variant: str | None = None, as_frame: bool = False
    ) -> Any:
        """Every epoch of every trial, long form: a list of dicts, or a DataFrame."""
        params = {"variant": variant} if variant else {}
        rows = self._request("GET", _path(comparison_id, "/metrics"), params=params).json()
        return to_frame(rows["items"]) if as_frame else rows["items"]

    def report(self, comparison_id: str, *, as_frame: bool = False) -> Any:
        """The verdict as a dict, or its per-variant table as a DataFrame with ``as_frame``."""
        body = self._request("GET", _path(comparison_id, "/report")).json()
        return to_frame(body["variants"]) if as_frame else Report(body)

    def predictions(self, comparison_id: str, *, variant: str | None = None) -> Any:
        """The test-set predictions, one row per (trial, test example), as a pandas DataFrame:
        ``trial_id``, ``variant``, ``seed``, ``example`` (the dataset id, the same across
        variants and seeds), ``label``, ``predicted``, ``p_true``."""
        params = {"variant": variant} if variant else {}
        rows = self._request("GET", _path(comparison_id, "/predictions"), params=params).json()
        return to_frame(rows["items"], PREDICTION_COLUMNS)

    def similarity(
        self, comparison_id: str, a: str | None = None, b: str | None = None
    ) -> dict[str, Any]:
        """Layer-by-layer linear CKA of ``a`` against ``b`` and each against another seed."""
        params = {k: v for k, v in (("a", a), ("b", b)) if v}
        resp = self._request("GET", _path(comparison_id, "/similarity"), params=params)
        return dict(resp.json())

    def similarity_png(
        self, comparison_id: str, a: str | None = None, b: str | None = None
    ) -> bytes:
        """The three CKA heatmaps (a vs b, a vs a', b vs b') as PNG bytes."""
        params = {k: v for k, v in (("a", a), ("b", b)) if v}
        return self._request("GET", _path(comparison_id, "/similarity.png"), params=params).content

    def report_text(self, comparison_id: str, format: ReportFormat = "text") -> str:
        """The report rendered by the service as text, Markdown, CSV or JSON."""
        params = {"format": format}
        return self._request("GET", _path(comparison_id, "/report"), params=params).text

    def report_png(self, comparison_id: str) -> bytes:
        """Learning curves and the per-variant spread, as PNG bytes."""
        return self._request("GET", _path(comparison_id, "/report.png")).content

    def csv(self, comparison_id: str, table: Table) -> str:
        """A table (``trials``, ``metrics`` or ``report``) as the service's CSV."""
        params = {"format": "csv"}
        return self._request("GET", _path(comparison_id, f"/{table}"), params=params).text

    def deliveries(self, comparison_id: str) -> list[dict[str, Any]]:
        """Every webhook delivery attempt for the comparison's ``callback_url``."""
        return list(self._request("GET", _path(comparison_id, "/deliveries")).json()["items"])

    def analyze(self, variant: Any, dataset: str | None = "mnist_5k") -> dict[str, Any]:
        """Static analysis of one variant (dict or Keras model): shapes, params, FLOPs."""
        body: dict[str, Any] = {"variant": build_spec({"variants": [variant]})["variants"][0]}
        if dataset:
            body["dataset"] = {"name": dataset}
        return dict(self._request("POST", "/v1/architectures/analyze", json=body).json())


class AsyncClient:
    """The asynchronous twin of ``Client`` (``async with AsyncClient(...) as ab``)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = _base_url(url)
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        if resp.status_code >= 400:
            raise error_from_response(resp)
        return resp

    async def submit(
        self,
        spec: SpecSource,
        *,
        variants: Variants = None,
        idempotency_key: str | None = None,
        **overrides: Any,
    ) -> Comparison:
        """Submit a comparison (a dict, a JSON file path, Keras models as variants)."""
        body = build_spec(spec, variants, overrides)
        headers = _submit_headers(idempotency_key)
        resp = await self._request("POST", "/v1/comparisons", json=body, headers=headers)
        return Comparison(resp.json())

    async def get(self, comparison_id: str) -> Comparison:
        """A comparison's status and progress."""
        return Comparison((await self._request("GET", _path(comparison_id))).json())

    async def list_comparisons(
        self, *, status: str | None = None, name: str | None = None, limit: int = 50
    ) -> list[Comparison]:
        """Comparisons, newest first, following pages up to ``limit`` items."""
        listing = _Listing(status, name, limit)
        while (params := listing.query()) is not None:
            listing.add((await self._request("GET", "/v1/comparisons", params=params)).json())
        return listing.items

    async def cancel(self, comparison_id: str) -> Comparison:
        """Cancel a comparison; raises Conflict when it already ended."""
        return Comparison((await self._request("POST", _path(comparison_id, "/cancel"))).json())

    async def wait(
        self, comparison_id: str, timeout: float | None = None, *, poll: float = 1.0
    ) -> Comparison:
        """Poll until the comparison ends; raises WaitTimeout after ``timeout`` seconds."""
        deadline = _deadline(timeout)
        while True:
            comparison = await self.get(comparison_id)
            pause = _poll_pause(comparison_id, comparison, deadline, timeout, poll)
            if pause is None:
                return comparison
            await asyncio.sleep(pause)

    async def events(
        self, comparison_id: str, timeout: float | None = None
    ) -> AsyncIterator[Event]:
        """Follow the comparison's server-sent events until ``comparison_finished``.

        A stream lost midway (the api restarted) is reopened with backoff until ``timeout``
        (or for two minutes without one); the events the new stream replays are dropped, so
        each one arrives once.
        """
        follow = _Follow(self.url, comparison_id, timeout)
        while True:
            try:
                async with self._http.stream("GET", follow.path, timeout=follow.attempt()) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        follow.refused(resp)
                    else:
                        follow.opened()
                        async for line in resp.aiter_lines():
                            if (event := follow.feed(line)) is not None:
                                yield event
                                if event.event == "comparison_finished":
                                    return
                            follow.check_time()
            except httpx.ReadTimeout:
                pass
            except httpx.TransportError as exc:
                follow.lost(exc)
            if wait := follow.pause():
                await asyncio.sleep(wait)

    async def trials(self, comparison_id: str, *, as_frame: bool = False) -> Any:
        """One row per (variant, seed): a list of dicts, or a DataFrame with ``as_frame``."""
        rows = (await self._request("GET", _path(comparison_id, "/trials"))).json()["items"]
        return to_frame(rows) if as_frame else rows

    async def metrics(
        self, comparison_id: str, *, variant: str | None = None, as_frame: bool = False
    ) -> Any:
        """Every epoch of every trial, long form: a list of dicts, or a DataFrame."""
        params = {"variant": variant} if variant else {}
        resp = await self._request("GET", _path(comparison_id, "/metrics"), params=params)
        rows = resp.json()["items"]
        return to_frame(rows) if as_frame else rows

    async def report(self, comparison_id: str, *, as_frame: bool = False) -> Any:
        """The verdict as a dict, or its per-variant table as a DataFrame with ``as_frame``."""
        body = (await self._request("GET", _path(comparison_id, "/report"))).json()
        return to_frame(body["variants"]) if as_frame else Report(body)

    async def predictions(self, comparison_id: str, *, variant: str | None = None) -> Any:
        """The test-set predictions, one row per (trial, test example), as a pandas DataFrame
        (see ``Client.predictions``)."""
        params = {"variant": variant} if variant else {}
        resp = await self._request("GET", _path(comparison_id, "/predictions"), params=params)
        return to_frame(resp.json()["items"], PREDICTION_COLUMNS)

    async def similarity(
        self, comparison_id: str, a: str | None = None, b: str | None = None
    ) -> dict[str, Any]:
        """Layer-by-layer linear CKA of ``a`` against ``b`` and each against another seed."""
        params = {k: v for k, v in (("a", a), ("b", b)) if v}
        resp = await self._request("GET", _path(comparison_id, "/similarity"), params=params)
        return dict(resp.json())

    async def report_text(self, comparison_id: str, format: ReportFormat = "text") -> str:
        """The report rendered by the service as text, Markdown, CSV or JSON."""
        params = {"format": format}
        return (await self._request("GET", _path(comparison_id, "/report"), params=params)).text

    async def report_png(self, comparison_id: str) -> bytes:
        """Learning curves and the per-variant spread, as PNG bytes."""
        return (await self._request("GET", _path(comparison_id, "/report.png"))).content

    async def csv(self, comparison_id: str, table: Table) -> str:
        """A table (``trials``, ``metrics`` or ``report``) as the service's CSV."""
        params = {"format": "csv"}
        resp = await self._request("GET", _path(comparison_id, f"/{table}"), params=params)
        return resp.text

    async def deliveries(self, comparison_id: str) -> list[dict[str, Any]]:
        """Every webhook delivery attempt for the comparison's ``callback_url``."""
        resp = await self._request("GET", _path(comparison_id, "/deliveries"))
        return list(resp.json()["items"])

    async def analyze(self, variant: Any, dataset: str | None = "mnist_5k") -> dict[str, Any]:
        """Static analysis of one variant (dict or Keras model): shapes, params, FLOPs."""
        body: dict[str, Any] = {"variant": build_spec({"variants": [variant]})["variants"][0]}
        if dataset:
            body["dataset"] = {"name": dataset}
        return dict((await self._request("POST", "/v1/architectures/analyze", json=body)).json())
