"""The training knobs over HTTP: a knob the optimizer or the loss does not take, a malformed
schedule and a variant's training that does not fit are 422 problems located at the field,
reported with the body's other errors; a valid one is accepted and shown back as stored.

The api runs in process on an embedded SQLite database (as in test_errors_one_answer.py); the
broker is the embedded SQL one, which nothing consumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import assert_problem, small_cnn, small_mlp, tiny_spec
from tests.support.services import in_process_database


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from api.app import create_app
    from core.trials.queue import client_app

    tmp: Path = tmp_path_factory.mktemp("knobs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHBENCH_DATA_DIR", str(tmp))
        with in_process_database(f"sqlite:///{tmp / 'archbench.db'}", mp):
            client_app.cache_clear()
            try:
                with TestClient(create_app()) as c:
                    yield c
            finally:
                client_app.cache_clear()


def _errors(body: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    return {tuple(e["loc"]): e["msg"] for e in body["errors"]}


def test_knobs_that_do_not_fit_are_located(client: TestClient) -> None:
    spec = tiny_spec("knobs")
    spec["training"] = {
        **spec["training"],
        "momentum": 0.9,
        "label_smoothing": 0.1,
        "learning_rate": {"schedule": "cosine", "initial_learning_rate": 0.1, "decay_steps": 0},
    }
    errors = _errors(assert_problem(client.post("/v1/comparisons", json=spec), 422))
    assert set(errors) == {
        ("body", "training", "momentum"),
        ("body", "training", "label_smoothing"),
        ("body", "training", "learning_rate", "decay_steps"),
    }
    assert "adam takes no momentum" in errors[("body", "training", "momentum")]


def test_a_variants_training_is_located_with_the_bodys_other_errors(client: TestClient) -> None:
    own = {**small_mlp("own"), "training": {"momentum": 0.9, "batch_size": 8}}
    spec = tiny_spec("own", seeds=[], variants=[small_cnn(), own])
    errors = _errors(assert_problem(client.post("/v1/comparisons", json=spec), 422))
    assert ("body", "seeds") in errors
    assert ("body", "variants", 1, "training", "batch_size") in errors
    # Fixed the budget key, momentum on adam is next, still located in the variant.
    own["training"] = {"momentum": 0.9}
    spec = tiny_spec("own", variants=[small_cnn(), own])
    errors = _errors(assert_problem(client.post("/v1/comparisons", json=spec), 422))
    assert list(errors) == [("body", "variants", 1, "training", "momentum")]


def test_valid_knobs_are_accepted_and_stored(client: TestClient) -> None:
    cosine = {
        "schedule": "warmup_cosine",
        "initial_learning_rate": 0.001,
        "decay_steps": 40,
        "warmup_target": 0.01,
        "warmup_steps": 5,
    }
    own = {**small_mlp("sgd"), "training": {"optimizer": "sgd", "momentum": 0.9, "nesterov": True}}
    spec = tiny_spec("valid", variants=[small_cnn(), own])
    spec["training"] = {**spec["training"], "learning_rate": cosine, "clipnorm": 1.0}
    resp = client.post("/v1/comparisons", json=spec)
    assert resp.status_code in (201, 202), resp.text
    stored = client.get(f"/v1/comparisons/{resp.json()['id']}").json()["spec"]
    assert stored["training"]["learning_rate"] == {**cosine, "alpha": 0.0}
    assert stored["training"]["clipnorm"] == 1.0
    assert "momentum" not in stored["training"]
    assert "training" not in stored["variants"][0]
    assert stored["variants"][1]["training"] == own["training"]
