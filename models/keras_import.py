"""Read a Keras Sequential's ``to_json()`` / ``get_config()`` into our layer specs.

Pure JSON walking: nothing here imports Keras, calls its deserialization, or resolves any
name found in the input. Only Keras's own modules (``keras`` and ``keras.*``), the
whitelisted layer classes and the named initializers/regularizers are accepted. Keys that
Keras always writes are accepted at their default value and rejected, with their
location, at any value we cannot honour (``data_format="channels_first"``, a constraint,
``trainable=False``, ``groups=2``...). Locations start with ``"keras_config"``.

A value refused here is reported once, with its reason: the layer's other arguments are
still checked, but not the refused one again. Regularizer factors come back at float32
precision (Keras stores an L1 factor of 0.01 as 0.009999999776482582); ``Regularizer``
restores the shortest decimal, so a round trip through Keras gives the spec back exactly.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from models.augmentation import AUGMENTATION_TYPES
from models.errors import CUSTOM_REFUSED, ErrorDict, Loc, SpecError, err
from models.graph import INPUT
from models.spec import (
    INITIALIZERS,
    LAYER_TYPES,
    MAX_LAYERS,
    VECTOR_INITIALIZERS,
    Layer,
)

__all__ = ["layers_from_keras_config"]

_VARIANCE_KEYS = {"seed": None, "input_axes": None, "output_axes": None}
_INITIALIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "GlorotUniform": ("glorot_uniform", _VARIANCE_KEYS),
    "GlorotNormal": ("glorot_normal", _VARIANCE_KEYS),
    "HeUniform": ("he_uniform", _VARIANCE_KEYS),
    "HeNormal": ("he_normal", _VARIANCE_KEYS),
    "LecunUniform": ("lecun_uniform", _VARIANCE_KEYS),
    "LecunNormal": ("lecun_normal", _VARIANCE_KEYS),
    "Orthogonal": ("orthogonal", {"seed": None, "gain": 1.0}),
    "RandomNormal": ("random_normal", {"seed": None, "mean": 0.0, "stddev": 0.05}),
    "RandomUniform": ("random_uniform", {"seed": None, "minval": -0.05, "maxval": 0.05}),
    "TruncatedNormal": ("truncated_normal", {"seed": None, "mean": 0.0, "stddev": 0.05}),
    "Zeros": ("zeros", {}),
    "Ones": ("ones", {}),
}
_INIT_BY_NAME = {name: name for name, _ in _INITIALIZERS.values()} | {
    cls: name for cls, (name, _) in _INITIALIZERS.items()
}
# Arguments that initialize a kernel (2-D or more); every other *_initializer is a vector.
_KERNEL_INITIALIZERS = {"kernel_initializer", "depthwise_initializer", "pointwise_initializer"}
_REGULARIZERS = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}
_IGNORED = {"name"}
# Keys Keras writes that we do not model: the values we accept (anything else is rejected).
_FIXED: dict[str, tuple[Any, ...]] = {
    "trainable": (True,),
    "data_format": ("channels_last", None),
    "groups": (1,),
    "activity_regularizer": (None,),
    "kernel_constraint": (None,),
    "bias_constraint": (None,),
    "depthwise_constraint": (None,),
    "pointwise_constraint": (None,),
    "beta_constraint": (None,),
    "gamma_constraint": (None,),
    "quantization_config": (None,),
    "lora_rank": (None,),
    "lora_alpha": (None,),
    "seed": (None,),
    "noise_shape": (None,),
    "axis": (-1, [-1], (-1,)),
    "synchronized": (False,),
    "renorm": (False,),
    "renorm_clipping": (None,),
    "rms_scaling": (False,),
}
_ANY_VALUE = {"renorm_momentum"}  # meaningless while renorm is False
_INPUT_FIXED: dict[str, tuple[Any, ...]] = {
    "dtype": ("float32", None),
    "sparse": (False, None),
    "ragged": (False, None),
    "optional": (False, None),
}


class _Reader:
    """Collects located errors while walking one config."""

    def __init__(self) -> None:
        self.errors: list[ErrorDict] = []

    def fail(self, loc: Loc, msg: str) -> None:
        self.errors.append(err(loc, msg))

    def origin_ok(self, obj: dict[str, Any], loc: Loc) -> bool:
        """Check that ``module`` is Keras's own and ``registered_name`` no custom object."""
        module = obj.get("module")
        if module is not None and (
            not isinstance(module, str) or not (module == "keras" or module.startswith("keras."))
        ):
            self.fail([*loc, "module"], f"module {module!r} is not Keras's own; {CUSTOM_REFUSED}")
            return False
        registered = obj.get("registered_name")
        if registered is not None and registered != obj.get("class_name"):
            self.fail(
                [*loc, "registered_name"],
                f"registered_name {registered!r} names a custom object; {CUSTOM_REFUSED}",
            )
            return False
        return True

    def dtype_ok(self, value: Any, loc: Loc) -> None:
        """Accept only the float32 dtype (string or DTypePolicy dict)."""
        if value is None or value == "float32":
            return
        if isinstance(value, dict):
            if not self.origin_ok(value, loc):
                return
            conf = value.get("config")
            name = conf.get("name") if isinstance(conf, dict) else None
            if value.get("class_name") in ("DTypePolicy", "Policy") and name == "float32":
                return
            if str(value.get("class_name")).endswith("Policy") and isinstance(name, str):
                value = name  # name the policy ('mixed_float16'), not its class
        self.fail(loc, f"dtype {_short(value)} is not supported; only float32")

    def initializer(self, value: Any, loc: Loc, allowed: tuple[str, ...]) -> Any:
        """Map a Keras initializer (name or serialized dict) to our name."""
        if isinstance(value, str) and value in _INIT_BY_NAME:
            return _INIT_BY_NAME[value]
        if isinstance(value, dict) and not self.origin_ok(value, loc):
            return None
        if isinstance(value, dict):
            entry = _INITIALIZERS.get(str(value.get("class_name")))
            conf = value.get("config") or {}
            if entry is not None and isinstance(conf, dict):
                name, defaults = entry
                bad = [k for k, v in conf.items() if k not in defaults or defaults[k] != v]
                if not bad:
                    return name
                self.fail(
                    [*loc, "config", bad[0]],
                    f"initializer argument {bad[0]}={conf[bad[0]]!r} is not supported; only"
                    f" the default {name} (seeds come from the trial)",
                )
                return None
        names = ", ".join(sorted(allowed))
        self.fail(loc, f"unsupported initializer {_short(value)}; allowed: {names}")
        return None

    def regularizer(self, value: Any, loc: Loc) -> Any:
        """Map a Keras L1/L2/L1L2 regularizer dict to ``{"l1", "l2"}``."""
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, dict) and not self.origin_ok(value, loc):
            return None
        if isinstance(value, dict):
            keys = _REGULARIZERS.get(str(value.get("class_name")))
            conf = value.get("config")
            if keys is not None and isinstance(conf, dict) and set(conf) <= set(keys):
                # Regularizer turns float32 noise (0.009999999776482582) back into 0.01.
                return {k: conf.get(k, 0.0) for k in keys}
        self.fail(loc, f"unsupported regularizer {_short(value)}; allowed: L1, L2, L1L2")
        return None


