"""Graphs in the native form (residual, Inception-style, DenseNet-style, squeeze-and-excitation)
and a corpus of malformed ones, shared by the models' tests and the api's."""
# ruff: noqa: E501 - the case tables read best one case per line

from __future__ import annotations

import random
from typing import Any

IMG = (8, 8, 3)


def conv(name: str, filters: int, k: int, inputs: list[str], **kw: Any) -> dict[str, Any]:
    return {
        "type": "Conv2D",
        "name": name,
        "filters": filters,
        "kernel_size": k,
        "padding": "same",
        "inputs": inputs,
        **kw,
    }


def node(kind: str, name: str, inputs: list[str], **kw: Any) -> dict[str, Any]:
    return {"type": kind, "name": name, "inputs": inputs, **kw}


def head(last: str) -> list[dict[str, Any]]:
    return [
        node("GlobalAveragePooling2D", "gap", [last]),
        node("Dense", "out", ["gap"], units=10, activation="softmax"),
    ]


GRAPHS: dict[str, list[dict[str, Any]]] = {
    "resnet_basic": [
        conv("stem", 8, 3, ["input"], activation="relu"),
        conv("a1", 8, 3, ["stem"], use_bias=False), node("BatchNormalization", "bn1", ["a1"]), node("ReLU", "r1", ["bn1"]),
        conv("a2", 8, 3, ["r1"], use_bias=False), node("BatchNormalization", "bn2", ["a2"]),
        conv("proj", 8, 1, ["stem"]), node("Add", "add", ["proj", "bn2"]), node("ReLU", "r2", ["add"]), *head("r2"),
    ],
    "resnet_bottleneck": [
        conv("stem", 16, 3, ["input"], activation="relu"),
        conv("reduce", 4, 1, ["stem"], activation="relu"), conv("mid", 4, 3, ["reduce"], activation="relu", strides=2),
        conv("expand", 16, 1, ["mid"]), conv("shortcut", 16, 1, ["stem"], strides=2),
        node("Add", "add", ["shortcut", "expand"]), node("Activation", "act", ["add"], activation="relu"), *head("act"),
    ],
    "preactivation": [
        conv("stem", 8, 3, ["input"]),
        node("BatchNormalization", "bn1", ["stem"]), node("ReLU", "r1", ["bn1"]), conv("c1", 8, 3, ["r1"]),
        node("BatchNormalization", "bn2", ["c1"]), node("ReLU", "r2", ["bn2"]), conv("c2", 12, 3, ["r2"]),
        conv("proj", 12, 1, ["r1"]), node("Add", "add", ["proj", "c2"]), *head("add"),
    ],
    "inception": [
        conv("stem", 8, 3, ["input"], activation="relu"),
        conv("b1", 4, 1, ["stem"]), conv("b3r", 2, 1, ["stem"]), conv("b3", 4, 3, ["b3r"]),
        conv("b5r", 2, 1, ["stem"]), conv("b5", 4, 5, ["b5r"]),
        node("MaxPooling2D", "pool", ["stem"], pool_size=3, strides=1, padding="same"), conv("bp", 4, 1, ["pool"]),
        node("Concatenate", "cat", ["b1", "b3", "b5", "bp"]), *head("cat"),
    ],
    "densenet": [
        conv("stem", 6, 3, ["input"]),
        node("BatchNormalization", "bn0", ["stem"]),
        conv("d1", 3, 3, ["stem"], activation="relu"), node("Concatenate", "c1", ["bn0", "d1"]),
        conv("d2", 3, 3, ["c1"], activation="relu"), node("Concatenate", "c2", ["c1", "d2"]),
        conv("d3", 3, 3, ["c2"], activation="relu"), node("Concatenate", "c3", ["c2", "d3"], axis=3),
        *head("c3"),
    ],
    "squeeze_excitation": [
        conv("stem", 8, 3, ["input"], activation="relu"), conv("body", 16, 3, ["stem"], activation="relu"),
        node("GlobalAveragePooling2D", "squeeze", ["body"], keepdims=True),
        node("Dense", "fc1", ["squeeze"], units=4, activation="relu"), node("Dense", "fc2", ["fc1"], units=16, activation="sigmoid"),
        node("Multiply", "scale", ["body", "fc2"]), conv("proj", 16, 1, ["stem"]),
        node("Add", "add", ["proj", "scale"]), *head("add"),
    ],
    "every_merge": [
        conv("a", 4, 3, ["input"]), conv("b", 4, 1, ["input"]), conv("c", 4, 3, ["input"], dilation_rate=2),
        node("Subtract", "sub", ["a", "b"]), node("Average", "avg", ["a", "b", "c"]),
        node("Maximum", "max", ["sub", "avg"]), node("Minimum", "min", ["max", "c"]),
        node("Flatten", "flat", ["min"]), node("Dense", "out", ["flat"], units=10, activation="softmax"),
    ],
}  # fmt: skip


def reordered(layers: list[dict[str, Any]], seed: int = 1) -> list[dict[str, Any]]:
    """The same graph written in another topological order (a random one that differs)."""
    rng = random.Random(seed)
    for _ in range(100):
        done: set[str] = {"input"}
        left, out = list(layers), []
        while left:
            ready = [x for x in left if set(x["inputs"]) <= done]
            pick = rng.choice(ready)
            left.remove(pick)
            out.append(pick)
            done.add(pick["name"])
        last = out.pop(out.index(layers[-1]))
        out.append(last)  # the output stays last
        if [x["name"] for x in out] != [x["name"] for x in layers]:
            return out
    raise AssertionError("this graph has one order only")


