"""`cnnzoo import`: an existing Keras model -> a cnnzoo config that builds the same graph.

Sources: see `import_source` (files, `keras.applications.NAME(...)`, `package.module:function`).
An input size left open (None rows and cols) stays open: `input_shape: [null, null, 3]`. The config is a
flat list of named items (one per layer, `inputs:` where a layer does not take the one before
it): always correct, and the same layers, arguments and weight order, so
`new.set_weights(old.get_weights())` gives the same outputs. Arguments equal to the layer's
defaults are left out.
"""

from __future__ import annotations

from cnnzoo import keras_internals

import copy
import inspect
import re
from collections import Counter
from pathlib import Path
from typing import Any

from cnnzoo.deploy.import_source import load_source
from cnnzoo.errors import CnnzooError, keras_message

CHECK_SIZE = 224  # rows and cols of the images an open-size model's outputs are compared on: ImageNet's
DROPPED = ("name", "dtype", "trainable")  # the item's `name`; the run's precision; trainable unless False


def config_of(model) -> dict[str, Any]:
    """The cnnzoo config (a plain dict, ready for YAML) that builds `model`'s graph."""
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise CnnzooError(f"`{model.name}` has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                          "cnnzoo configs describe one image input and one output")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    _check_plain(model, layers)
    items, previous, built = [], None, {}
    input_name = model.layers[0].name
    for layer in layers:
        sources = [source.name for source in keras_internals.inbound_layers(layer)]
        sources = ["input" if s == input_name else _ref(s) for s in sources]
        item: dict[str, Any] = {type(layer).__name__: tidy(layer, built), "name": _ref(layer.name)}
        if sources != [previous or "input"]:
            item["inputs"] = sources if len(sources) > 1 else sources[0]
        items.append(item)
        previous = _ref(layer.name)
    output = tuple(model.output.shape)
    model_section = {"name": _safe(model.name), "input_shape": list(model.input_shape[1:]),
                     **({"num_classes": output[-1]} if len(output) == 2 else {}), "layers": items}
    return {"model": model_section}


def _check_plain(model, layers) -> None:
    """Only standard keras.layers classes, each used once, can be written as items: not a Lambda, a
    custom layer, a model used as a layer, nor a keras.ops operation applied to tensors (`x + 3.0`)."""
    import keras

    operations = [op for op in model.operations if not isinstance(op, keras.layers.InputLayer)]
    refused = [(place, op) for place, op in enumerate(operations, start=1) if _unlike_items(op)]
    if refused:
        place, op = refused[0]
        others = Counter(("" if isinstance(other, keras.layers.Layer) else "ops.") + type(other).__name__
                         for _, other in refused[1:])
        more = (f"; {len(refused) - 1} more of these: " + ", ".join(f"{name} x{n}" for name, n in others.items())
                if others else "")
        raise CnnzooError(
            f"layer {place} of {len(operations)}, `{op.name}` is {_unlike_items(op)}: a config can only name "
            f"keras.layers classes{more}; nothing was written",
            hint="Replace it by standard layers in the model (keras.layers.Add, Multiply, Rescaling, Activation, ...).")
    for place, layer in enumerate(layers, start=1):
        if keras_internals.call_count(layer) != 1:
            raise CnnzooError(f"layer {place} of {len(layers)}, `{layer.name}` is called "
                              f"{keras_internals.call_count(layer)} times (shared weights); "
                              "each cnnzoo item is one layer call; nothing was written")


def _unlike_items(op) -> str:
    """Why an operation of a model cannot be a config item ("" when it can)."""
    import keras

    cls = type(op)
    qualified = f"{cls.__module__}.{cls.__name__}"
    if isinstance(op, keras.layers.Lambda):
        return f"a {qualified}, not a keras.layers class (a Lambda's Python code cannot be written as YAML)"
    if isinstance(op, keras.Model):
        return f"a model used as a layer ({qualified}), not a keras.layers class"
    if not isinstance(op, keras.layers.Layer):
        return (f"the keras.ops operation {qualified} applied to tensors (arithmetic such as `x + 3.0` written "
                "in the model's code), not a layer")
    if getattr(keras.layers, cls.__name__, None) is not cls:
        return f"a custom layer, {qualified}, not a keras.layers class"
    return ""


def tidy(layer, built: dict) -> dict[str, Any]:
    """The layer's config without the arguments equal to its class's defaults, as plain YAML values.
    `built`: the configs of layers built for the comparison so far, to reuse (a network repeats its layers)."""
    config = layer.get_config()
    required = _required(type(layer))
    reference = _default_config(type(layer), config, required, built)
    kept = {k: v for k, v in config.items() if k not in DROPPED and
            (k in required or reference is None or k not in reference or reference[k] != v)}
    try:  # a left-out argument may have set another's default (a pool's strides follow its pool_size)
        again = _config_built_from(type(layer), kept, built)
        kept.update({k: v for k, v in config.items() if k not in DROPPED and again.get(k) != v})
    except Exception:  # noqa: BLE001 - then keep every argument
        kept = {k: v for k, v in config.items() if k not in DROPPED}
    if config.get("trainable") is False:
        kept["trainable"] = False
    return _plain(kept)


def _required(cls) -> list[str]:
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "self"]


