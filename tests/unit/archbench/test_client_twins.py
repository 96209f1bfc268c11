"""Client and AsyncClient behave alike against a scripted api (httpx.MockTransport): listing
follows cursors up to ``limit``, ``wait`` returns on a terminal state or raises WaitTimeout,
and ``events`` reconnects after a lost stream, drops the replayed events and stops at
``comparison_finished``."""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from archbench.client import AsyncClient, Client
from archbench.errors import NotFound, ServiceUnavailable, WaitTimeout

Handler = Callable[[httpx.Request], httpx.Response]
URL = "http://archbench.test"


def _run(handler: Handler, call: Callable[[Any], Any], sync: bool) -> Any:
    """``call(client)`` on a Client, or awaited on an AsyncClient, over ``handler``."""
    if sync:
        with Client(URL, api_key="k", transport=httpx.MockTransport(handler)) as client:
            return call(client)

    async def main() -> Any:
        async with AsyncClient(URL, api_key="k", transport=httpx.MockTransport(handler)) as ac:
            result = call(ac)
            if hasattr(result, "__aiter__"):
                return [e async for e in result]
            return await result

    return asyncio.run(main())


def _events(client: Any, **kwargs: Any) -> Any:
    result = client.events("c1", **kwargs)
    return result if hasattr(result, "__aiter__") else list(result)


def _sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return "".join(
        f"id: {i}\nevent: {name}\ndata: {json.dumps(data)}\n\n"
        for i, (name, data) in enumerate(events, 1)
    ).encode()


def _problem(status: int) -> httpx.Response:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": "scripted"}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


both = pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])


@both
def test_listing_follows_cursors_up_to_the_limit(sync: bool) -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        start = int(params.get("cursor", "0"))
        items = [{"id": str(start + i), "status": "queued"} for i in range(int(params["limit"]))]
        return httpx.Response(200, json={"items": items[:2], "next_cursor": str(start + 2)})

    listed = _run(handler, lambda c: c.list_comparisons(status="queued", limit=5), sync)
    assert [c["id"] for c in listed] == ["0", "1", "2", "3", "4"]
    assert seen == [
        {"limit": "5", "status": "queued"},
        {"limit": "3", "status": "queued", "cursor": "2"},
        {"limit": "1", "status": "queued", "cursor": "4"},
    ]


@both
def test_listing_stops_without_a_cursor(sync: bool) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, json={"items": [{"id": "a"}], "next_cursor": None})

    listed = _run(handler, lambda c: c.list_comparisons(name="x"), sync)
    assert [c["id"] for c in listed] == ["a"]
    assert calls == [f"{URL}/v1/comparisons?limit=50&name=x"]


