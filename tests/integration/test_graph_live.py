"""examples/residual.json, on a small subset, through the api and a real worker: the graphs
train, the similarity covers their merge nodes, the report says how they differ."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.support.helpers import wait_done
from tests.support.services import ROOT, Service

pytestmark = [pytest.mark.services, pytest.mark.worker]

PROBE = 30


def test_residual_example_trains_and_compares_its_merge_nodes(distributed: Service) -> None:
    spec = json.loads((ROOT / "examples" / "residual.json").read_text())
    spec["dataset"]["max_samples"] = 200
    spec["training"]["epochs"] = 1
    spec["seeds"] = [0, 1]
    spec["reuse"] = False
    spec["analysis"] = {"predictions": True, "similarity": True, "probe_size": PROBE}
    with distributed.client() as client:
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        cid = resp.json()["id"]
        done = wait_done(client, cid, timeout=900)
        assert done["status"] == "succeeded", done
        report = client.get(f"/v1/comparisons/{cid}/report").json()
        sim = client.get(
            f"/v1/comparisons/{cid}/similarity", params={"a": "plain", "b": "residual"}
        ).json()
        png = client.get(
            f"/v1/comparisons/{cid}/similarity.png", params={"a": "plain", "b": "residual"}
        )
    # Every node but the skipped types, merges included, each after the nodes it takes.
    assert sim["layers_b"] == [
        "stem", "c1", "c2", "skip1", "r1", "c3", "c4", "skip2", "r2", "pool", "gap", "out",
    ]  # fmt: skip
    assert sim["layers_a"] == ["stem", "c1", "c2", "r1", "c3", "c4", "r2", "pool", "gap", "out"]
    cka = np.array(sim["cka"], dtype=float)
    assert cka.shape == (10, 12)
    assert np.all((cka >= 0.0) & (cka <= 1.0))
    variants = {v["name"]: v for v in report["variants"]}
    structure = variants["residual"]["analysis"]["structure"]
    assert structure["against"] == "plain"
    assert [d["text"] for d in structure["differences"]] == [
        "residual adds an Add before ReLU",
        "residual adds a second Add before ReLU",
    ]
    residual = variants["residual"]["analysis"]
    assert (residual["merge_points"], residual["params"]) == (2, variants["plain"]["params"])
    assert png.status_code == 200
    keep = os.environ.get("ARCHBENCH_KEEP_PNG")
    if keep:  # to look at it
        Path(keep).write_bytes(png.content)
