"""A variant's layers as a graph: each layer's name and inputs, checked, and its canonical form.

A layer may carry ``name`` (unique in its variant) and ``inputs`` (names of earlier layers,
or ``"input"`` for the model's input); left out, the name is the one Keras would give
(``conv2d``, ``conv2d_1``... skipping names taken explicitly) and the input is the previous
layer (the model's input for the first), so a stack written without either means what it
always meant. The model has one input and one output: the last layer, or the variant's
``output``; every layer must reach it.

``resolve`` checks the structure and raises ``SpecError`` located at the offending layer:
a duplicated or reserved name, an unknown name, a name defined later (a cycle when that
later layer depends on this one), a merge with fewer than two inputs, a one-input layer given
several, a layer whose output goes nowhere (a second output) and a branch that never reaches
the output. ``canonical_layers`` is the stored form: a plain stack exactly as before (no
``name``, no ``inputs``), a graph with every name and input spelled out in a topological
order that does not depend on the order it was written in (ties broken by name).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models.errors import ErrorDict, SpecError, err
from models.merge import MergeSpec
from models.spec import Layer

__all__ = ["INPUT", "Node", "canonical_layers", "default_names", "is_stack", "resolve"]

INPUT = "input"  # the model's input, as a layer's ``inputs`` names it


@dataclass(slots=True)
class Node:
    """One layer in its graph: where it was written, its name, what it takes."""

    index: int
    name: str
    inputs: tuple[str, ...]
    layer: Layer


@functools.cache
def _snake(name: str) -> str:
    """Keras's default layer name for a class name (Conv2D -> conv2d, ReLU -> re_lu)."""
    out = ""
    for i, ch in enumerate(name):
        if (
            ch.isupper()
            and i
            and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower()))
        ):
            out += "_"
        out += ch.lower()
    return out


def default_names(layers: Sequence[Layer]) -> list[str]:
    """Every layer's name: its own, else Keras's default (``conv2d``, ``conv2d_1``...) that no
    layer has taken explicitly."""
    taken = {layer.name for layer in layers if layer.name is not None}
    seen: dict[str, int] = {}
    names = []
    for layer in layers:
        if layer.name is not None:
            names.append(layer.name)
            continue
        base = _snake(layer.type)
        while True:
            n = seen.get(base, 0)
            seen[base] = n + 1
            candidate = base if n == 0 else f"{base}_{n}"
            if candidate not in taken:
                break
        names.append(candidate)
    return names


def _nodes(layers: Sequence[Layer]) -> list[Node]:
    names = default_names(layers)
    return [
        Node(
            i,
            name,
            tuple(layer.inputs) if layer.inputs else ((names[i - 1],) if i else (INPUT,)),
            layer,
        )
        for i, (layer, name) in enumerate(zip(layers, names, strict=True))
    ]


def _cycle(nodes: Sequence[Node], start: int, target: str) -> list[str] | None:
    """A path of names from ``target``'s layer back to ``nodes[start]``, if there is one."""
    by_name = {n.name: n for n in nodes}
    path: list[str] = []
    seen: set[str] = set()

    def walk(name: str) -> bool:
        if name == nodes[start].name:
            path.append(name)
            return True
        node = by_name.get(name)
        if node is None or name in seen:
            return False
        seen.add(name)
        for parent in node.inputs:
            if walk(parent):
                path.append(name)
                return True
        return False

    return path if walk(target) else None


def _edge_errors(nodes: Sequence[Node]) -> list[ErrorDict]:
    """Names (unique, not reserved) and inputs (known, earlier, as many as the type takes)."""
    errors: list[ErrorDict] = []
    first: dict[str, int] = {}
    for node in nodes:
        loc: list[str | int] = ["layers", node.index]
        if node.name == INPUT:
            errors.append(err([*loc, "name"], f"{INPUT!r} names the model's input; rename it"))
        elif node.name in first:
            errors.append(
                err(
                    [*loc, "name"],
                    f"the name {node.name!r} is already layer {first[node.name]}'s;"
                    " names must be unique in a variant",
                )
            )
        else:
            first[node.name] = node.index
        for j, parent in enumerate(node.inputs):
            at = [*loc, "inputs", j]
            if parent == INPUT or first.get(parent, node.index) < node.index:
                continue
            later = next((n for n in nodes if n.name == parent), None)
            if later is None:
                known = ", ".join([INPUT, *(n.name for n in nodes[: node.index])])
                errors.append(err(at, f"unknown layer {parent!r}; known here: {known}"))
                continue
            cycle = _cycle(nodes, node.index, parent)
            if cycle is not None:
                text = " -> ".join([*cycle, cycle[0]])
                errors.append(err(at, f"a cycle: {text}; a model's graph has none"))
            else:
                errors.append(
                    err(
                        at,
                        f"{parent!r} is layer {later.index}, after this one; a layer takes only"
                        " the outputs of layers written before it",
                    )
                )
        errors += _arity_errors(node, loc)
    return errors