@both
def test_wait_returns_the_terminal_state(sync: bool) -> None:
    states = iter(["queued", "running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "c1", "status": next(states)})

    done = _run(handler, lambda c: c.wait("c1", poll=0.001), sync)
    assert done["status"] == "succeeded"


@both
def test_wait_times_out_with_the_last_state(sync: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "c1", "status": "running"})

    with pytest.raises(WaitTimeout) as caught:
        _run(handler, lambda c: c.wait("c1", timeout=0.05, poll=0.01), sync)
    assert caught.value.comparison == {"id": "c1", "status": "running"}


def _script(*answers: httpx.Response | Exception) -> tuple[Handler, list[str]]:
    """A handler answering each request with the next of ``answers`` (raising exceptions)."""
    left: Iterator[httpx.Response | Exception] = iter(answers)
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        answer = next(left)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, paths


STARTED = ("trial_started", {"id": "t1"})
EPOCH_1 = ("epoch", {"trial_id": "t1", "epoch": 1})
EPOCH_2 = ("epoch", {"trial_id": "t1", "epoch": 2})
FINISHED = ("comparison_finished", {"status": "succeeded"})


@both
def test_events_reconnect_and_drop_the_replay(sync: bool) -> None:
    handler, paths = _script(
        httpx.Response(200, content=_sse(STARTED, EPOCH_1)),  # then the stream ends
        _problem(503),  # the api restarting: back off and try again
        httpx.ConnectError("refused"),  # still down
        httpx.Response(200, content=_sse(STARTED, EPOCH_1, EPOCH_2, FINISHED, EPOCH_2)),
    )
    events = _run(handler, _events, sync)
    assert [(e.event, e.data) for e in events] == [STARTED, EPOCH_1, EPOCH_2, FINISHED]
    assert paths == ["/v1/comparisons/c1/events"] * 4


@both
def test_events_before_any_stream_fail_at_once(sync: bool) -> None:
    handler, _ = _script(_problem(404))
    with pytest.raises(NotFound):
        _run(handler, _events, sync)
    handler, _ = _script(_problem(503))
    with pytest.raises(ServiceUnavailable):
        _run(handler, _events, sync)
    handler, _ = _script(httpx.ConnectError("refused"))
    with pytest.raises(ServiceUnavailable, match="cannot reach archbench"):
        _run(handler, _events, sync)


@both
def test_events_time_out(sync: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(0.01)  # each stream opens, says nothing and ends: reconnected at once
        return httpx.Response(200, content=_sse(STARTED) + b": keep-alive\n\n")

    with pytest.raises(WaitTimeout):
        _run(handler, lambda c: _events(c, timeout=0.3), sync)


def test_the_twins_offer_the_same_methods_with_the_same_signatures() -> None:
    """Every public method of Client has an AsyncClient twin taking the same arguments."""

    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")
        }

    sync, asynchronous = public(Client), public(AsyncClient)
    sync["aclose"] = sync.pop("close")
    assert set(sync) == set(asynchronous)
    for name, signature in sync.items():
        assert list(signature.parameters) == list(asynchronous[name].parameters), name


@both
def test_a_url_ending_in_v1_means_the_service(sync: bool) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"id": "c1", "status": "running"})

    for url in (f"{URL}/v1", f"{URL}/v1/"):
        if sync:
            with Client(url, transport=httpx.MockTransport(handler)) as client:
                client.get("c1")
        else:

            async def main(url: str = url) -> None:
                async with AsyncClient(url, transport=httpx.MockTransport(handler)) as ac:
                    await ac.get("c1")

            asyncio.run(main())
    assert seen == [f"{URL}/v1/comparisons/c1"] * 2


@both
def test_upload_from_arrays_sends_an_npz_of_them(sync: bool, tmp_path: Path) -> None:
    import numpy as np

    sent: list[tuple[dict[str, Any], str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        parts = {}
        for part in body.split(b"--" + boundary)[1:-1]:
            head, _, content = part.partition(b"\r\n\r\n")
            name = head.split(b'name="')[1].split(b'"')[0].decode()
            parts[name] = content.removesuffix(b"\r\n")
        with np.load(io.BytesIO(parts["file"])) as npz:
            sent.append(({k: npz[k] for k in npz.files}, parts["name"].decode()))
        return httpx.Response(201, json={"name": "upload:1", "label": "tiny"})

    x, y = np.arange(24, dtype=np.float32).reshape(6, 2, 2), np.array([0, 1, 0, 1, 0, 1])
    made = _run(handler, lambda c: c.upload_dataset(x_train=x, y_train=y, name="tiny"), sync)
    assert made["name"] == "upload:1"
    arrays, name = sent[0]
    assert name == "tiny"
    assert sorted(arrays) == ["x_train", "y_train"]
    assert (arrays["x_train"] == x).all()
    assert (arrays["y_train"] == y).all()
    with pytest.raises(ValueError, match="needs y_test as well"):
        _run(handler, lambda c: c.upload_dataset(x_train=x, y_train=y, x_test=x), sync)
    with pytest.raises(ValueError, match=r"an \.npz path or"):
        _run(handler, lambda c: c.upload_dataset(tmp_path / "d.npz", x_train=x), sync)


@both
def test_tuning_png_reads_the_bytes_and_a_404_is_not_found(sync: bool) -> None:
    png = b"\x89PNG\r\n\x1a\n..."

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/comparisons/c1/tuning.png":
            return httpx.Response(200, content=png, headers={"content-type": "image/png"})
        return _problem(404)

    assert _run(handler, lambda c: c.tuning_png("c1"), sync) == png
    with pytest.raises(NotFound):
        _run(handler, lambda c: c.tuning_png("c2"), sync)
