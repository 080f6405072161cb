"""The lecture's arithmetic for a user's own model: output sizes, parameter sharing, sparse
interactions, and convolution as multiplication by a (doubly block) Toeplitz matrix."""

from __future__ import annotations

from math import prod

import numpy as np

from cnnzoo.errors import CnnzooError, did_you_mean
from cnnzoo.models.inspect import input_shape
from cnnzoo.models.shapes import fmt_dims


def explain(model) -> list[str]:
    """One paragraph per convolution, pooling and Dense layer, with the numbers filled in."""
    lines = []
    for layer in model.layers[1:]:
        kind = layer.__class__.__name__
        if kind in ("Conv2D",) or kind.endswith("Pooling2D") and not kind.startswith("Global"):
            lines.append(_explain_window(layer))
        elif kind == "Dense":
            lines.append(_explain_dense(layer))
    return lines


def output_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> tuple[int, int]:
    """(output size, total padding 2P) as TensorFlow computes them for `valid` and `same`."""
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - k) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + k - size, 0)


def _explain_window(layer) -> str:
    inp = input_shape(layer)
    out = tuple(layer.output.shape[1:])
    window = getattr(layer, "kernel_size", None) or layer.pool_size
    strides, padding = layer.strides, layer.padding
    dilation = (getattr(layer, "dilation_rate", None) or (1, 1))[0]
    size, pad = output_size(inp[0], window[0], strides[0], padding, dilation)
    k = (window[0] - 1) * dilation + 1
    text = [f"{layer.name} ({layer.__class__.__name__} {window[0]}x{window[1]}, stride {strides[0]}, "
            f"padding {padding}): {fmt_dims(inp)} -> {fmt_dims(out)}",
            f"  size: (W - K + 2P)/S + 1 = ({inp[0]} - {k} + {pad})/{strides[0]} + 1 = {size}"
            + (" (rounded down)" if (inp[0] - k + pad) % strides[0] else "")]
    if hasattr(layer, "kernel"):
        cin, cout = inp[-1], out[-1]
        weights = prod(window) * cin * cout
        bias = cout if layer.use_bias else 0
        n_in, n_out = prod(inp), prod(out)
        dense = n_in * n_out + (n_out if layer.use_bias else 0)
        text.append(f"  parameters: {window[0]}*{window[1]}*{cin}*{cout} weights + {bias} biases = {weights + bias:,}, "
                    f"shared by all {out[0]}*{out[1]} positions; a dense layer from {n_in:,} inputs to {n_out:,} "
                    f"outputs would need {dense:,} ({dense / (weights + bias):,.0f}x more)")
        k_in = prod(window) * cin
        text.append(f"  connections: each of the m = {n_out:,} outputs sees k = {window[0]}*{window[1]}*{cin} = {k_in} "
                    f"inputs (sparse, m*k = {n_out * k_in:,}) instead of all n = {n_in:,} (dense, m*n = {n_out * n_in:,})")
    return "\n".join(text)


def _explain_dense(layer) -> str:
    n_in = input_shape(layer)[-1]
    units = layer.units
    bias = units if layer.use_bias else 0
    return (f"{layer.name} (Dense): weight matrix {n_in}x{units} + {bias} biases = {n_in * units + bias:,} parameters")


def toeplitz_of(model, name: str) -> tuple[np.ndarray, str]:
    """(matrix, title) for `cnnzoo inspect --toeplitz NAME`: the named Conv2D's channel 0 -> 0 matrix."""
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise CnnzooError(f"the model has no layer `{name}`.{did_you_mean(name, names)}",
                          hint="`cnnzoo inspect CONFIG` lists the layer names.")
    layer = model.get_layer(name)
    shape = input_shape(layer)
    if shape[0] * shape[1] > 4096:
        raise CnnzooError(
            f"{name}'s input is {shape[0]}x{shape[1]}: its matrix would have {shape[0] * shape[1]:,} columns",
            hint="Inspect a small input, e.g. `model.input_shape=[6,6,1]` (add padding: same if the layers need it).",
        )
    matrix = toeplitz(layer, shape)
    return matrix, f"{name}: {matrix.shape[0]}x{matrix.shape[1]} matrix (input channel 0 -> output channel 0, no bias)"


def toeplitz(layer, input_shape: tuple[int, ...], in_channel: int = 0, out_channel: int = 0) -> np.ndarray:
    """The matrix T with conv(x)[out_channel].ravel() == T @ x[..., in_channel].ravel() (bias left out).

    Keras convolutions are cross-correlations, like `tf.nn.conv2d`: no kernel flip. Rows are
    output positions, columns input pixels, both in row-major order.
    """
    if layer.__class__.__name__ != "Conv2D":
        raise CnnzooError(f"--toeplitz needs a Conv2D layer; {layer.name} is a {layer.__class__.__name__}")
    rows, cols = input_shape[0], input_shape[1]
    kernel = np.asarray(layer.kernel)[:, :, in_channel, out_channel]
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    out_h, pad_h = output_size(rows, kh, sh, layer.padding, dh)
    out_w, pad_w = output_size(cols, kw, sw, layer.padding, dw)
    top, left = pad_h // 2, pad_w // 2  # TensorFlow puts the odd padding pixel at the bottom/right
    matrix = np.zeros((out_h * out_w, rows * cols), dtype=kernel.dtype)
    for oy in range(out_h):
        for ox in range(out_w):
            for ky in range(kh):
                for kx in range(kw):
                    y, x = oy * sh + ky * dh - top, ox * sw + kx * dw - left
                    if 0 <= y < rows and 0 <= x < cols:
                        matrix[oy * out_w + ox, y * cols + x] = kernel[ky, kx]
    return matrix


def format_matrix(matrix: np.ndarray) -> str:
    """A small matrix as text, zeros shown as dots so the band structure stands out."""
    cells = [["." if v == 0 else f"{v:+.2f}" for v in row] for row in matrix]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(" ".join(c.rjust(width) for c in row) for row in cells)


def save_matrix_png(matrix: np.ndarray, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(8, 8 * matrix.shape[0] / max(matrix.shape[1], 1) + 1))
    limit = float(np.abs(matrix).max()) or 1.0
    ax.imshow(matrix, cmap="RdBu", vmin=-limit, vmax=limit, interpolation="nearest", aspect="auto")
    ax.set_xlabel("input pixel (row-major)")
    ax.set_ylabel("output position (row-major)")
    ax.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