def _arity_errors(node: Node, loc: list[str | int]) -> list[ErrorDict]:
    layer, n = node.layer, len(node.inputs)
    if isinstance(layer, MergeSpec):
        if n < layer.min_inputs:
            return [err([*loc, "inputs"], f"{layer.type} merges two or more inputs; it has {n}")]
        if layer.max_inputs is not None and n > layer.max_inputs:
            msg = f"{layer.type} takes exactly {layer.max_inputs} inputs; it has {n}"
            return [err([*loc, "inputs"], msg)]
    elif n != 1:
        msg = f"{layer.type} takes one input, not {n}; merge them first (Add, Concatenate...)"
        return [err([*loc, "inputs"], msg)]
    return []


def _reach_errors(nodes: Sequence[Node], output: str | None) -> list[ErrorDict]:
    """Every layer reaches the output, and only the output is left unused."""
    if output is None:
        out = nodes[-1]
    else:
        found = next((n for n in nodes if n.name == output), None)
        if found is None:
            names = ", ".join(n.name for n in nodes)
            return [err(["output"], f"no layer is named {output!r}; the layers: {names}")]
        out = found
    used = {p for n in nodes for p in n.inputs}
    reaches = {out.name}
    for node in reversed(nodes[: out.index + 1]):
        if node.name in reaches:
            reaches.update(node.inputs)
    errors: list[ErrorDict] = []
    for node in nodes:
        if node.name in reaches:
            continue
        loc: list[str | int] = ["layers", node.index]
        if node.name not in used:
            errors.append(
                err(
                    loc,
                    f"a second output: nothing takes {node.name!r}'s output and the model's one"
                    f" output is {out.name!r}; feed it into a layer or remove it",
                )
            )
        else:
            errors.append(
                err(loc, f"{node.name!r} is on a branch that never reaches the output {out.name!r}")
            )
    return errors


def resolve(
    layers: Sequence[Layer], output: str | None = None, *, whole: bool = True
) -> list[Node]:
    """The layers as nodes (names and inputs resolved), or ``SpecError`` at the offending layer.

    ``whole=False`` checks a prefix of the layers: every layer need not reach an output yet."""
    nodes = _nodes(layers)
    errors = _edge_errors(nodes)
    if not errors and whole and nodes:
        errors = _reach_errors(nodes, output)
    if errors:
        raise SpecError(errors)
    return nodes


def is_stack(nodes: Sequence[Node]) -> bool:
    """Whether the graph is a plain stack named as Keras names a Sequential's layers."""
    plain = default_names([node.layer.model_copy(update={"name": None}) for node in nodes])
    return all(
        node.name == plain[i] and node.inputs == ((nodes[i - 1].name,) if i else (INPUT,))
        for i, node in enumerate(nodes)
    )


def _arguments(layer: Layer) -> dict[str, Any]:
    return layer.model_dump(mode="json", exclude={"name", "inputs"})


def topological(nodes: Sequence[Node]) -> list[Node]:
    """The nodes in a topological order independent of how they were written (by name among
    the ready ones)."""
    by_name = {n.name: n for n in nodes}
    waiting = {n.name: sum(1 for p in set(n.inputs) if p != INPUT) for n in nodes}
    children: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for p in set(n.inputs):
            if p != INPUT:
                children[p].append(n.name)
    ready = [name for name, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        name = heapq.heappop(ready)
        out.append(by_name[name])
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    return out


def canonical_layers(nodes: Sequence[Node]) -> list[dict[str, Any]]:
    """The stored form of a resolved graph (see the module's docstring)."""
    if is_stack(nodes):
        return [_arguments(node.layer) for node in nodes]
    out = []
    for node in topological(nodes):
        args = _arguments(node.layer)
        kind = args.pop("type")
        out.append({"type": kind, "name": node.name, "inputs": list(node.inputs), **args})
    return out
