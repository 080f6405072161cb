"""What a built model computes, layer by layer: shapes, parameters, multiply-accumulates, receptive fields.

Conventions (stated, since published figures differ): MACs count the multiply-accumulates
of convolutions and Dense layers per image (BatchNormalization, activations, pooling and
additions are not counted, as in He et al. and most model zoos); FLOPs = 2 x MACs. The
receptive field is the side, in input pixels, of the window one output position sees,
along the first spatial axis, and `jump` is the distance in input pixels between
neighbouring outputs (the product of strides so far). After Flatten, Dense or global
pooling every output sees the whole input ("all").
"""

from __future__ import annotations

from cnnzoo import keras_internals

from dataclasses import asdict, dataclass
from math import prod
from typing import Any

GLOBAL = None  # receptive field covering the whole input


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    output_shape: list[int | None]
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    receptive_field: int | None  # None: the whole input
    jump: int | None


def analyse(model) -> list[LayerRow]:
    """One row per layer (the input excluded), in the model's topological order."""
    fields: dict[int, tuple[int | None, int | None]] = {}  # id(layer) -> (receptive field, jump)
    rows = []
    for layer in model.layers:
        inputs = _input_layers(layer)
        if not inputs:  # InputLayer
            fields[id(layer)] = (1, 1)
            continue
        fields[id(layer)] = field = _receptive_field(layer, [fields[id(i)] for i in inputs])
        trainable = sum(_size(w) for w in layer.trainable_weights)
        total = sum(_size(w) for w in layer.weights)
        rows.append(LayerRow(
            name=layer.name, type=layer.__class__.__name__, output_shape=list(layer.output.shape[1:]),
            params=total, trainable_params=trainable, non_trainable_params=total - trainable,
            macs=macs(layer), receptive_field=field[0], jump=field[1],
        ))
    return rows


def summary(model) -> dict[str, Any]:
    """The model's rows and totals, as `cnnzoo inspect --json` prints them (stable keys)."""
    rows = analyse(model)
    total_macs = sum(r.macs for r in rows)
    trainable = sum(r.trainable_params for r in rows)
    total = sum(r.params for r in rows)
    return {
        "model": model.name,
        "input_shape": list(model.input_shape[1:]),
        "output_shape": list(model.output_shape[1:]),
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": total - trainable,
        "frozen_params": sum(r.params for r in rows if not model.get_layer(r.name).trainable),
        "macs": total_macs,
        "flops": 2 * total_macs,
        "layers": [asdict(r) | {"flops": 2 * r.macs} for r in rows],
    }


def macs(layer) -> int:
    """Multiply-accumulates per image of one layer (0 for layers that are not convolutions or Dense)."""
    kind = layer.__class__.__name__
    out = layer.output.shape[1:]
    inp = input_shape(layer)
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        groups = getattr(layer, "groups", 1) or 1
        return prod(out[:-1]) * out[-1] * prod(layer.kernel_size) * inp[-1] // groups
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return prod(out[:-1]) * out[-1] * prod(layer.kernel_size)
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        depth = inp[-1] * layer.depth_multiplier
        return prod(out[:-1]) * (depth * prod(layer.kernel_size) + depth * out[-1])
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        return prod(inp[:-1]) * inp[-1] * prod(layer.kernel_size) * out[-1]
    if kind == "Dense":
        return prod(inp[:-1]) * inp[-1] * out[-1]
    return 0


def _receptive_field(layer, inputs: list[tuple[int | None, int | None]]) -> tuple[int | None, int | None]:
    kind = layer.__class__.__name__
    if any(rf is GLOBAL for rf, _ in inputs) or kind in ("Flatten", "Dense") or kind.startswith("Global"):
        return GLOBAL, None
    rf = max(r for r, _ in inputs)
    jump = max(j for _, j in inputs)
    window = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    if window is None:  # shape-preserving, merges, padding, reshapes: the window is unchanged
        return rf, jump
    dilation = (getattr(layer, "dilation_rate", None) or (1,))[0]
    strides = (getattr(layer, "strides", None) or window)[0]
    return rf + (window[0] - 1) * dilation * jump, jump * strides


def _input_layers(layer) -> list:
    return keras_internals.inbound_layers(layer)


def input_shape(layer) -> tuple:
    """A layer's (first) input shape, batch axis left out."""
    return keras_internals.input_shape(layer)


def _size(weight) -> int:
    return prod(weight.shape)


def render(info: dict[str, Any]) -> str:
    """`cnnzoo inspect`'s table: one line per layer, then the totals."""
    header = ("layer", "type", "output", "params", "non-train.", "MACs", "RF", "jump")
    lines = [header]
    for row in info["layers"]:
        rf = "all" if row["receptive_field"] is GLOBAL else str(row["receptive_field"])
        jump = "-" if row["jump"] is None else str(row["jump"])
        lines.append((row["name"], row["type"], "x".join(map(str, row["output_shape"])), f"{row['params']:,}",
                      f"{row['non_trainable_params']:,}", f"{row['macs']:,}", rf, jump))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    frozen = f", of which {info['frozen_params']:,} frozen by model.freeze" if info.get("frozen_params") else ""
    text.append(
        f"total: {info['total_params']:,} parameters ({info['trainable_params']:,} trainable, "
        f"{info['non_trainable_params']:,} non-trainable{frozen}); {info['macs']:,} MACs = {info['flops']:,} FLOPs per image "
        f"({_si(info['macs'])}MACs); input {'x'.join(map(str, info['input_shape']))}"
    )
    return "\n".join(text)


def _si(count: int) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.3g} {prefix}"
    return f"{count} "
