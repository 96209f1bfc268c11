"""The archbench Python client, sync (``Client``) and async (``AsyncClient``), on httpx.

    from archbench.client import Client

    with Client("http://127.0.0.1:8000", api_key=None) as ab:
        c = ab.submit("examples/quick.json")          # or a dict, or Keras Sequential models
        ab.wait(c["id"], timeout=600)
        print(ab.report(c["id"])["verdict"])
        df = ab.metrics(c["id"], as_frame=True)        # pandas, if installed

Errors arrive as the typed exceptions of ``archbench.errors``, each with the problem object.
TensorFlow is never imported: Keras models are sent as their ``to_json()``.

Each endpoint is described once, in ``archbench._requests`` (method, path, query, body, how the
answer is read); the two classes here only send those descriptions, one with ``httpx.Client``
and one with ``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal, TypeVar, cast, overload

import httpx

from archbench import _requests as r
from archbench._common import Event, SpecSource
from archbench._requests import PREDICTION_COLUMNS, Call, ReportFormat, Table, Variants
from archbench.errors import unreachable
from archbench.notebook import Comparison, Report
from archbench.types import Analysis, Dataset, Delivery, MetricRow, Similarity, TrialRow

__all__ = ["PREDICTION_COLUMNS", "AsyncClient", "Client", "Event"]

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")
ArrayLike = Any  # a NumPy array, or anything numpy.asarray takes


def _base_url(url: str | None) -> str:
    """The service's root: the paths sent all start with /v1, so a URL given with the /v1
    (``http://host:8000/v1``, as the API's paths read) means the same service."""
    base = (url or os.environ.get("ARCHBENCH_URL") or DEFAULT_URL).rstrip("/")
    return base.removesuffix("/v1")


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("ARCHBENCH_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


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

    def _send(self, call: Call[T]) -> T:
        try:
            resp = self._http.request(call.method, call.path, **call.kwargs())
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        return call.parse(r.check(resp))

    def submit(
        self,
        spec: SpecSource,
        *,
        variants: Variants = None,
        idempotency_key: str | None = None,
        **overrides: Any,
    ) -> Comparison:
        """Submit a comparison (a dict, a JSON file path, Keras models as variants)."""
        return self._send(r.submit(spec, variants, idempotency_key, overrides))

    def get(self, comparison_id: str) -> Comparison:
        """A comparison's status and progress."""
        return self._send(r.get(comparison_id))

    def list_comparisons(
        self, *, status: str | None = None, name: str | None = None, limit: int = 50
    ) -> list[Comparison]:
        """Comparisons, newest first, following pages up to ``limit`` items."""
        listing = r.Listing({"status": status, "name": name}, limit, Comparison)
        while (params := listing.query()) is not None:
            listing.add(self._send(r.list_page(params)))
        return listing.items

    def cancel(self, comparison_id: str) -> Comparison:
        """Cancel a comparison; raises Conflict when it already ended."""
        return self._send(r.cancel(comparison_id))

    def wait(
        self, comparison_id: str, timeout: float | None = None, *, poll: float = 1.0
    ) -> Comparison:
        """Poll until the comparison ends; raises WaitTimeout after ``timeout`` seconds."""
        deadline = r.deadline_of(timeout)
        while True:
            comparison = self.get(comparison_id)
            pause = r.poll_pause(comparison_id, comparison, deadline, timeout, poll)
            if pause is None:
                return comparison
            time.sleep(pause)

    def events(self, comparison_id: str, timeout: float | None = None) -> Iterator[Event]:
        """Follow the comparison's server-sent events until ``comparison_finished``.

        A stream lost midway (the api restarted) is reopened with backoff until ``timeout``
        (or for two minutes without one); the events the new stream replays are dropped, so
        each one arrives once.
        """
        follow = r.Follow(self.url, comparison_id, timeout)
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

    @overload
    def trials(self, comparison_id: str, *, as_frame: Literal[False] = False) -> list[TrialRow]: ...
    @overload
    def trials(self, comparison_id: str, *, as_frame: bool) -> Any: ...
    def trials(self, comparison_id: str, *, as_frame: bool = False) -> Any:
        """One row per (variant, seed): a list of dicts, or a DataFrame with ``as_frame``."""
        return self._send(r.trials(comparison_id, as_frame))

    @overload
    def metrics(
        self, comparison_id: str, *, variant: str | None = None, as_frame: Literal[False] = False
    ) -> list[MetricRow]: ...
    @overload
    def metrics(self, comparison_id: str, *, variant: str | None = None, as_frame: bool) -> Any: ...
    def metrics(
        self, comparison_id: str, *, variant: str | None = None, as_frame: bool = False
    ) -> Any:
        """Every epoch of every trial, long form: a list of dicts, or a DataFrame."""
        return self._send(r.metrics(comparison_id, variant, as_frame))

    @overload
    def report(self, comparison_id: str, *, as_frame: Literal[False] = False) -> Report: ...
    @overload
    def report(self, comparison_id: str, *, as_frame: bool) -> Any: ...
    def report(self, comparison_id: str, *, as_frame: bool = False) -> Any:
        """The verdict as a dict, or its per-variant table as a DataFrame with ``as_frame``."""
        return self._send(r.report(comparison_id, as_frame))

    def predictions(self, comparison_id: str, *, variant: str | None = None) -> Any:
        """The test-set predictions, one row per (trial, test example), as a pandas DataFrame:
        ``trial_id``, ``variant``, ``seed``, ``example`` (the dataset id, the same across
        variants and seeds), ``label``, ``predicted``, ``p_true`` (the label's probability) and
        ``confidence`` (the top class's), unrounded: the report's ECE and NLL follow from them."""
        return self._send(r.predictions(comparison_id, variant))

    def similarity(
        self, comparison_id: str, a: str | None = None, b: str | None = None
    ) -> Similarity:
        """Layer-by-layer linear CKA of ``a`` against ``b`` and each against another seed."""
        return self._send(r.similarity(comparison_id, a, b))

    def similarity_png(
        self, comparison_id: str, a: str | None = None, b: str | None = None
    ) -> bytes:
        """The three CKA heatmaps (a vs b, a vs a', b vs b') as PNG bytes."""
        return self._send(r.similarity_png(comparison_id, a, b))

    def report_text(self, comparison_id: str, format: ReportFormat = "text") -> str:
        """The report rendered by the service as text, Markdown, CSV or JSON."""
        return self._send(r.report_text(comparison_id, format))

    def report_png(self, comparison_id: str) -> bytes:
        """Learning curves and the per-variant spread, as PNG bytes."""
        return self._send(r.report_png(comparison_id))

    def tuning_png(self, comparison_id: str) -> bytes:
        """The expected best validation score against the tuning budget, as PNG bytes
        (``NotFound`` without a tuning stage)."""
        return self._send(r.tuning_png(comparison_id))

    def csv(self, comparison_id: str, table: Table) -> str:
        """A table (``trials``, ``metrics`` or ``report``) as the service's CSV."""
        return self._send(r.csv(comparison_id, table))

    def deliveries(self, comparison_id: str) -> list[Delivery]:
        """Every webhook delivery attempt for the comparison's ``callback_url``."""
        return self._send(r.deliveries(comparison_id))

    def analyze(self, variant: Any, dataset: str | None = "mnist_5k") -> Analysis:
        """Static analysis of one variant (dict or Keras model): shapes, params, FLOPs."""
        return self._send(r.analyze(variant, dataset))

    def datasets(self, *, limit: int = 500) -> list[Dataset]:
        """The built-in datasets, then this tenant's uploads (oldest first)."""
        listing = r.Listing({}, limit, lambda item: cast(Dataset, item))
        while (params := listing.query()) is not None:
            listing.add(self._send(r.datasets_page(params)))
        return listing.items

    def upload_dataset(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        x_train: ArrayLike = None,
        y_train: ArrayLike = None,
        x_test: ArrayLike = None,
        y_test: ArrayLike = None,
        name: str | None = None,
    ) -> Dataset:
        """Upload a dataset: an ``.npz`` file, or NumPy arrays (``x_train``, ``y_train``, and
        ``x_test``, ``y_test`` together or not at all). A spec names it by the answer's
        ``name`` (``upload:<id>``) or by ``name``, unique among this tenant's uploads."""
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        return self._send(r.upload_dataset(path, arrays, name))


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

    async def _send(self, call: Call[T]) -> T:
        try:
            resp = await self._http.request(call.method, call.path, **call.kwargs())
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        return call.parse(r.check(resp))

    async def submit(
        self,
        spec: SpecSource,
        *,
        variants: Variants = None,
        idempotency_key: str | None = None,
        **overrides: Any,
    ) -> Comparison:
        """Submit a comparison (a dict, a JSON file path, Keras models as variants)."""
        return await self._send(r.submit(spec, variants, idempotency_key, overrides))

    async def get(self, comparison_id: str) -> Comparison:
        """A comparison's status and progress."""
        return await self._send(r.get(comparison_id))

    async def list_comparisons(
        self, *, status: str | None = None, name: str | None = None, limit: int = 50
    ) -> list[Comparison]:
        """Comparisons, newest first, following pages up to ``limit`` items."""
        listing = r.Listing({"status": status, "name": name}, limit, Comparison)
        while (params := listing.query()) is not None:
            listing.add(await self._send(r.list_page(params)))
        return listing.items

    async def cancel(self, comparison_id: str) -> Comparison:
        """Cancel a comparison; raises Conflict when it already ended."""
        return await self._send(r.cancel(comparison_id))

    async def wait(
        self, comparison_id: str, timeout: float | None = None, *, poll: float = 1.0
    ) -> Comparison:
        """Poll until the comparison ends; raises WaitTimeout after ``timeout`` seconds."""
        deadline = r.deadline_of(timeout)
        while True:
            comparison = await self.get(comparison_id)
            pause = r.poll_pause(comparison_id, comparison, deadline, timeout, poll)
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
        follow = r.Follow(self.url, comparison_id, timeout)
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

    @overload
    async def trials(
        self, comparison_id: str, *, as_frame: Literal[False] = False
    ) -> list[TrialRow]: ...
    @overload
    async def trials(self, comparison_id: str, *, as_frame: bool) -> Any: ...
    async def trials(self, comparison_id: str, *, as_frame: bool = False) -> Any:
        """One row per (variant, seed): a list of dicts, or a DataFrame with ``as_frame``."""
        return await self._send(r.trials(comparison_id, as_frame))

    @overload
    async def metrics(
        self, comparison_id: str, *, variant: str | None = None, as_frame: Literal[False] = False
    ) -> list[MetricRow]: ...
    @overload
    async def metrics(
        self, comparison_id: str, *, variant: str | None = None, as_frame: bool
    ) -> Any: ...
    async def metrics(
        self, comparison_id: str, *, variant: str | None = None, as_frame: bool = False
    ) -> Any:
        """Every epoch of every trial, long form: a list of dicts, or a DataFrame."""
        return await self._send(r.metrics(comparison_id, variant, as_frame))

    @overload
    async def report(self, comparison_id: str, *, as_frame: Literal[False] = False) -> Report: ...
    @overload
    async def report(self, comparison_id: str, *, as_frame: bool) -> Any: ...
    async def report(self, comparison_id: str, *, as_frame: bool = False) -> Any:
        """The verdict as a dict, or its per-variant table as a DataFrame with ``as_frame``."""
        return await self._send(r.report(comparison_id, as_frame))

    async def predictions(self, comparison_id: str, *, variant: str | None = None) -> Any:
        """The test-set predictions, one row per (trial, test example), as a pandas DataFrame
        (see ``Client.predictions``)."""
        return await self._send(r.predictions(comparison_id, variant))

    async def similarity(
        self, comparison_id: str, a: str | None = None, b: str | None = None
    ) -> Similarity:
        """Layer-by-layer linear CKA of ``a`` against ``b`` and each against another seed."""
        return await self._send(r.similarity(comparison_id, a, b))

    async def similarity_png(
        self, comparison_id: str, a: str | None = None, b: str | None = None
    ) -> bytes:
        """The three CKA heatmaps (a vs b, a vs a', b vs b') as PNG bytes."""
        return await self._send(r.similarity_png(comparison_id, a, b))

    async def report_text(self, comparison_id: str, format: ReportFormat = "text") -> str:
        """The report rendered by the service as text, Markdown, CSV or JSON."""
        return await self._send(r.report_text(comparison_id, format))

    async def report_png(self, comparison_id: str) -> bytes:
        """Learning curves and the per-variant spread, as PNG bytes."""
        return await self._send(r.report_png(comparison_id))

    async def tuning_png(self, comparison_id: str) -> bytes:
        """The expected best validation score against the tuning budget, as PNG bytes
        (``NotFound`` without a tuning stage)."""
        return await self._send(r.tuning_png(comparison_id))

    async def csv(self, comparison_id: str, table: Table) -> str:
        """A table (``trials``, ``metrics`` or ``report``) as the service's CSV."""
        return await self._send(r.csv(comparison_id, table))

    async def deliveries(self, comparison_id: str) -> list[Delivery]:
        """Every webhook delivery attempt for the comparison's ``callback_url``."""
        return await self._send(r.deliveries(comparison_id))

    async def analyze(self, variant: Any, dataset: str | None = "mnist_5k") -> Analysis:
        """Static analysis of one variant (dict or Keras model): shapes, params, FLOPs."""
        return await self._send(r.analyze(variant, dataset))

    async def datasets(self, *, limit: int = 500) -> list[Dataset]:
        """The built-in datasets, then this tenant's uploads (oldest first)."""
        listing = r.Listing({}, limit, lambda item: cast(Dataset, item))
        while (params := listing.query()) is not None:
            listing.add(await self._send(r.datasets_page(params)))
        return listing.items

    async def upload_dataset(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        x_train: ArrayLike = None,
        y_train: ArrayLike = None,
        x_test: ArrayLike = None,
        y_test: ArrayLike = None,
        name: str | None = None,
    ) -> Dataset:
        """Upload a dataset (see ``Client.upload_dataset``)."""
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        return await self._send(r.upload_dataset(path, arrays, name))
