"""The Python client (archbench.client) against a live service: every method, errors, frames."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from archbench import (
    AsyncClient,
    Client,
    Conflict,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    WaitTimeout,
)
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import ROOT, Service, free_port

pytestmark = [pytest.mark.services, pytest.mark.worker]


def _keras_mlp() -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="keras_mlp",
    )


@pytest.fixture(scope="module")
def finished(distributed: Service) -> dict[str, Any]:
    """One comparison submitted with a Keras model among its variants, followed to its end."""
    spec = tiny_spec("client-e2e", seeds=[0], epochs=1, samples=200)
    key = uuid.uuid4().hex
    with Client(distributed.url) as ab:
        model = _keras_mlp()  # one object: Keras numbers layer names per construction
        created = ab.submit(spec, variants=[small_mlp(), model], idempotency_key=key)
        again = ab.submit(spec, variants=[small_mlp(), model], idempotency_key=key)
        assert again["id"] == created["id"]
        events = list(ab.events(created["id"], timeout=240))
        done = ab.wait(created["id"], timeout=60)
    assert done["status"] == "succeeded", (done, distributed.log("worker")[-3000:])
    return {"comparison": done, "events": events}


def test_submit_keras_events_and_wait(finished: dict[str, Any]) -> None:
    c = finished["comparison"]
    assert [v["name"] for v in c["spec"]["variants"]] == ["mlp", "keras_mlp"]
    assert c["spec"]["variants"][1]["source"] == "keras_config"
    kinds = [e.event for e in finished["events"]]
    assert kinds[-1] == "comparison_finished"
    assert finished["events"][-1].data["status"] == "succeeded"
    assert {"epoch", "trial_finished", "progress"} <= set(kinds)
    epochs = [e.data for e in finished["events"] if e.event == "epoch"]
    assert {(e["variant"], e["epoch"]) for e in epochs} == {("mlp", 1), ("keras_mlp", 1)}
    assert all("val_accuracy" in e for e in epochs)


def test_reads_as_dicts_and_frames(distributed: Service, finished: dict[str, Any]) -> None:
    cid = finished["comparison"]["id"]
    with Client(distributed.url) as ab:
        assert ab.get(cid)["status"] == "succeeded"
        assert cid in [c["id"] for c in ab.list_comparisons(name="client-e2e", limit=500)]
        assert all(
            c["status"] == "succeeded" for c in ab.list_comparisons(status="succeeded", limit=3)
        )
        trials = ab.trials(cid)
        assert {(t["variant"], t["seed"]) for t in trials} == {("mlp", 0), ("keras_mlp", 0)}
        tf = ab.trials(cid, as_frame=True)
        assert len(tf) == 2
        assert str(tf["finished_at"].dtype).startswith("datetime64")
        mf = ab.metrics(cid, as_frame=True)
        assert {"trial_id", "variant", "seed", "epoch", "loss", "val_accuracy"} <= set(mf.columns)
        assert len(mf) == 2
        assert len(ab.metrics(cid, variant="mlp")) == 1
        report = ab.report(cid)
        assert report["final"] is True
        assert isinstance(report["verdict"], str)
        assert report["verdict"]
        rf = ab.report(cid, as_frame=True)
        assert set(rf["name"]) == {"mlp", "keras_mlp"}
        assert "|" in ab.report_text(cid, "md")
        assert json.loads(ab.report_text(cid, "json"))["comparison_id"] == cid
        assert ab.report_png(cid).startswith(b"\x89PNG")
        assert ab.csv(cid, "trials").splitlines()[0].startswith("id,")
        assert ab.deliveries(cid) == []
        analysis = ab.analyze(_keras_mlp())
        assert analysis["params"] == _keras_mlp().count_params()


def test_errors_are_typed_with_the_problem(distributed: Service, tmp_path: Path) -> None:
    with Client(distributed.url) as ab:
        bad = tiny_spec("client-bad")
        bad["variants"][0]["layers"][0]["filters"] = 0
        with pytest.raises(InvalidInput) as exc:
            ab.submit(bad)
        assert exc.value.status == 422
        assert exc.value.problem["type"].endswith("/invalid-input")
        assert ["body", "variants", 0, "layers", 0, "filters"] in [
            e["loc"] for e in exc.value.errors
        ]
        with pytest.raises(NotFound) as nf:
            ab.get(str(uuid.uuid4()))
        assert nf.value.status == 404
        with pytest.raises(NotFound):
            list(ab.events(str(uuid.uuid4())))
        with pytest.raises(ValueError, match="cannot read"):
            ab.submit(tmp_path / "missing.json")
        spec_file = tmp_path / "spec.json"
        spec_file.write_text(json.dumps(tiny_spec("client-file", seeds=[0], epochs=1)))
        pending = ab.submit(spec_file)
        assert pending["name"] == "client-file"
        with pytest.raises(WaitTimeout) as wt:
            ab.wait(pending["id"], timeout=0.01)
        assert wt.value.comparison is not None
        ab.cancel(pending["id"])
        assert ab.wait(pending["id"], timeout=120)["status"] == "cancelled"
        with pytest.raises(Conflict):
            ab.cancel(pending["id"])
    with (
        Client(f"http://127.0.0.1:{free_port()}") as nowhere,
        pytest.raises(ServiceUnavailable, match="cannot reach"),
    ):
        nowhere.get(str(uuid.uuid4()))


def test_frames_say_how_to_get_pandas(
    distributed: Service, finished: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with Client(distributed.url) as ab, pytest.raises(ImportError, match="pip install pandas"):
        ab.trials(finished["comparison"]["id"], as_frame=True)


def test_async_client(distributed: Service, finished: dict[str, Any]) -> None:
    cid = finished["comparison"]["id"]

    async def go() -> None:
        async with AsyncClient(distributed.url) as ab:
            assert (await ab.get(cid))["status"] == "succeeded"
            assert (await ab.wait(cid, timeout=5))["status"] == "succeeded"
            assert len(await ab.trials(cid)) == 2
            assert len(await ab.metrics(cid, as_frame=True)) == 2
            assert (await ab.report(cid))["verdict"]
            assert (await ab.report_png(cid)).startswith(b"\x89PNG")
            assert cid in [c["id"] for c in await ab.list_comparisons(limit=500)]
            kinds = [e.event async for e in ab.events(cid, timeout=30)]
            assert kinds[-1] == "comparison_finished"
            assert await ab.deliveries(cid) == []
            with pytest.raises(NotFound):
                await ab.cancel(str(uuid.uuid4()))
            with pytest.raises(InvalidInput):
                await ab.submit({"name": "x"})

    asyncio.run(go())


def test_the_notebook_example_runs(distributed: Service) -> None:
    """examples/client_example.py, run as a script against the live service (ARCHBENCH_URL)."""
    env = {**distributed.env, "ARCHBENCH_URL": distributed.url}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client_example.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "conv16 seed 0 epoch 1:" in out
    assert "conv8x2 seed 2 epoch 2:" in out
    assert "finished: succeeded" in out
    verdict = out.split("finished: succeeded", 1)[1].strip().splitlines()
    assert verdict
    assert verdict[0]  # the report's verdict, printed by the example
    assert "['body', 'variants', 0" in out  # the located errors of the broken submit
