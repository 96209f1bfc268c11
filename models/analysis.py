"""Static analysis of a layer list: shapes, parameters, FLOPs and receptive field, no TensorFlow.

Conventions (the tests check shapes and parameter counts against Keras's built model):

- Shapes exclude the batch dimension, channels last, as Keras reports them.
- ``flops`` counts multiply-adds of the weighted layers only, once per forward pass of one
  sample: Conv2D ``out_h*out_w*filters*kh*kw*in_ch``, Conv1D likewise, DepthwiseConv2D
  ``out_h*out_w*in_ch*mult*kh*kw``, SeparableConv2D that plus ``out_h*out_w*in_ch*mult*filters``,
  Dense ``positions*in*units``. Biases, normalization, pooling and activations count 0.
- ``receptive_field`` is per spatial axis of the input (all axes but the last), in input
  pixels, with the usual recurrence (``rf += (k_eff - 1) * jump; jump *= stride``); it may
  exceed the input with "same" padding. After a layer that mixes all positions (Flatten,
  global pooling, Reshape) it is the full input extent. It is ``None`` for a 1-D input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from models.errors import ErrorDict, SpecError, err
from models.graph import INPUT, Node, default_names, resolve
from models.keras_import import layers_from_keras_config
from models.layers import DenseSpec
from models.merge import MergeSpec
from models.shapes import Bad, Walker, fmt
from models.spec import Layer, Variant

__all__ = [
    "Activations",
    "Analysis",
    "LayerAnalysis",
    "Limits",
    "activations_of",
    "analyze",
    "analyze_variant",
    "layer_names",
]


@dataclass(frozen=True)
class Limits:
    """Upper bounds a variant must stay within."""

    max_layers: int
    max_params: int
    max_flops: int
    # Activation memory of one training batch (every layer's float32 output for
    # ``batch_size`` samples, as training keeps them for the backward pass); None: no limit.
    max_activation_bytes: int | None = None


@dataclass
class LayerAnalysis:
    """What one layer does to the tensor."""

    type: str
    name: str
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    flops: int
    receptive_field: list[int] | None
    # The names of the layers it takes (``"input"``: the model's input).
    inputs: list[str] = field(default_factory=list)


@dataclass
class Analysis:
    """The whole model's shapes and counts."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    non_trainable_params: int
    flops: int
    layers: list[LayerAnalysis] = field(default_factory=list)
    activations: Activations | None = None
    # The longest path from the input to the output, in layers, and the layers that merge.
    depth: int = 0
    merge_points: int = 0
    # In a comparison: how this variant's graph differs from the reference variant's
    # (``models.structure``): ``{"against", "differences": [{"op", "a", "b", "text"}], "note"}``.
    structure: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form, as ``POST /v1/architectures/analyze`` answers it."""
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        out["output_shape"] = list(self.output_shape)
        for layer in out["layers"]:
            layer["output_shape"] = list(layer["output_shape"])
        return out


BYTES_PER_VALUE = 4  # float32, what archbench trains in
DEFAULT_BATCH_SIZE = 64  # core.spec's training.batch_size default


@dataclass
class Activations:
    """Memory the layer outputs take: the largest one and the sum, per sample and per batch.

    Parameter and FLOP counts miss this: 190 ZeroPadding2D(64) layers have no parameters and
    no FLOPs, yet their last output is 24,328 x 24,328 (2.37 GB per sample)."""

    largest_layer: str | None
    largest_layer_index: int | None
    largest_bytes_per_sample: int
    total_bytes_per_sample: int
    batch_size: int
    largest_bytes_per_batch: int
    total_bytes_per_batch: int
    # Inference's need: the most bytes alive at once when the layers run in their order (the
    # input and every output still to be read by a later layer, and the one being made).
    peak_bytes_per_sample: int = 0
    peak_bytes_per_batch: int = 0


def _peak(layers: Sequence[LayerAnalysis], input_shape: tuple[int, ...]) -> int:
    """The most bytes of tensors alive at once, running ``layers`` in their (topological) order."""
    readers: dict[str, int] = {}
    for layer in layers:
        for parent in set(layer.inputs):
            readers[parent] = readers.get(parent, 0) + 1
    size = {INPUT: math.prod(input_shape) * BYTES_PER_VALUE}
    alive = size[INPUT]
    peak = alive
    for layer in layers:
        size[layer.name] = math.prod(layer.output_shape) * BYTES_PER_VALUE
        alive += size[layer.name]
        peak = max(peak, alive)
        for parent in set(layer.inputs):
            readers[parent] -= 1
            if readers[parent] == 0:
                alive -= size[parent]
    return peak


def activations_of(
    layers: Sequence[LayerAnalysis], batch_size: int, input_shape: tuple[int, ...] | None = None
) -> Activations:
    """The activation memory of ``layers`` (their outputs, float32) for ``batch_size``."""
    sizes = [math.prod(layer.output_shape) * BYTES_PER_VALUE for layer in layers]
    largest = max(range(len(sizes)), key=sizes.__getitem__) if sizes else None
    top = sizes[largest] if largest is not None else 0
    total = sum(sizes)
    peak = _peak(layers, input_shape) if input_shape is not None else 0
    return Activations(
        peak_bytes_per_sample=peak,
        peak_bytes_per_batch=peak * batch_size,
        largest_layer=layers[largest].name if largest is not None else None,
        largest_layer_index=largest,
        largest_bytes_per_sample=top,
        total_bytes_per_sample=total,
        batch_size=batch_size,
        largest_bytes_per_batch=top * batch_size,
        total_bytes_per_batch=total * batch_size,
    )


def layer_names(layers: Sequence[Layer]) -> list[str]:
    """Return deterministic layer names (``conv2d``, ``conv2d_1``...); the builder uses them too."""
    return default_names(layers)


def _final_error(layers: Sequence[Layer], final: tuple[int, ...], classes: int) -> ErrorDict:
    """Explain why the last layer does not produce one output per class."""
    last = len(layers) - 1
    if not layers:
        return err(["layers"], f"there are no layers; end with Dense({classes})")
    shown = f"({final[0]},)" if len(final) == 1 else str(final)
    if len(final) == 1:
        loc: list[str | int] = ["layers", last]
        if isinstance(layers[-1], DenseSpec):
            loc.append("units")
        hint = f"end with Dense({classes})"
    else:
        loc = ["layers", last]
        hint = f"add Flatten or GlobalAveragePooling2D before the last Dense({classes})"
    msg = f"the last layer outputs {shown} but the dataset has {classes} classes: {hint}"
    return err(loc, msg)


def analyze(
    layers: Sequence[Layer],
    input_shape: tuple[int, ...],
    *,
    num_classes: int | None = None,
    limits: Limits | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    output: str | None = None,
    whole: bool = True,
) -> Analysis:
    """Infer every layer's shape and counts, or raise ``SpecError`` with located problems.

    ``layers`` is a graph (``models.graph``); ``whole=False`` analyses a prefix of one."""
    errors: list[ErrorDict] = []
    if limits is not None and len(layers) > limits.max_layers:
        errors.append(
            err(["layers"], f"{len(layers):,} layers exceeds the limit of {limits.max_layers:,}")
        )
    nodes = resolve(layers, output, whole=whole)
    out, final, depth = _walk(nodes, tuple(input_shape), errors)
    params = sum(a.params for a in out)
    trainable = sum(a.trainable_params for a in out)
    flops = sum(a.flops for a in out)
    if num_classes is not None and final != (num_classes,):
        errors.append(_final_error(layers, final, num_classes))
    if limits is not None:
        if params > limits.max_params:
            msg = f"{params:,} parameters exceeds the limit of {limits.max_params:,}"
            errors.append(err(["layers"], msg + _largest(out, "params", "ARCHBENCH_MAX_PARAMS")))
        if flops > limits.max_flops:
            msg = f"{flops:,} FLOPs exceeds the limit of {limits.max_flops:,}"
            errors.append(err(["layers"], msg + _largest(out, "flops", "ARCHBENCH_MAX_FLOPS")))
    activations = activations_of(out, batch_size, tuple(input_shape))
    if (
        limits is not None
        and limits.max_activation_bytes is not None
        and activations.total_bytes_per_batch > limits.max_activation_bytes
    ):
        j = activations.largest_layer_index
        errors.append(
            err(
                ["layers", j] if j is not None else ["layers"],
                f"the layer outputs take {activations.total_bytes_per_batch:,} bytes per batch "
                f"of {batch_size} (float32; {activations.total_bytes_per_sample:,} per sample), "
                f"over the limit of {limits.max_activation_bytes:,} "
                f"(ARCHBENCH_MAX_ACTIVATION_BYTES); the largest is this layer's output "
                f"{fmt(out[j].output_shape) if j is not None else ''}, "
                f"{activations.largest_bytes_per_sample:,} bytes per sample",
            )
        )
    if errors:
        raise SpecError(errors)
    return Analysis(
        tuple(input_shape),
        final,
        params,
        trainable,
        params - trainable,
        flops,
        out,
        activations,
        depth,
        sum(1 for node in nodes if isinstance(node.layer, MergeSpec)),
    )


def _walk(
    nodes: Sequence[Node], input_shape: tuple[int, ...], errors: list[ErrorDict]
) -> tuple[list[LayerAnalysis], tuple[int, ...], int]:
    """Each node's analysis in order, the last one's shape and the longest path (in layers)."""
    walkers = {INPUT: Walker(input_shape)}
    depths = {INPUT: 0}
    readers: dict[str, int] = {}
    for node in nodes:
        for p in node.inputs:
            readers[p] = readers.get(p, 0) + 1
    out: list[LayerAnalysis] = []
    for node in nodes:
        layer, inputs = node.layer, node.inputs
        try:
            if len(inputs) > 1:  # a merge (resolve() gives several inputs to merges only)
                assert isinstance(layer, MergeSpec)
                walker = Walker.merged([walkers[p] for p in inputs])
                shapes = [walkers[p].shape for p in inputs]
                shape, params, trainable, flops = layer.merge(shapes, inputs)
                depth = 1 + max(depths[p] for p in inputs)
            else:
                parent = inputs[0]
                # The last reader of a tensor walks on from its state; the others, a copy.
                walker = walkers[parent] if readers[parent] == 1 else walkers[parent].copy()
                readers[parent] -= 1
                shape, params, trainable, flops = layer.infer(walker)  # its type's rule
                depth = 1 + depths[parent]
        except Bad as bad:
            loc: list[str | int] = ["layers", node.index, *([bad.arg] if bad.arg else [])]
            errors.append(err(loc, bad.msg))
            raise SpecError(errors) from None
        walker.shape = shape
        walkers[node.name] = walker
        depths[node.name] = depth
        out.append(
            LayerAnalysis(
                layer.type, node.name, shape, params, trainable, flops, walker.rf, list(inputs)
            )
        )
    last = nodes[-1].name if nodes else INPUT
    return out, walkers[last].shape, depths[last]


def analyze_variant(
    variant: Variant,
    *,
    input_shape: tuple[int, ...] | None,
    num_classes: int | None = None,
    limits: Limits | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    whole: bool = True,
) -> tuple[list[Layer], tuple[int, ...], Analysis]:
    """Resolve a variant's layers and input shape, then analyse it.

    The input shape is the variant's own, else the dataset's (``input_shape``), else the one
    recorded in its keras_config.
    """
    config_shape: tuple[int, ...] | None = None
    if variant.layers is not None:
        layers = list(variant.layers)
    elif variant.keras_config is not None:
        layers, config_shape = layers_from_keras_config(variant.keras_config)
    else:
        raise SpecError([err(["layers"], "give exactly one of layers or keras_config")])
    shape = variant.input_shape or input_shape or config_shape
    if shape is None:
        raise SpecError([err(["input_shape"], "no input shape: give input_shape or a dataset")])
    return (
        layers,
        tuple(shape),
        analyze(
            layers,
            tuple(shape),
            num_classes=num_classes,
            limits=limits,
            batch_size=batch_size,
            output=variant.output,
            whole=whole,
        ),
    )


def _largest(out: list[LayerAnalysis], what: Literal["params", "flops"], setting: str) -> str:
    """The tail of a limit's message: the server setting that sets it, and the layer that
    counts most (where a change helps most)."""
    i = max(range(len(out)), key=lambda k: getattr(out[k], what))
    word = "parameters" if what == "params" else "FLOPs"
    return (
        f" (the server's {setting}); the largest is layers[{i}] ({out[i].type} "
        f"{out[i].name!r}) with {getattr(out[i], what):,} {word}"
    )