def _short(value: Any) -> str:
    """Name a config value briefly for a message."""
    if isinstance(value, dict):
        return repr(value.get("class_name", "object"))
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_input_layer(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("class_name") == "InputLayer"


def _shape(value: Any) -> tuple[int, ...] | None:
    """Drop the batch dimension of a ``batch_shape`` list, or ``None`` if it is not one."""
    if not isinstance(value, list | tuple) or len(value) < 2:
        return None
    dims = value[1:]
    if all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        return tuple(dims)
    return None


def _layer(
    reader: _Reader, raw: Any, loc: Loc, graph: dict[str, Any] | None = None
) -> Layer | None:
    """Convert one serialized layer to our spec (with ``graph``: its name and inputs), or
    record why not."""
    if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
        reader.fail(loc, "each layer must be an object with class_name and config")
        return None
    if not reader.origin_ok(raw, loc):
        return None
    kind = raw.get("class_name")
    if kind == "Lambda":
        reader.fail([*loc, "class_name"], "Lambda layers run arbitrary code and are refused")
        return None
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        allowed = ", ".join(LAYER_TYPES)
        reader.fail(
            [*loc, "class_name"],
            f"unknown layer type {kind!r}; allowed: {allowed} (other Keras layers are not "
            f"supported yet; {CUSTOM_REFUSED})",
        )
        return None
    model = LAYER_TYPES[kind]
    args: dict[str, Any] = {"type": kind}
    ok = True
    refused: set[str] = set()  # arguments already reported: not validated again
    for key, value in raw["config"].items():
        kloc: Loc = [*loc, "config", key]
        if key in _IGNORED or key in _ANY_VALUE or key in ("input_shape", "batch_input_shape"):
            continue
        if key == "seed" and kind in AUGMENTATION_TYPES:
            continue  # the trial's seed seeds it (RandomCrop always writes one of its own)
        if key == "dtype":
            reader.dtype_ok(value, kloc)
        elif key in _FIXED:
            if value not in _FIXED[key]:
                ok = False
                reader.fail(
                    kloc, f"{key}={_short(value)} is not supported; only {_FIXED[key][0]!r}"
                )
        elif key in model.model_fields and key != "type":
            before = len(reader.errors)
            if key.endswith("_initializer"):
                kernel = key in _KERNEL_INITIALIZERS
                value = reader.initializer(
                    value, kloc, INITIALIZERS if kernel else VECTOR_INITIALIZERS
                )
            elif key.endswith("_regularizer"):
                value = reader.regularizer(value, kloc)
            elif key == "activation" and not isinstance(value, str):
                reader.fail(kloc, "only built-in activations given by name are supported")
            if len(reader.errors) > before:
                refused.add(key)
            args[key] = value
        else:
            ok = False
            reader.fail(kloc, f"unsupported argument {key!r} for {kind}")
    if not ok:
        return None
    try:
        return model.model_validate(args | (graph or {}))
    except ValidationError as exc:
        for e in exc.errors():
            if not (e["loc"] and e["loc"][0] in refused):
                reader.fail([*loc, "config", *e["loc"]], e["msg"].removeprefix("Value error, "))
        return None


_FUNCTIONAL = ("Functional", "Model")  # what Keras 3 calls a model built with the functional API
_NESTED = ("Sequential", *_FUNCTIONAL)


def _endpoints(value: Any) -> list[Any]:
    """``input_layers``/``output_layers``: one ``[name, node, tensor]`` or a list of them."""
    if isinstance(value, list | tuple) and len(value) == 3 and isinstance(value[0], str):
        return [value]
    return list(value) if isinstance(value, list | tuple) else []


def _parents(reader: _Reader, raw: dict[str, Any], loc: Loc) -> list[str] | None:
    """The names of the layers whose outputs a layer takes (its one call's tensors)."""
    nodes = raw.get("inbound_nodes")
    if not isinstance(nodes, list) or not nodes:
        reader.fail([*loc, "inbound_nodes"], "a layer of a Functional model needs its inputs")
        return None
    if len(nodes) > 1:
        reader.fail(
            [*loc, "inbound_nodes"],
            f"layer {raw.get('name')!r} is applied {len(nodes)} times (shared weights), which is"
            " not supported: give each call its own layer",
        )
        return None
    node = nodes[0]
    args = node.get("args") if isinstance(node, dict) else None
    given = node.get("kwargs") if isinstance(node, dict) else None
    if isinstance(given, dict) and any(v is not None for v in given.values()):
        # Keras writes mask=None, training=None for some layers: the defaults, accepted.
        keys = ", ".join(sorted(str(k) for k, v in given.items() if v is not None))
        reader.fail(
            [*loc, "inbound_nodes", 0, "kwargs"], f"call arguments ({keys}) are not supported"
        )
        return None
    if not isinstance(args, list | tuple) or len(args) != 1:
        reader.fail([*loc, "inbound_nodes", 0, "args"], "a layer must be called on its inputs only")
        return None
    tensors = args[0] if isinstance(args[0], list | tuple) else [args[0]]
    names = []
    for tensor in tensors:
        conf = tensor.get("config") if isinstance(tensor, dict) else None
        history = conf.get("keras_history") if isinstance(conf, dict) else None
        if not (
            isinstance(history, list | tuple) and len(history) == 3 and isinstance(history[0], str)
        ):
            reader.fail([*loc, "inbound_nodes", 0, "args"], "an input is not a Keras tensor")
            return None
        names.append(history[0])
    return names


def _functional(
    reader: _Reader, inner: dict[str, Any], base: Loc
) -> tuple[list[Layer], tuple[int, ...] | None]:
    """The layers of a Functional model's config as a graph (names and inputs), its one input
    named ``"input"``. Shared layers, nested models and several inputs or outputs: refused."""
    inputs, outputs = _endpoints(inner.get("input_layers")), _endpoints(inner.get("output_layers"))
    for key, found in (("input_layers", inputs), ("output_layers", outputs)):
        if len(found) != 1:
            what = "input (the dataset's)" if key == "input_layers" else "output"
            reader.fail(
                [*base, key],
                f"a model with {len(found)} {key.split('_')[0]}s is not supported; archbench"
                f" builds models of one {what}",
            )
    if inner.get("trainable", True) is not True:
        reader.fail([*base, "trainable"], "trainable=False is not supported")
    raw_layers = inner.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        reader.fail([*base, "layers"], "a Functional config needs a non-empty list of layers")
    if reader.errors or not isinstance(raw_layers, list):
        raise SpecError(reader.errors)
    if len(raw_layers) - 1 > MAX_LAYERS:
        msg = f"{len(raw_layers) - 1:,} layers exceeds the maximum of {MAX_LAYERS:,}"
        raise SpecError([err([*base, "layers"], msg)])
    input_name = inputs[0][0]
    layers: list[Layer] = []
    shape: tuple[int, ...] | None = None
    for i, raw in enumerate(raw_layers):
        loc: Loc = [*base, "layers", i]
        conf = raw.get("config") if isinstance(raw, dict) else None
        if _is_input_layer(raw) and isinstance(conf, dict):
            shape = _shape(conf.get("batch_shape") or conf.get("batch_input_shape"))
            for key, allowed in _INPUT_FIXED.items():
                if conf.get(key) not in allowed:
                    reader.fail(
                        [*loc, "config", key], f"{key}={_short(conf[key])} is not supported"
                    )
            continue
        if isinstance(raw, dict) and raw.get("class_name") in _NESTED:
            reader.fail(
                [*loc, "class_name"],
                f"a nested model ({raw.get('class_name')} {raw.get('name')!r}) is not supported:"
                " write its layers into this model",
            )
            continue
        parents = _parents(reader, raw, loc) if isinstance(raw, dict) else None
        name = raw.get("name") if isinstance(raw, dict) else None
        graph = {"name": name, "inputs": [INPUT if p == input_name else p for p in parents or []]}
        layer = _layer(reader, raw, loc, graph if parents is not None else None)
        if layer is not None:
            layers.append(layer)
    if not reader.errors and layers and layers[-1].name != outputs[0][0]:
        reader.fail(
            [*base, "output_layers"], f"the output {outputs[0][0]!r} must be the last layer"
        )
    if reader.errors:
        raise SpecError(reader.errors)
    if not layers:
        raise SpecError([err([*base, "layers"], "the model has no layers besides its input")])
    return layers, shape


def layers_from_keras_config(config: dict[str, Any]) -> tuple[list[Layer], tuple[int, ...] | None]:
    """Return the layers and input shape of a Sequential's or a Functional model's
    to_json()/get_config() dict (a Functional's input shape is its InputLayer's)."""
    reader = _Reader()
    base: Loc = ["keras_config"]
    if not isinstance(config, dict):
        raise SpecError([err(base, "keras_config must be an object")])
    shape: tuple[int, ...] | None = None
    if "class_name" in config:
        if not reader.origin_ok(config, base):
            raise SpecError(reader.errors)
        if config["class_name"] not in ("Sequential", *_FUNCTIONAL):
            msg = (
                f"only Sequential and Functional models are supported, not {config['class_name']!r}"
            )
            raise SpecError([err([*base, "class_name"], msg)])
        build = config.get("build_config")
        if isinstance(build, dict):
            shape = _shape(build.get("input_shape"))
        inner, base = config.get("config"), [*base, "config"]
        if not isinstance(inner, dict):
            raise SpecError([err(base, "a model's config must be an object")])
    else:
        inner = config
    functional = "input_layers" in inner or "output_layers" in inner
    if functional or config.get("class_name") in _FUNCTIONAL:
        return _functional(reader, inner, base)
    if inner.get("trainable", True) is not True:
        reader.fail([*base, "trainable"], "trainable=False is not supported")
    if "dtype" in inner:
        reader.dtype_ok(inner["dtype"], [*base, "dtype"])
    shape = _shape(inner.get("build_input_shape")) or shape
    raw_layers = inner.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise SpecError(
            [err([*base, "layers"], "a Sequential config needs a non-empty list of layers")]
        )
    counted = len(raw_layers) - int(_is_input_layer(raw_layers[0]))
    if counted > MAX_LAYERS:
        msg = f"{counted:,} layers exceeds the maximum of {MAX_LAYERS:,}"
        raise SpecError([err([*base, "layers"], msg)])
    layers: list[Layer] = []
    first_shape: tuple[int, ...] | None = None
    for i, raw in enumerate(raw_layers):
        loc: Loc = [*base, "layers", i]
        conf = raw.get("config") if isinstance(raw, dict) else None
        if isinstance(conf, dict) and first_shape is None:
            first_shape = _shape(conf.get("batch_shape") or conf.get("batch_input_shape"))
            if first_shape is None and isinstance(conf.get("input_shape"), list | tuple):
                first_shape = _shape([None, *conf["input_shape"]])
        if _is_input_layer(raw):
            if i != 0:
                reader.fail([*loc, "class_name"], "an InputLayer may only come first")
            elif isinstance(conf, dict) and reader.origin_ok(raw, loc):
                for key, allowed in _INPUT_FIXED.items():
                    if conf.get(key) not in allowed:
                        reader.fail(
                            [*loc, "config", key], f"{key}={_short(conf[key])} is not supported"
                        )
            continue
        layer = _layer(reader, raw, loc)
        if layer is not None:
            layers.append(layer)
    if reader.errors:
        raise SpecError(reader.errors)
    if not layers:
        raise SpecError([err([*base, "layers"], "the model has no layers besides its input")])
    return layers, first_shape or shape
