"""Small specs and polling helpers shared by the integration tests."""

from __future__ import annotations

import csv
import io
import math
import time
from typing import Any

import httpx

from core.spec import StoredSpec
from core.status import TERMINAL
from models.spec import LayerSpec, parse_variant

METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
CSV_COLUMNS = ["trial_id", "variant", "seed", "stage", "replicate", "epoch", *METRIC_KEYS]


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


def native_layers(variant: dict[str, Any]) -> list[LayerSpec]:
    """The parsed ``layers`` of a variant given as native layers (not a ``keras_config``)."""
    layers = parse_variant(variant).layers
    assert layers is not None, "a variant of native layers"
    return layers


def stored_spec(name: str = "stored", **fields: Any) -> StoredSpec:
    """A spec as the database holds it, for the rows a test writes itself: ``small_cnn`` and
    ``small_mlp`` on mnist_5k, seeds [0, 1], and ``fields`` over the top."""
    variants = [{**v, "input_shape": [28, 28, 1]} for v in (small_cnn(), small_mlp())]
    return StoredSpec.load(
        {
            "name": name,
            "dataset": {"name": "mnist_5k", "split": "per_seed"},
            "training": {},
            "seeds": [0, 1],
            "variants": variants,
            **fields,
        }
    )


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
        c: dict[str, Any] = client.get(f"/v1/comparisons/{comparison_id}").json()
        if c["status"] in TERMINAL:
            return c
        if time.monotonic() > deadline:
            raise AssertionError(f"comparison still {c['status']} after {timeout} s: {c}")
        time.sleep(0.5)


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert "Traceback" not in resp.text
    return body


def assert_trained(
    client: httpx.Client, comparison_id: str, spec: dict[str, Any]
) -> list[dict[str, Any]]:
    """What every deployment must show for a succeeded comparison of ``spec``: one trial per
    (variant, seed), params and FLOPs equal to the analysis, epochs 1..N once each with finite
    metric values, the device recorded, and the same rows as CSV. Returns the trials."""
    epochs = spec["training"]["epochs"]
    listing = client.get(f"/v1/comparisons/{comparison_id}/trials").json()
    trials: list[dict[str, Any]] = listing["items"]
    assert sorted((t["variant"], t["seed"]) for t in trials) == sorted(
        (v["name"], seed) for v in spec["variants"] for seed in spec["seeds"]
    )
    analyses = {}
    for variant in spec["variants"]:
        resp = client.post(
            "/v1/architectures/analyze",
            json={"variant": variant, "dataset": {"name": spec["dataset"]["name"]}},
        )
        assert resp.status_code == 200, resp.text
        analyses[variant["name"]] = resp.json()
    for t in trials:
        assert t["status"] == "succeeded", t
        assert t["epochs_done"] == epochs, t
        assert t["params"] == analyses[t["variant"]]["params"], t
        assert t["flops"] == analyses[t["variant"]]["flops"], t
        assert 0.0 <= t["test_accuracy"] <= 1.0, t
        assert math.isfinite(t["test_loss"]), t
        assert t["test_loss"] > 0, t
        assert t["train_seconds"] > 0, t
        assert t["device"], t
        assert t["worker"], t

    metrics = client.get(
        f"/v1/comparisons/{comparison_id}/metrics", params={"limit": len(trials) * epochs + 1}
    ).json()["items"]
    by_trial: dict[str, list[int]] = {t["id"]: [] for t in trials}
    for m in metrics:
        by_trial[m["trial_id"]].append(m["epoch"])
        for key in METRIC_KEYS:
            assert isinstance(m[key], float), (key, m)
            assert math.isfinite(m[key]), (key, m)
    for trial_id, seen in by_trial.items():
        assert sorted(seen) == list(range(1, epochs + 1)), (trial_id, seen)  # once each

    as_csv = client.get(f"/v1/comparisons/{comparison_id}/metrics", params={"format": "csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows
    assert list(rows[0]) == CSV_COLUMNS
    assert sorted((r["trial_id"], int(r["epoch"])) for r in rows) == sorted(
        (m["trial_id"], m["epoch"]) for m in metrics
    )
    by_key = {(m["trial_id"], m["epoch"]): m for m in metrics}
    for r in rows:
        for key in METRIC_KEYS:
            want = by_key[r["trial_id"], int(r["epoch"])][key]
            assert math.isclose(float(r[key]), want, rel_tol=1e-9), (key, r, want)
    return trials
