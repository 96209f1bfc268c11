"""How two variants' graphs differ, in words: an alignment of their layers.

Each graph is read in its canonical topological order (``models.graph``) as a sequence of
layer types; ``difflib.SequenceMatcher`` aligns the two sequences (the longest matching
runs first), so a layer of one variant with no counterpart in the other is ``added`` or
``removed``, and two aligned layers of one type whose arguments or inputs differ are
``changed``. Consecutive additions (or removals) are one difference, named by the layer that
follows them: for the article's models, "conv64x2 adds a second Conv2D(64) and a
MaxPooling2D(2) before Flatten". ``differences`` returns ``[{"op", "a", "b", "text"}]`` where
``a`` and ``b`` are the layer names in each variant (empty lists where there are none).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from models.graph import INPUT, Node, resolve, topological
from models.spec import Layer

__all__ = ["differences", "short", "structure"]

# The argument that names a layer briefly, per type (Conv2D(64), Dense(10), Dropout(0.2)...).
_MAIN = ("filters", "units", "pool_size", "rate", "kernel_size", "target_shape", "activation")
_ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def short(layer: Layer) -> str:
    """A layer as people write it: its type and its main argument."""
    args = layer.model_dump(mode="json", exclude={"type", "name", "inputs"})
    for key in _MAIN:
        value = args.get(key)
        if value is None:
            continue
        if isinstance(value, list) and len(set(value)) == 1:
            value = value[0]
        text = "x".join(map(str, value)) if isinstance(value, list) else str(value)
        return f"{layer.type}({text})"
    return layer.type


def _changed(a: Node, b: Node, names: dict[str, str]) -> list[str]:
    """What differs between two aligned layers of one type: arguments, then inputs."""
    x = a.layer.model_dump(mode="json", exclude={"name", "inputs"})
    y = b.layer.model_dump(mode="json", exclude={"name", "inputs"})
    out = [f"{key} {x.get(key)!r} -> {y.get(key)!r}" for key in x if x.get(key) != y.get(key)]
    mapped = [names.get(p, p) for p in a.inputs]
    aligned = set(names.values())
    # Rewired among aligned layers only: an input that is an added layer is that addition.
    rewired = all(p in names for p in a.inputs) and all(q in aligned for q in b.inputs)
    if mapped != list(b.inputs) and rewired:
        out.append(f"inputs {list(a.inputs)} -> {list(b.inputs)}")
    return out


def _nodes(layers: Sequence[Layer]) -> list[Node]:
    return topological(resolve(layers, whole=False))


def _phrase(nodes: Sequence[Node], seen: dict[str, int]) -> str:
    parts = []
    for node in nodes:
        label = short(node.layer)
        seen[label] = seen.get(label, 0) + 1
        nth = _ORDINALS.get(seen[label], f"{seen[label]}th") + " " if seen[label] > 1 else ""
        article = "an" if (nth or label)[0] in "AEIOUaeiou" else "a"
        parts.append(f"{article} {nth}{label}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _where(following: Node | None) -> str:
    return f" before {short(following.layer)}" if following is not None else " at the end"


Step = tuple[str, int, int]  # ("=", i, j), ("+", -1, j) or ("-", i, -1)


def _align(na: Sequence[Node], nb: Sequence[Node]) -> list[Step]:
    """The alignment of two node sequences by type, an addition or removal moved as late as it
    goes (conv, conv, pool against conv, pool: the second conv is the added one)."""
    ta, tb = [n.layer.type for n in na], [n.layer.type for n in nb]
    steps: list[Step] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ta, b=tb, autojunk=False).get_opcodes():
        if tag == "equal":
            steps += [("=", i1 + k, j1 + k) for k in range(i2 - i1)]
            continue
        steps += [("-", i, -1) for i in range(i1, i2)] + [("+", -1, j) for j in range(j1, j2)]
    moved = True
    while moved:
        moved = False
        for k in range(len(steps) - 1):
            (op, i, j), (op2, i2, j2) = steps[k], steps[k + 1]
            if op == "+" and op2 == "=" and tb[j] == tb[j2]:
                steps[k], steps[k + 1] = ("=", i2, j), ("+", -1, j2)
                moved = True
            elif op == "-" and op2 == "=" and ta[i] == ta[i2]:
                steps[k], steps[k + 1] = ("=", i, j2), ("-", i2, -1)
                moved = True
    return steps


def _runs(steps: Sequence[Step]) -> list[tuple[str, list[Step]]]:
    """Consecutive steps of one kind, together."""
    out: list[tuple[str, list[Step]]] = []
    for step in steps:
        if out and out[-1][0] == step[0] and step[0] != "=":
            out[-1][1].append(step)
        else:
            out.append((step[0], [step]))
    return out


def differences(
    a_layers: Sequence[Layer], b_layers: Sequence[Layer], a: str = "a", b: str = "b"
) -> list[dict[str, Any]]:
    """The structural differences from variant ``a`` to variant ``b`` (module docstring)."""
    na, nb = _nodes(a_layers), _nodes(b_layers)
    steps = _align(na, nb)
    names: dict[str, str] = {INPUT: INPUT}  # a's layer name -> the aligned layer's in b
    names.update({na[i].name: nb[j].name for op, i, j in steps if op == "="})
    seen_a: dict[str, int] = {}
    seen_b: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for k, (op, run) in enumerate(_runs(steps)):
        if op == "=":
            x, y = na[run[0][1]], nb[run[0][2]]
            for label, seen in ((short(x.layer), seen_a), (short(y.layer), seen_b)):
                seen[label] = seen.get(label, 0) + 1
            what = _changed(x, y, names)
            if what:
                text = (
                    f"{b}'s {short(y.layer)} ({y.name}) differs from {a}'s"
                    f" {short(x.layer)} ({x.name}): {'; '.join(what)}"
                )
                out.append({"op": "changed", "a": [x.name], "b": [y.name], "text": text})
            continue
        following = _following(_runs(steps)[k + 1 :], na, nb)
        if op == "+":
            group = [nb[j] for _, _, j in run]
            text = f"{b} adds {_phrase(group, seen_b)}{_where(following)}"
            out.append({"op": "added", "a": [], "b": [n.name for n in group], "text": text})
        else:
            group = [na[i] for _, i, _ in run]
            text = f"{b} lacks {_phrase(group, seen_a)} that {a} has{_where(following)}"
            out.append({"op": "removed", "a": [n.name for n in group], "b": [], "text": text})
    return out


def _following(
    rest: Sequence[tuple[str, list[Step]]], na: Sequence[Node], nb: Sequence[Node]
) -> Node | None:
    """The first aligned layer after a run of additions or removals (where they are)."""
    for op, run in rest:
        if op == "=":
            return nb[run[0][2]]
    return None


def structure(
    a_layers: Sequence[Layer], b_layers: Sequence[Layer], a: str, b: str
) -> dict[str, Any]:
    """Variant ``b``'s differences from ``a``, with a note when there is more than one: a
    difference in their scores then cannot be pinned on one factor."""
    found = differences(a_layers, b_layers, a, b)
    note = None
    if len(found) > 1:
        note = (
            f"{b} differs from {a} in {len(found)} places, so a difference in their scores"
            " cannot be pinned on any one of them"
        )
    return {"against": a, "differences": found, "note": note}
