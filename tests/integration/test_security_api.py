"""Tenants, keys and limits against a real api with ARCHBENCH_AUTH=true on Postgres."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.secured import PY, SecuredApi, secured_api
from tests.support.services import free_port, start, stop, wait_http

pytestmark = pytest.mark.services

LIMITS = {
    "ARCHBENCH_MAX_VARIANTS": "3",
    "ARCHBENCH_MAX_SEEDS": "3",
    "ARCHBENCH_MAX_EPOCHS": "5",
    "ARCHBENCH_MAX_TRIAL_EPOCHS": "20",
    "ARCHBENCH_MAX_PARAMS": "100000",
    "ARCHBENCH_MAX_FLOPS": "2000000",
    "ARCHBENCH_MAX_BODY_BYTES": "20000",
    "ARCHBENCH_MAX_ACTIVE_COMPARISONS_PER_TENANT": "3",
    "ARCHBENCH_METRICS_TOKEN": "scrape-secret",
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    tenants = ("a", "b", "c", "d", "q")
    with secured_api(tmp_path_factory.mktemp("secured"), tenants, **LIMITS) as svc:
        yield svc


@pytest.fixture(scope="module")
def a_comparison(api: SecuredApi) -> str:
    with api.client("a") as a:
        resp = a.post("/v1/comparisons", json=tiny_spec("a's", seeds=[0], epochs=1))
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])


def test_missing_wrong_and_malformed_keys_are_401(api: SecuredApi) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer ab_not-a-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer " + "x" * 5000},
    ):
        resp = httpx.get(api.url + "/v1/comparisons", headers=headers, timeout=10)
        assert_problem(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer")
    for path in ("/healthz", "/openapi.json", "/docs"):
        assert httpx.get(api.url + path, timeout=10).status_code == 200, path
    # /metrics needs ARCHBENCH_METRICS_TOKEN when it is set; a tenant's
    # API key is not it.
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {api.keys['a']}"},
    ):
        resp = httpx.get(api.url + "/metrics", headers=headers, timeout=10)
        assert_problem(resp, 401)
    resp = httpx.get(
        api.url + "/metrics", headers={"Authorization": "Bearer scrape-secret"}, timeout=10
    )
    assert resp.status_code == 200
    assert "archbench_http_requests_total" in resp.text


ENDPOINTS = [
    ("GET", "/v1/comparisons/{id}"),
    ("POST", "/v1/comparisons/{id}/cancel"),
    ("GET", "/v1/comparisons/{id}/trials"),
    ("GET", "/v1/comparisons/{id}/trials?format=csv"),
    ("GET", "/v1/comparisons/{id}/metrics"),
    ("GET", "/v1/comparisons/{id}/metrics?format=csv"),
    ("GET", "/v1/comparisons/{id}/report"),
    ("GET", "/v1/comparisons/{id}/report?format=md"),
    ("GET", "/v1/comparisons/{id}/report.png"),
    ("GET", "/v1/comparisons/{id}/events"),
    ("GET", "/v1/comparisons/{id}/deliveries"),
]


def _anonymised(resp: httpx.Response, cid: str) -> dict[str, Any]:
    body = assert_problem(resp, 404)
    return {k: str(v).replace(cid, "ID") for k, v in body.items()}


def test_another_tenants_comparison_is_404_like_a_missing_one(
    api: SecuredApi, a_comparison: str
) -> None:
    missing = str(uuid.uuid4())
    with api.client("a") as a, api.client("b") as b:
        # A's poll puts it in the api's status cache; B must still get the 404 of a missing one.
        assert a.get(f"/v1/comparisons/{a_comparison}").status_code == 200
        for method, path in ENDPOINTS:
            theirs = b.request(method, path.format(id=a_comparison))
            absent = b.request(method, path.format(id=missing))
            assert _anonymised(theirs, a_comparison) == _anonymised(absent, missing), path
            assert theirs.headers["content-type"] == absent.headers["content-type"]
        assert a_comparison not in b.get("/v1/comparisons").text
        assert a_comparison in a.get("/v1/comparisons").text
        # B's cancel did nothing to A's comparison.
        assert a.get(f"/v1/comparisons/{a_comparison}").json()["status"] == "queued"


def _cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


BAD_CURSORS = [
    "%%%",
    base64.urlsafe_b64encode(b"{not json").decode(),
    _cursor({"a": 1}),
    _cursor([None, 1]),
    _cursor(["a", "b"]),
    _cursor([True, 1]),
    _cursor([2**70, 0]),
    _cursor(["2025-01-01T00:00:00+00:00", None]),
    _cursor(["yesterday", "x"]),
    _cursor(["0001-01-01T00:00:00+05:00", "x"]),
    _cursor(["2025-01-01T00:00:00+00:00", "nul\u0000"]),
    _cursor(["u", 1, None]),
    _cursor(["b", "x", None]),
]


def test_every_cursor_route_answers_a_malformed_cursor_with_a_located_422(
    api: SecuredApi, a_comparison: str
) -> None:
    routes = [
        "/v1/comparisons",
        f"/v1/comparisons/{a_comparison}/trials",  # streamed: a bad cursor broke it mid-way
        f"/v1/comparisons/{a_comparison}/trials?limit=2",
        f"/v1/comparisons/{a_comparison}/trials?format=csv",
        "/v1/datasets",
    ]
    with api.client("a") as a:
        for route in routes:
            sep = "&" if "?" in route else "?"
            for cursor in BAD_CURSORS:
                resp = a.get(f"{route}{sep}cursor={cursor}")
                body = assert_problem(resp, 422)
                assert body["errors"][0]["loc"] == ["query", "cursor"], (route, cursor, body)
        # The cursors the service issues still work.
        assert a.post("/v1/comparisons", json=tiny_spec("a's 2nd")).status_code == 202
        for route in routes[0], routes[2], routes[4]:
            first = a.get(route, params={"limit": 1})
            assert first.status_code == 200, first.text
            cursor = first.json()["next_cursor"]
            assert cursor, route
            second = a.get(route, params={"limit": 1, "cursor": cursor})
            assert second.status_code == 200, second.text
            assert second.json()["items"] != first.json()["items"]


def test_revoked_key_is_refused(api: SecuredApi) -> None:
    key = api.new_key("a", "to-revoke")
    with api.client(key=key) as c:
        assert c.get("/v1/comparisons").status_code == 200
    listed = api.cli("keys", "list", "--tenant", "a", "--json")
    assert listed.returncode == 0, listed.stderr
    assert key not in listed.stdout  # only the prefix is ever shown
    (row,) = [
        r
        for r in json.loads(listed.stdout)
        if key.startswith(r["prefix"]) and r["name"] == "to-revoke"
    ]
    done = api.cli("keys", "revoke", row["id"])
    assert done.returncode == 0, done.stderr
    assert "within 5 s" in done.stdout, done.stdout
    # The api trusts a found key for ARCHBENCH_KEY_CACHE_SECONDS (5 s by default): refused
    # within that, and for good.
    revoked = time.monotonic()
    with api.client(key=key) as c:
        while c.get("/v1/comparisons").status_code != 401:
            assert time.monotonic() - revoked < 5 + 1, "a revoked key still worked after 6 s"
            time.sleep(0.2)
        for _ in range(3):
            assert_problem(c.get("/v1/comparisons"), 401)
    assert api.cli("keys", "revoke", str(uuid.uuid4())).returncode == 1
    with api.client("a") as a:  # the tenant's other key still works
        assert a.get("/v1/comparisons").status_code == 200


def _big(i: int) -> dict[str, Any]:
    return {
        "name": f"big{i}",
        "layers": [
            {"type": "Conv2D", "filters": 64, "kernel_size": 3, "activation": "relu"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }


@pytest.mark.parametrize(
    ("change", "loc", "figure"),
    [
        ({"variants": [small_mlp(f"m{i}") for i in range(4)]}, ["body", "variants"], "3"),
        ({"seeds": [0, 1, 2, 3]}, ["body", "seeds"], "3"),
        ({"training": {"epochs": 6}}, ["body", "training", "epochs"], "5"),
        (
            {
                "variants": [small_mlp(f"m{i}") for i in range(3)],
                "seeds": [0, 1, 2],
                "training": {"epochs": 3},
            },
            ["body", "training", "epochs"],
            "20",
        ),
        ({"variants": [_big(0)]}, ["body", "variants", 0], "100000"),
    ],
    ids=["variants", "seeds", "epochs", "trial-epochs", "params"],
)
def test_spec_limits_are_located_422(
    api: SecuredApi, change: dict[str, Any], loc: list[Any], figure: str
) -> None:
    with api.client("b") as b:
        before = len(b.get("/v1/comparisons").json()["items"])
        resp = b.post("/v1/comparisons", json={**tiny_spec("limits"), **change})
        body = assert_problem(resp, 422)
        hits = [e for e in body["errors"] if e["loc"][: len(loc)] == loc]
        assert hits, body
        assert any(figure in e["msg"].replace(",", "") for e in hits), body
        assert len(b.get("/v1/comparisons").json()["items"]) == before


def test_flops_limit(api: SecuredApi) -> None:
    variant = {
        "name": "wide",
        "layers": [
            {"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
            {"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
            {"type": "GlobalAveragePooling2D"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }
    with api.client("b") as b:
        body = assert_problem(
            b.post("/v1/comparisons", json=tiny_spec("flops", variants=[variant])), 422
        )
        assert any("flop" in e["msg"].lower() for e in body["errors"]), body


def test_body_limit_413_with_and_without_content_length(api: SecuredApi) -> None:
    big = b'{"name": "' + b"x" * 30000 + b'"}'
    with api.client("b") as b:
        body = assert_problem(
            b.post("/v1/comparisons", content=big, headers={"Content-Type": "application/json"}),
            413,
        )
        assert "20,000" in body["detail"]

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 1000):
                yield big[i : i + 1000]

        resp = b.post(
            "/v1/comparisons", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in {k.lower() for k in resp.request.headers}
        assert_problem(resp, 413)
        assert b.get("/healthz").status_code == 200


def test_active_comparisons_quota_429(api: SecuredApi) -> None:
    with api.client("c") as c:
        for i in range(3):
            assert c.post("/v1/comparisons", json=tiny_spec(f"q{i}")).status_code == 202
        resp = c.post("/v1/comparisons", json=tiny_spec("one too many"))
        body = assert_problem(resp, 429)
        assert int(resp.headers["retry-after"]) > 0
        assert "3" in body["detail"]
        assert len(c.get("/v1/comparisons").json()["items"]) == 3
    with api.client("b") as b:  # another tenant is not affected
        assert b.post("/v1/comparisons", json=tiny_spec("b ok")).status_code == 202


def test_concurrent_submits_stop_at_the_quota(api: SecuredApi) -> None:
    # Tenant q, limit 3 (LIMITS): ten submits at once, over real HTTP, create exactly three.
    def submit(i: int) -> httpx.Response:
        with api.client("q") as q:
            return q.post("/v1/comparisons", json=tiny_spec(f"race{i}", seeds=[0], epochs=1))

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(submit, range(10)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 3 + [429] * 7, codes
    for resp in responses:
        if resp.status_code == 429:
            assert_problem(resp, 429)
            assert int(resp.headers["retry-after"]) > 0
    with api.client("q") as q:
        assert len(q.get("/v1/comparisons").json()["items"]) == 3


def test_same_idempotency_key_in_two_tenants_makes_two_comparisons(api: SecuredApi) -> None:
    spec = tiny_spec("idem", seeds=[0], epochs=1)
    headers = {"Idempotency-Key": "shared-key-1"}
    with api.client("b") as b, api.client("d") as d:
        first_b = b.post("/v1/comparisons", json=spec, headers=headers)
        first_d = d.post("/v1/comparisons", json=spec, headers=headers)
        assert first_b.status_code == first_d.status_code == 202, (first_b.text, first_d.text)
        b_id, d_id = first_b.json()["id"], first_d.json()["id"]
        assert b_id != d_id
        # Each replay answers its own tenant's comparison, and the other stays invisible.
        assert b.post("/v1/comparisons", json=spec, headers=headers).json()["id"] == b_id
        assert d.post("/v1/comparisons", json=spec, headers=headers).json()["id"] == d_id
        assert_problem(b.get(f"/v1/comparisons/{d_id}"), 404)
        assert [c["id"] for c in d.get("/v1/comparisons").json()["items"]] == [d_id]


def test_distributed_refuses_to_start_without_auth(api: SecuredApi) -> None:
    # Postgres, not production: a distributed deployment (more in test_security_startup.py).
    env = {**api.env, "ARCHBENCH_AUTH": "false"}
    assert "ARCHBENCH_ENV" not in env
    log = api.log.with_name("noauth.log")
    proc = start([*PY, "api", "--port", str(free_port())], env, log)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail("a distributed api started with auth off")
    assert proc.returncode != 0
    text = log.read_text()
    assert "refusing to start: a distributed deployment" in text, text[-2000:]
    assert "ARCHBENCH_ALLOW_NO_AUTH" in text
    # One clear line: not the reason and then uvicorn's traceback.
    assert "Traceback" not in text, text[-3000:]
    assert "Application startup failed" not in text
    assert text.count("refusing to start") == 1, text[-3000:]

    port = free_port()
    env["ARCHBENCH_ALLOW_NO_AUTH"] = "true"
    proc = start([*PY, "api", "--port", str(port)], env, log)
    try:
        wait_http(f"http://127.0.0.1:{port}", proc, log)
    finally:
        stop(proc)


def test_activation_memory_is_limited_at_submit_and_shown_by_the_analysis(
    api: SecuredApi,
) -> None:
    """Activation memory: 20 parameters and 10 FLOPs, but 2.37 GB per sample of activations."""
    layers = [
        {"type": "Reshape", "target_shape": [8, 8, 1]},
        *[{"type": "ZeroPadding2D", "padding": 64}] * 190,
        {"type": "GlobalAveragePooling2D"},
        {"type": "Dense", "units": 10},
    ]
    spec = {
        "name": "padding bomb",
        "dataset": {"name": "digits"},
        "training": {"epochs": 1, "batch_size": 64},
        "seeds": [0],
        "variants": [{"name": "bomb", "layers": layers}],
    }
    with api.client("a") as a:
        body = assert_problem(a.post("/v1/comparisons", json=spec), 422)
        (error,) = body["errors"]
        assert error["loc"] == ["body", "variants", 0, "layers", 190]
        assert "ARCHBENCH_MAX_ACTIVATION_BYTES" in error["msg"]
        resp = a.post(
            "/v1/architectures/analyze",
            json={
                "variant": {"name": "small", "input_shape": [8, 8, 1], "layers": layers[:3]},
                "batch_size": 32,
            },
        )
        assert resp.status_code == 200, resp.text
    act = resp.json()["activations"]
    per_sample = [8 * 8 * 4, 136 * 136 * 4, 264 * 264 * 4]  # recomputed from the shapes
    assert act["largest_bytes_per_sample"] == max(per_sample)
    assert act["total_bytes_per_sample"] == sum(per_sample)
    assert act["batch_size"] == 32
    assert act["total_bytes_per_batch"] == 32 * sum(per_sample)
    assert act["largest_layer"] == "zero_padding2d_1"
