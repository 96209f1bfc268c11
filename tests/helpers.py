"""Small specs and polling helpers shared by the integration tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}


def small_cnn(name: str = "cnn") -> dict[str, Any]:
    return {
        "name": name,
        "layers": [
            {"type": "Conv2D", "filters": 4, "kernel_size": [3, 3], "activation": "relu"},
            {"type": "MaxPooling2D", "pool_size": [2, 2]},
            {"type": "Flatten"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }


def small_mlp(name: str = "mlp") -> dict[str, Any]:
    return {
        "name": name,
        "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 16, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }


def tiny_spec(
    name: str = "tiny",
    *,
    seeds: list[int] | None = None,
    epochs: int = 2,
    samples: int = 300,
    variants: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": {
            "name": "mnist_5k",
            "test_split": 0.2,
            "validation_split": 0.1,
            "split_seed": 0,
            "max_samples": samples,
        },
        "training": {"epochs": epochs, "batch_size": 32},
        "seeds": seeds if seeds is not None else [0, 1],
        # These specs exist to make a worker train: never answer them from an earlier run.
        "reuse": False,
        "variants": variants or [small_cnn(), small_mlp()],
    }


def wait_done(client: httpx.Client, comparison_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        c = client.get(f"/v1/comparisons/{comparison_id}").json()
        if c["status"] in TERMINAL:
            return c
        if time.monotonic() > deadline:
            raise AssertionError(f"comparison still {c['status']} after {timeout} s: {c}")
        time.sleep(0.5)


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert "Traceback" not in resp.text
    return body