D = {"type": "Dense", "units": 10, "activation": "softmax"}
F = {"type": "Flatten"}
C = {"type": "Conv2D", "filters": 4, "kernel_size": 3}

# (case, layers, loc, fragment): each answered with a located 422 on mnist_5k (28, 28, 1).
MALFORMED: list[tuple[str, list[dict[str, Any]], list[Any], str]] = [
    ("cycle", [C | {"name": "a", "inputs": ["b"]}, C | {"name": "b", "inputs": ["a"]}, F, D], ["layers", 0, "inputs", 0], "a cycle: a -> b -> a"),
    ("self loop", [C | {"name": "a", "inputs": ["a"]}, F, D], ["layers", 0, "inputs", 0], "a cycle"),
    ("unknown name", [C, F | {"inputs": ["nope"]}, D], ["layers", 1, "inputs", 0], "unknown layer 'nope'"),
    ("forward name", [C | {"name": "a"}, F | {"inputs": ["d"]}, C | {"name": "d", "inputs": ["a"]}, D], ["layers", 1, "inputs", 0], "after this one"),
    ("add misfit", [C | {"name": "a"}, C | {"name": "b", "inputs": ["input"], "padding": "same"}, {"type": "Add", "inputs": ["a", "b"]}, F, D], ["layers", 2, "inputs"], "'a' gives (None, 26, 26, 4) and 'b' gives (None, 28, 28, 4)"),
    ("concat misfit", [C | {"name": "a"}, C | {"name": "b", "inputs": ["input"], "padding": "same"}, {"type": "Concatenate", "inputs": ["a", "b"]}, F, D], ["layers", 2, "inputs"], "'a' gives (None, 26, 26, 4) and 'b' gives (None, 28, 28, 4)"),
    ("concat rank misfit", [F | {"name": "f"}, C | {"name": "c", "inputs": ["input"]}, {"type": "Concatenate", "inputs": ["f", "c"]}, F, D], ["layers", 2, "inputs"], "'f' gives (None, 784)"),
    ("concat batch axis", [C | {"name": "a"}, C | {"name": "b", "inputs": ["input"]}, {"type": "Concatenate", "axis": 0, "inputs": ["a", "b"]}, F, D], ["layers", 2, "axis"], "axis 0 is not a feature axis"),
    ("branch never reaches output", [C | {"name": "a"}, C | {"name": "dead", "inputs": ["a"]}, F | {"inputs": ["a"]}, {"type": "Dropout", "rate": 0.1, "inputs": ["dead"], "name": "x"}, D | {"inputs": ["flatten"]}], ["layers", 1], "never reaches the output"),
    ("two outputs", [C | {"name": "a"}, F | {"name": "extra", "inputs": ["a"]}, F | {"name": "f", "inputs": ["a"]}, D | {"inputs": ["f"]}], ["layers", 1], "a second output"),
    ("output not last", [C | {"name": "a"}, F, D | {"name": "out"}, {"type": "Dropout", "rate": 0.1}], ["layers", 3], "a second output"),
    ("output unknown", [C, F, D], ["output"], "no layer is named 'zzz'"),
    ("duplicated name", [C | {"name": "a"}, C | {"name": "a"}, F, D], ["layers", 1, "name"], "already layer 0's"),
    ("reserved name", [C | {"name": "input"}, F, D], ["layers", 0, "name"], "names the model's input"),
    ("merge of one", [C | {"name": "a"}, {"type": "Add", "inputs": ["a"]}, F, D], ["layers", 1, "inputs"], "merges two or more inputs"),
    ("merge default input", [C, {"type": "Add"}, F, D], ["layers", 1, "inputs"], "merges two or more inputs"),
    ("subtract of three", [C | {"name": "a"}, {"type": "Subtract", "inputs": ["a", "a", "a"]}, F, D], ["layers", 1, "inputs"], "exactly 2 inputs"),
    ("conv of two", [C | {"name": "a"}, C | {"inputs": ["a", "input"]}, F, D], ["layers", 1, "inputs"], "takes one input, not 2"),
    ("bad name", [C | {"name": "a b"}, F, D], ["layers", 0, "name"], "may hold only"),
    ("inputs not names", [C | {"inputs": [3]}, F, D], ["layers", 0, "inputs", 0], "string"),
    ("merge output wrong classes", [F | {"name": "f"}, D | {"name": "a", "units": 6}, D | {"name": "b", "units": 6, "inputs": ["f"]}, {"type": "Concatenate", "inputs": ["a", "b"], "axis": -1}], ["layers", 3], "outputs (12,)"),
]  # fmt: skip


def malformed_variant(case: tuple[str, list[dict[str, Any]], list[Any], str]) -> dict[str, Any]:
    name, layers, _, _ = case
    out: dict[str, Any] = {"name": "bad", "layers": layers}
    if name == "output unknown":
        out["output"] = "zzz"
    if name == "output not last":
        out["output"] = "out"
    return out
