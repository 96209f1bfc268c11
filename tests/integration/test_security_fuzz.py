"""schemathesis against the api's own OpenAPI document: every operation, a fixed budget.

A real api process (Postgres, auth on, a key) answers every generated request; no answer may be
a 5xx, and every 4xx must be ``application/problem+json``. A second, smaller pass sends no key.

Random ids only ever reach the 404 of a missing comparison, so half the generated cases of an
operation on ``{comparison_id}`` use a comparison that exists: the fuzzer then reaches what
lies behind the lookup (cursors, formats, filters). ``/events`` is fuzzed too: an event stream
of a live comparison never ends by itself, so it is read with a short read timeout and a cap
on the bytes taken; a 200 stream cut by either is a pass. Then explicit examples: malformed
cursors (bad base64, JSON of the wrong shape and types) on every operation that takes one.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.helpers import tiny_spec
from tests.support.secured import SecuredApi, secured_api

pytestmark = pytest.mark.services

EXAMPLES = 25  # per operation; the whole run takes well under two minutes on 2 cores
STREAM_READ_TIMEOUT = 2.0  # seconds without a byte: the stream is alive and idle
STREAM_CAP = 64 * 1024  # bytes read from a stream at most


def _cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


BAD_CURSORS = [
    "%%%",  # not base64
    "é",  # not ASCII
    base64.urlsafe_b64encode(b"{not json").decode(),
    base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),  # not UTF-8
    _cursor({"a": 1}),
    _cursor([]),
    _cursor([None, 1]),  # was a 500 on the trials page
    _cursor(["a", "b"]),  # was a 200 that broke mid-stream on the trials table
    _cursor([True, False]),
    _cursor([1.5, 2]),
    _cursor([2**70, 0]),
    _cursor(["2025-01-01T00:00:00+00:00", None]),
    _cursor(["not a date", "x"]),
    _cursor(["0001-01-01T00:00:00+05:00", "x"]),
    _cursor(["2025-01-01T00:00:00+00:00", "nul\u0000"]),
    _cursor(["b", "x", None]),
    _cursor(["u", 1, 2]),
    _cursor(["z", 0, None]),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    with secured_api(
        tmp_path_factory.mktemp("fuzz"),
        ("fuzz",),
        ARCHBENCH_MAX_UPLOAD_BYTES="200000",
        ARCHBENCH_MAX_ACTIVE_COMPARISONS_PER_TENANT="1000",
    ) as svc:
        yield svc


@pytest.fixture(scope="module")
def comparisons(api: SecuredApi) -> dict[str, str]:
    """Two comparisons of the fuzz tenant, queued for good (this api's broker has no worker):
    one the fuzzer may use (and cancel), one only the explicit examples use (its events
    stream stays open)."""
    ids = {}
    with api.client("fuzz") as c:
        for role in ("fuzzed", "live"):
            resp = c.post("/v1/comparisons", json=tiny_spec(role, seeds=[0, 1], epochs=1))
            assert resp.status_code == 202, resp.text
            ids[role] = resp.json()["id"]
    return ids


def _check(where: str, status: int, ctype: str, text: str, failures: list[str]) -> None:
    if status >= 500:
        failures.append(f"{where} -> {status}: {text[:300]}")
    elif status >= 400 and not ctype.startswith("application/problem+json"):
        failures.append(f"{where} -> {status}: content-type {ctype!r}")


def _conformance(case: Any, response: Any, where: str, failures: list[str]) -> None:
    """schemathesis's own checks: the status is documented for the operation, and the
    content type is one documented for that status."""
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        status_code_conformance,
    )

    try:
        case.validate_response(response, checks=[status_code_conformance, content_type_conformance])
    except (Exception, BaseExceptionGroup) as exc:  # AssertionError, FailureGroup
        failures.append(f"{where} -> {response.status_code}: not as documented: {exc}"[:600])


def _send(
    case: Any, base_url: str, headers: dict[str, str], failures: list[str] | None = None
) -> tuple[int, str, str]:
    """Send a case; an event stream is read up to STREAM_CAP bytes or an idle read timeout.
    With ``failures``, the answer is also checked against the document."""
    if not case.path.endswith("/events"):
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        ctype = (response.headers.get("content-type") or [""])[0]
        if failures is not None:
            where = f"{case.method} {case.formatted_path} {case.query}"
            _conformance(case, response, where, failures)
        return response.status_code, ctype, response.content.decode("utf-8", "replace")
    import requests

    kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
    kwargs.pop("timeout", None)
    body = b""
    with requests.request(**kwargs, stream=True, timeout=(10, STREAM_READ_TIMEOUT)) as response:
        try:
            for chunk in response.iter_content(4096):
                body += chunk
                if len(body) >= STREAM_CAP:
                    break
        except requests.RequestException:
            if response.status_code != 200:
                raise  # only a live 200 stream may go quiet
        ctype = response.headers.get("content-type", "")
        return response.status_code, ctype, body.decode("utf-8", "replace")


def _fuzz(
    api: SecuredApi, headers: dict[str, str], examples: int, comparison_id: str | None
) -> tuple[list[str], list[int], int]:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.core.result import Err

    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the document cannot describe
            raise result.err()
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(), existing=st.booleans())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case[Any], existing: bool) -> None:
            params = case.path_parameters or {}
            if existing and comparison_id and "comparison_id" in params:
                params["comparison_id"] = comparison_id
            status, ctype, text = _send(case, api.url, headers, failures)
            statuses.append(status)
            _check(
                f"{case.method} {case.formatted_path} {case.query}", status, ctype, text, failures
            )

        run()
    return failures, statuses, operations


def _cursor_examples(
    api: SecuredApi, headers: dict[str, str], comparison_id: str
) -> tuple[list[str], int]:
    """Every operation that takes a ``cursor``, with each malformed one: a 422 at cursor."""
    import schemathesis
    from schemathesis.core.result import Err

    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the document cannot describe
            raise result.err()
        operation = result.ok()
        names = {p.name for p in operation.iter_parameters()}
        if "cursor" not in names:
            continue
        operations += 1
        path = {"comparison_id": comparison_id} if "comparison_id" in names else {}
        for cursor in BAD_CURSORS:
            for extra in ({}, {"limit": 2}) if "limit" in names else ({},):
                case = operation.Case(path_parameters=path, query={"cursor": cursor, **extra})
                status, ctype, text = _send(case, api.url, headers)
                where = f"{case.method} {case.formatted_path} {case.query}"
                _check(where, status, ctype, text, failures)
                if status != 422:
                    failures.append(f"{where} -> {status}, not 422: {text[:200]}")
                elif json.loads(text)["errors"][0]["loc"] != ["query", "cursor"]:
                    failures.append(f"{where}: located elsewhere: {text[:200]}")
    return failures, operations


def _live_events(api: SecuredApi, headers: dict[str, str], comparison_id: str) -> None:
    """The stream of a live comparison: a 200 that is cut by the read timeout, not a hang."""
    import requests

    started = time.monotonic()
    with requests.get(
        f"{api.url}/v1/comparisons/{comparison_id}/events",
        headers=headers,
        stream=True,
        timeout=(10, STREAM_READ_TIMEOUT),
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = b""
        timed_out = False
        try:
            for chunk in response.iter_content(4096):
                body += chunk
                assert len(body) < STREAM_CAP
        except requests.RequestException:
            timed_out = True
    assert timed_out, "the stream of a live comparison ended"
    assert b"event: progress" in body
    assert time.monotonic() - started < 30


def test_fuzz_with_a_key(api: SecuredApi, comparisons: dict[str, str]) -> None:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {api.keys['fuzz']}"}
    _live_events(api, headers, comparisons["live"])
    failures, statuses, operations = _fuzz(api, headers, EXAMPLES, comparisons["fuzzed"])
    assert operations >= 12, operations
    assert len(statuses) >= operations * 2, len(statuses)
    assert statuses.count(200) + statuses.count(202) >= operations, sorted(set(statuses))
    cursor_failures, cursor_operations = _cursor_examples(api, headers, comparisons["live"])
    assert cursor_operations >= 3, cursor_operations  # comparisons, trials, datasets
    failures += cursor_failures
    print(f"{len(statuses)} requests over {operations} operations:", sorted(set(statuses)))
    assert not failures, "\n".join(failures[:20])
    assert time.monotonic() - started < 150


def test_fuzz_without_a_key(api: SecuredApi, comparisons: dict[str, str]) -> None:
    failures, statuses, operations = _fuzz(api, {}, 3, comparisons["fuzzed"])
    assert len(statuses) >= operations
    assert 401 in statuses
    assert set(statuses) <= {200, 401}, sorted(set(statuses))  # only open paths answer
    assert not failures, "\n".join(failures[:20])
