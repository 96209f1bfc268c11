"""The paired design and adaptive seeds on the real stack (api, Celery worker, Postgres, Redis,
Keras): the paired design decides clear cases at ``min`` seeds, tells "equivalent" from "we
don't know yet" by the margin, adds rounds of seeds while undecided, and counts a diverged
trial instead of dropping it; a split that cannot be drawn and an input shape the data does
not have are located 422s at submit. Tiny: 8x8 digits, 600 samples, two epochs of small dense
models."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.helpers import assert_problem, wait_done
from tests.support.services import Service

pytestmark = [pytest.mark.services, pytest.mark.worker]


def dense(name: str, units: int, init: str = "glorot_uniform") -> dict[str, Any]:
    return {
        "name": name,
        "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": units, "activation": "relu", "kernel_initializer": init},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }


# The same function under two names: a Dropout that never drops (rate 1e-9) is the identity,
# but building it draws a seed, so the Dense layers after it start from other weights of the
# same distribution: the two differ seed by seed by noise alone. (The same layers twice would
# be bit-identical at every seed: the paired design fixes everything else.)
SAME_A = dense("same_a", 16)
SAME_B = {
    "name": "same_b",
    "layers": [SAME_A["layers"][0], {"type": "Dropout", "rate": 1e-9}, *SAME_A["layers"][1:]],
}


def spec(name: str, variants: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": {"name": "digits", "max_samples": 600},
        "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.01},
        "reuse": False,
        "variants": variants,
        **over,
    }


def pair(report: dict[str, Any]) -> dict[str, Any]:
    only: dict[str, Any]
    [only] = report["pairwise"]
    return only


def seeds_of(client: httpx.Client, cid: str) -> dict[str, list[int]]:
    trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
    out: dict[str, list[int]] = {}
    for t in trials:
        assert t["status"] == "succeeded", t
        out.setdefault(t["variant"], []).append(t["seed"])
    return {k: sorted(v) for k, v in out.items()}


def test_a_clear_difference_is_decided_at_min_seeds(distributed: Service) -> None:
    body = spec(
        "clear",
        [dense("strong", 32), dense("weak", 1)],  # a one-unit bottleneck cannot learn digits
        # Pocock's boundary: the one that lets a clear case stop at the first look.
        seeds={"min": 3, "max": 6, "boundary": "pocock"},
        baseline="strong",
    )
    with distributed.client() as client:
        resp = client.post("/v1/comparisons", json=body)
        assert resp.status_code == 202, resp.text
        assert resp.json()["progress"]["round"] == 1
        assert resp.json()["progress"]["rounds_max"] == 4
        done = wait_done(client, resp.json()["id"])
        assert done["status"] == "succeeded", done
        assert done["progress"]["trials_total"] == 6
        assert (done["progress"]["round"], done["progress"]["rounds_max"]) == (1, 4)
        assert seeds_of(client, done["id"]) == {"strong": [0, 1, 2], "weak": [0, 1, 2]}
        report = client.get(f"/v1/comparisons/{done['id']}/report").json()
    p = pair(report)
    assert (p["a"], p["b"]) == ("strong", "weak")
    assert p["conclusion"] == "a_better", p
    assert report["design"]["split"] == "per_seed"
    assert report["design"]["looks"]["current"] == 1


def test_the_margin_tells_equivalent_from_undecided_and_rounds_add_seeds(
    distributed: Service,
) -> None:
    with distributed.client() as client:
        wide = client.post(
            "/v1/comparisons",
            json=spec("same-wide", [SAME_A, SAME_B], seeds=[0, 1, 2], equivalence_margin=0.5),
        ).json()
        # Adaptive, and a margin no noise fits in: round 1 (3 seeds) is undecided, so a
        # second round adds seed 3 to each variant, the last the schedule allows.
        tiny = client.post(
            "/v1/comparisons",
            json=spec(
                "same-tiny",
                [SAME_A, SAME_B],
                seeds={"min": 3, "max": 4},
                equivalence_margin=0.0001,
            ),
        ).json()
        seen: list[tuple[str, int, int]] = []
        deadline = time.monotonic() + 300
        while True:
            c = client.get(f"/v1/comparisons/{tiny['id']}").json()
            seen.append((c["status"], c["progress"]["trials_total"], c["progress"]["round"]))
            if c["status"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        assert c["status"] == "succeeded", c
        # Never "succeeded" between the rounds: only once the second round's trials exist.
        assert all(total == 8 for status, total, _ in seen if status == "succeeded"), seen
        assert (6, 1) in {(total, r) for _, total, r in seen}, seen
        assert (c["progress"]["trials_total"], c["progress"]["round"]) == (8, 2)
        assert c["progress"]["rounds_max"] == 2
        assert seeds_of(client, tiny["id"]) == {"same_a": [0, 1, 2, 3], "same_b": [0, 1, 2, 3]}
        tiny_report = client.get(f"/v1/comparisons/{tiny['id']}/report").json()
        # The events stream replays the story; its progress says which round it reached.
        with client.stream("GET", f"/v1/comparisons/{tiny['id']}/events") as stream:
            text = "".join(stream.iter_text())
        progress = [
            json.loads(line.removeprefix("data: "))
            for block in text.split("\n\n")
            if "event: progress" in block
            for line in block.splitlines()
            if line.startswith("data: ")
        ]
        assert progress[-1]["round"] == 2
        assert progress[-1]["rounds_max"] == 2

        wide_done = wait_done(client, wide["id"])
        assert wide_done["status"] == "succeeded"
        wide_report = client.get(f"/v1/comparisons/{wide['id']}/report").json()
    assert pair(wide_report)["conclusion"] == "equivalent", pair(wide_report)
    p = pair(tiny_report)
    assert p["conclusion"] == "inconclusive", p
    assert p["seeds_needed"] is not None
    assert p["seeds_needed"] > 4
    assert tiny_report["design"]["looks"]["current"] == 2
    assert tiny_report["design"]["looks"]["planned"] == 2


def test_a_diverged_trial_counts_and_is_evaluated(distributed: Service) -> None:
    unstable = {
        "name": "unstable",
        "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 32, "activation": "linear"},
            {"type": "Dense", "units": 32, "activation": "linear"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }
    body = spec(
        "diverges",
        [unstable],
        seeds=[0],
        training={"epochs": 3, "batch_size": 16, "optimizer": "sgd", "learning_rate": 10.0},
    )
    with distributed.client() as client:
        cid = client.post("/v1/comparisons", json=body).json()["id"]
        assert wait_done(client, cid)["status"] == "succeeded"
        [trial] = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
        metrics = client.get(f"/v1/comparisons/{cid}/metrics").json()["items"]
        report = client.get(f"/v1/comparisons/{cid}/report").json()
    assert trial["status"] == "succeeded"
    assert trial["stop_reason"] == "diverged"
    assert trial["test_loss"] is None  # NaN is not a number JSON can hold
    assert trial["test_accuracy"] is not None  # evaluated as it is
    assert trial["epochs_done"] < 3
    assert [m["epoch"] for m in metrics] == list(range(1, trial["epochs_done"] + 1))
    assert metrics[-1]["loss"] is None
    assert report["variants"][0]["n_diverged"] == 1


@pytest.mark.parametrize("design", ["per_seed", "fixed"])
def test_doomed_specs_are_located_422s_at_submit(distributed: Service, design: str) -> None:
    tiny = {"name": "digits", "max_samples": 60, "split": design}
    wrong_shape = {**dense("flat", 8), "input_shape": [784]}
    with distributed.client() as client:
        small = client.post("/v1/comparisons", json=spec("small", [dense("d", 8)], dataset=tiny))
        [error] = assert_problem(small, 422)["errors"]
        assert error["loc"] == ["body", "dataset", "max_samples"]
        shape = client.post(
            "/v1/comparisons",
            json=spec("shape", [wrong_shape], dataset={"name": "mnist_5k", "split": design}),
        )
        [error] = assert_problem(shape, 422)["errors"]
        assert error["loc"] == ["body", "variants", 0, "input_shape"]
        schedule = client.post(
            "/v1/comparisons", json=spec("sched", [dense("d", 8)], seeds={"min": 3, "max": 2})
        )
        [error] = assert_problem(schedule, 422)["errors"]
        assert error["loc"] == ["body", "seeds", "max"]
        nested = client.post(
            "/v1/comparisons", json=spec("sched", [dense("d", 8)], seeds={"min": 0, "max": 2})
        )
        [error] = assert_problem(nested, 422)["errors"]
        assert error["loc"] == ["body", "seeds", "min"]
        baseline = client.post(
            "/v1/comparisons", json=spec("base", [dense("d", 8)], baseline="nope")
        )
        [error] = assert_problem(baseline, 422)["errors"]
        assert error["loc"] == ["body", "baseline"]
