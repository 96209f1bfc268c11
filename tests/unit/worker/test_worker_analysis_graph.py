"""The probe's Grams over a graph: every node but the skipped types, merge outputs included,
in the model's topological order, each the CKA of the node's own activations."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from core.report.cka import cka_features, cka_matrix, unpack_gram  # noqa: E402
from core.spec import AnalysisSpec  # noqa: E402
from models import build_model, parse_variant  # noqa: E402
from tests.support.graphs import GRAPHS  # noqa: E402
from worker.analysis import analyse_model  # noqa: E402
from worker.datasets import load_dataset, make_split  # noqa: E402


def test_grams_cover_every_node_of_a_graph(tmp_path_factory: pytest.TempPathFactory) -> None:
    ds = load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"))
    split = make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0, max_samples=800)
    layers = parse_variant({"name": "g", "layers": GRAPHS["resnet_bottleneck"]}).layers or []
    model = build_model(layers, (8, 8, 1))
    result = analyse_model(model, split, AnalysisSpec(probe_size=150), batch_size=32)
    names = [g.name for g in result.grams]
    assert set(names) == {x["name"] for x in GRAPHS["resnet_bottleneck"]}
    assert "add" in names
    position = {name: i for i, name in enumerate(names)}
    for node in GRAPHS["resnet_bottleneck"]:  # every node after the nodes it takes
        assert all(position[p] < position[node["name"]] for p in node["inputs"] if p != "input")
    # The probe goes through in chunks of 128: the merges must line their chunks up.
    assert result.probe_size == 150
    x = split.x_test[:150]
    acts = [
        keras.Model(model.inputs, model.get_layer(name).output)
        .predict(x, verbose=0)
        .reshape(150, -1)
        for name in names
    ]
    grams = [unpack_gram(g.gram, 150) for g in result.grams]
    direct = np.array([[cka_features(p, q) for q in acts] for p in acts])
    np.testing.assert_allclose(cka_matrix(grams, grams), direct, atol=2e-3)