def _default_config(cls, config: dict, required: list[str], built: dict) -> dict | None:
    """The config of the class built from only its required arguments (None if it cannot be)."""
    try:
        return _config_built_from(cls, {name: config[name] for name in required}, built)
    except Exception:  # noqa: BLE001 - some classes need more than their required arguments; keep all then
        return None


def _config_built_from(cls, arguments: dict, built: dict) -> dict:
    """`cls(**arguments).get_config()`, kept in `built` by class and arguments (a new layer costs about
    a millisecond, and a network repeats its layers' arguments many times)."""
    key = (cls, repr(sorted(arguments.items())))
    if key not in built:
        built[key] = cls(**copy.deepcopy(arguments)).get_config()
    return copy.deepcopy(built[key])


def _plain(value: Any) -> Any:
    """Tuples as lists; serialized Keras objects as `{class_name, config}` (what Keras' `get` accepts)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"], "config": _plain(value["config"])}
        return {k: _plain(v) for k, v in value.items()}
    return value


def _ref(name: str) -> str:
    """A layer name as an item name: letters, digits and _, not starting with a digit."""
    name = re.sub(r"\W", "_", name)
    return f"_{name}" if name[:1].isdigit() else name


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"


def import_model(source: str, output: str, *, blocks: bool = True, check_size: int = CHECK_SIZE) -> dict[str, Any]:
    """Write the config of SOURCE to `output`, then build it, copy the weights over and compare the
    outputs on random images. Repeated structure becomes blocks and stages (`import_blocks`); if
    that form does not rebuild the same network, the flat list, always correct, is written instead.
    An open input size (None rows and cols) stays open in the config, and the outputs are compared
    on `check_size` x `check_size` images.
    Returns what was checked (parameters, the largest difference, stages found, the size checked)."""
    import time

    import numpy as np

    if check_size < 1:
        raise CnnzooError(f"--check-size must be a positive number of pixels, not {check_size}")
    start = time.perf_counter()
    original = load_source(source)
    flat = config_of(original)
    shape = tuple(check_size if d is None else d for d in original.input_shape[1:])
    images = np.random.default_rng(0).random((2, *shape), np.float32)
    expected = _outputs(original, images, source)

    def check(config: dict[str, Any]) -> tuple[Any, float]:
        _write(config, source, output)
        rebuilt = _rebuilt(output, original)
        return rebuilt, float(np.max(np.abs(expected - np.asarray(rebuilt(images)))))

    def structured() -> tuple[dict[str, Any], Any, float] | None:
        config = _structured(flat) if blocks else None
        if config is None:
            return None
        try:
            rebuilt, difference = check(config)
        except (CnnzooError, ValueError):  # the structured form did not rebuild
            return None
        return (config, rebuilt, difference) if difference <= 1e-4 else None

    # The flat list is always correct: its errors are the import's own.
    config, rebuilt, difference = structured() or (flat, *check(flat))
    stages = [item["stage"] for item in config["model"]["layers"] if "stage" in item]
    return {"source": source, "output": output, "layers": len(original.layers) - 1,
            "items": len(config["model"]["layers"]), "blocks": len(config["model"].get("blocks", {})),
            "stages": stages, "params": rebuilt.count_params(), "params_keras": original.count_params(),
            "max_difference": difference, "checked_at": shape, "open": None in original.input_shape[1:],
            "seconds": time.perf_counter() - start}


def _outputs(original, images, source: str):
    """The original model's outputs on the check's images; a size it cannot take is the user's to change."""
    import numpy as np

    try:
        return np.asarray(original(images))
    except Exception as exc:  # noqa: BLE001 - Keras or TensorFlow: e.g. a window larger than the map at this size
        raise CnnzooError(
            f"`{source}` cannot run on {'x'.join(map(str, images.shape[1:]))} images, the size its outputs are "
            f"checked at: {keras_message(exc)}",
            hint="Its input size is open: give one it takes with --check-size (e.g. 224).") from None


def _structured(flat: dict[str, Any]) -> dict[str, Any] | None:
    from cnnzoo.deploy.import_blocks import merge_alike, with_blocks

    blocks, items = merge_alike(*with_blocks(copy.deepcopy(flat["model"]["layers"])))
    if not blocks:
        return None
    model = {k: v for k, v in flat["model"].items() if k != "layers"}
    return {"model": {**model, "blocks": blocks, "layers": items}}


def _write(config: dict[str, Any], source: str, output: str) -> None:
    from cnnzoo.config.yaml_io import dump_yaml

    open_size = ("# Its input size is open (rows and cols null): training needs data.preprocessing.resize.\n"
                 if None in config["model"]["input_shape"] else "")
    Path(output).write_text(f"# Imported by `cnnzoo import {source}`: the same layers, arguments and weight order\n"
                            f"# as the Keras model (arguments at their defaults are left out).\n{open_size}"
                            + dump_yaml(config))


def _rebuilt(output: str, original):
    from cnnzoo.config.loader import load_config
    from cnnzoo.models.builder import build_model

    rebuilt = build_model(load_config(output))
    rebuilt.set_weights(original.get_weights())
    return rebuilt
