"""Grad-CAM (Selvaraju et al., 2017): where in an image a class's evidence lies, for the model as trained.

The maps of one layer with spatial output (by default the last one before global pooling or
flatten: the last convolutional stage) are weighted, channel by channel, by the mean gradient of
a class's score over them, summed, and kept where positive. The score is the one before the
softmax, as the method requires; a model that outputs logits has nothing to remove.

The gradients are taken on a float32 copy of the model (a mixed-precision model's float16 or
bfloat16 maps and gradients are too coarse for them), its weights copied from the model before
each use.
"""

from __future__ import annotations

import numpy as np

from cnnzoo.errors import ConfigError, Location, did_you_mean

KEY = "train.pictures.grad_cam_layer"
# Layers that leave the maps as they are at inference: the stage's own maps lie before them.
PASS_THROUGH = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                "GaussianDropout", "AlphaDropout", "ActivityRegularization")
SHOWN_CHOICES = 8  # layers named in an error message (the last ones, nearest the output)


def _is_spatial(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.InputLayer):
        return False
    try:
        return len(layer.output.shape) == 4
    except (AttributeError, ValueError):  # a layer used more than once has no single output
        return False


def spatial_layers(model) -> list[str]:
    """The names of the layers Grad-CAM can read, in graph order."""
    return [layer.name for layer in model.layers if _is_spatial(layer)]


def _producer(tensor):
    return tensor._keras_history[0]  # the layer (operation) that made a symbolic tensor


def find_layer(model, name: str | None = None, where: Location | None = None):
    """The layer Grad-CAM reads: `name`, or the last spatial one on the way back from the output.

    Returns None when the model has no layer with spatial output (and no `name` was asked for).

    Raises:
        ConfigError: `name` is not a layer of the model, or its output is not spatial (rank 4).
    """
    choices = spatial_layers(model)
    listed = ", ".join(f"`{c}`" for c in choices[-SHOWN_CHOICES:])
    more = f" (the last {SHOWN_CHOICES} of {len(choices)}; `cnnzoo inspect` lists them all)" \
        if len(choices) > SHOWN_CHOICES else ""
    offer = f"Layers with spatial output: {listed}{more}; or remove the key to use the last one." if choices \
        else "The model has no layer with spatial output: remove the key."
    if name is not None:
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise ConfigError(f"no layer `{name}` in the model for Grad-CAM.{did_you_mean(name, choices)}",
                              location=where, path=KEY, hint=offer) from None
        if not _is_spatial(layer):
            raise ConfigError(f"`{name}` ({type(layer).__name__}) has output shape {tuple(layer.output.shape)}, "
                              "not (batch, rows, columns, channels): Grad-CAM needs a layer with spatial maps",
                              location=where, path=KEY, hint=offer)
        return layer
    layer = _producer(model.outputs[0])
    while not _is_spatial(layer) or type(layer).__name__ in PASS_THROUGH:
        inputs = layer.input
        inputs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        if not hasattr(inputs, "_keras_history"):
            return None
        layer = _producer(inputs)
        if type(layer).__name__ == "InputLayer":
            return None
    return layer


def _float32(config):
    """A model config with every layer's dtype policy float32 (the inputs' dtypes are kept)."""
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if key == "dtype" and isinstance(value, dict) and "DTypePolicy" in str(value.get("class_name")):
                out[key] = "float32"
            elif key == "dtype" and value in ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16"):
                out[key] = "float32"
            else:
                out[key] = _float32(value)
        return out
    if isinstance(config, list):
        return [_float32(item) for item in config]
    return config


class GradCam:
    """Grad-CAM of `model` at `layer_name`; `heat(images, classes)` gives maps at the images' size, in [0, 1]."""

    def __init__(self, model, layer_name: str):
        import keras

        self.model, self.layer_name = model, layer_name
        copy = type(model).from_config(_float32(model.get_config()))
        maps, fed = None, {}  # fed: a layer's input, where the layer was called again
        if isinstance(copy, keras.Sequential):  # as a Functional model: one node per layer, maps and scores linked
            tensor = inputs = keras.Input(copy.input_shape[1:])
            for layer in copy.layers:
                fed[layer.name], tensor = tensor, layer(tensor)
                maps = tensor if layer.name == layer_name else maps
            copy = keras.Model(inputs, tensor)
        output = _producer(copy.outputs[0])
        scores = copy.outputs[0]
        activation = getattr(output, "activation", None)
        if isinstance(output, keras.layers.Softmax) or (isinstance(output, keras.layers.Activation)
                                                       and getattr(activation, "__name__", "") == "softmax"):
            scores = fed.get(output.name, output.input)  # a separate softmax layer: its input is the score
        elif getattr(activation, "__name__", "") == "softmax":
            output.activation = keras.activations.linear  # read at call time: this copy's scores are pre-softmax
        self.copy = copy
        maps = copy.get_layer(layer_name).output if maps is None else maps
        self.scorer = keras.Model(copy.inputs[0], [maps, scores])

    def heat(self, images: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(heat maps (n, rows, cols) in [0, 1] at the images' size, pre-softmax scores (n, classes))."""
        import tensorflow as tf

        self.copy.set_weights(self.model.get_weights())
        x = tf.convert_to_tensor(np.asarray(images, np.float32))
        with tf.GradientTape() as tape:
            maps, scores = self.scorer(x, training=False)
            chosen = tf.gather(scores, tf.convert_to_tensor(np.asarray(classes, np.int32)), batch_dims=1)
        gradients = tape.gradient(chosen, maps)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, x.shape[1:3], method="bilinear")[..., 0].numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
        return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0), scores.numpy()

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The pre-softmax scores (n, classes) of the model as it is now."""
        self.copy.set_weights(self.model.get_weights())
        return np.asarray(self.scorer(np.asarray(images, np.float32), training=False)[1])


