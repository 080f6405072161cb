"""Data-dependent initialisation (`kernel_initializer: {patch_whitening: ...}`): the kernel whitens the
layer's input patches, and a run computes it from training images its seed chooses."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cnnzoo import load_config, train
from cnnzoo.models.builder import build_model
from cnnzoo.models.data_init import initialize, layers_to_initialize
from cnnzoo.training.initialize import training_images
from conftest import TINY, cli

QUICK = TINY
WHITENED_FIRST = ("model.layers.0={Conv2D: {filters: 18, kernel_size: 3, "
                  "kernel_initializer: {patch_whitening: {images: 500, eps: 1.0e-3}}}}")


def _second_moments(layer, images: np.ndarray) -> np.ndarray:
    """The layer's outputs' second-moment matrix over every position of `images`, bias left out."""
    kernel = np.asarray(layer.kernel.numpy(), np.float64)
    out = keras.ops.convert_to_numpy(keras.ops.conv(images.astype("float32"), kernel.astype("float32")))
    flat = out.reshape(-1, out.shape[-1]).astype(np.float64)
    return flat.T @ flat / len(flat)


def _smooth_images(count: int, seed: int) -> np.ndarray:
    """Images whose neighbouring pixels and channels are correlated, as in photographs."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(count, 9, 9, 1)) + 0.3 * rng.normal(size=(count, 9, 9, 3))
    return ((base[:, :-1, :-1] + base[:, 1:, :-1] + base[:, :-1, 1:] + base[:, 1:, 1:]) / 4).astype("float32")


def test_patch_whitening_makes_the_outputs_second_moments_the_identity(tmp_path):
    (tmp_path / "w.yaml").write_text(
        "model:\n  name: w\n  input_shape: [8, 8, 3]\n  num_classes: 4\n  layers:\n"
        "    - Conv2D: {filters: 24, kernel_size: 2, kernel_initializer: {patch_whitening: {images: 300, eps: 1.0e-6}}}\n"
        "    - Flatten\n    - Dense: 4\n    - Activation: softmax\n")
    model = build_model(load_config(tmp_path / "w.yaml"))
    conv, = layers_to_initialize(model)
    images = _smooth_images(400, 0)
    before = _second_moments(conv, images[:300])
    records = initialize(model, lambda n: [images[:128], images[128:n]])
    assert records[0]["images_used"] == 300 and records[0]["patches"] == 300 * 7 * 7
    values = np.array(records[0]["eigenvalues"])
    assert len(values) == 12 and np.all(np.diff(values) <= 0)
    after = _second_moments(conv, images[:300])
    expected = values / (values + 1e-6)  # every direction here varies: all close to 1
    np.testing.assert_allclose(np.diag(after)[:12], expected, rtol=1e-4)
    np.testing.assert_allclose(after[:12, :12], np.diag(expected), atol=1e-4)
    np.testing.assert_allclose(after[12:, 12:], after[:12, :12], atol=1e-6)  # the negated half
    assert np.abs(before - np.diag(np.diag(before))).max() > 0.01  # Keras' initializer does not whiten
    assert not conv.bias.numpy().any()


@pytest.mark.slow
def test_a_runs_whitening_kernel_is_reproducible_from_its_seed_and_recorded(tmp_path):
    from cnnzoo.data.tfds_input import load_datasets

    class First(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.kernel = self.model.layers[1].kernel.numpy().copy()

    overrides = [WHITENED_FIRST, "train.epochs=1", "train.steps_per_epoch=1", "train.pictures=false",
                 "runtime.seed=4"]
    kernels, records = [], []
    for name in ("a", "b"):
        first = First()
        result = train(load_config(QUICK, overrides), output_dir=str(tmp_path / name), log=lambda _: None,
                       callbacks=[first])
        kernels.append(first.kernel)
        records.append(json.loads(result.run_dir.initialization.read_text()))
    assert np.array_equal(*kernels)
    assert records[0] == records[1]
    assert records[0]["seed"] == 4 and records[0]["layers"][0]["layer"] == "conv2d_1"
    assert records[0]["layers"][0]["images_used"] == 500

    # a run resumed with nothing saved starts again, and computes the same kernel again
    import shutil

    from cnnzoo.training.resume import resume
    from cnnzoo.training.run_dir import RunDir

    again = RunDir(tmp_path / "b")
    shutil.rmtree(again.checkpoints)
    again.model.unlink()
    again.initialization.unlink()
    again.update_info(status="interrupted")
    first, lines = First(), []
    resume(str(again.path), log=lines.append, callbacks=[first])
    assert any("has no saved state" in line for line in lines) and any("patch_whitening" in line for line in lines)
    assert np.array_equal(first.kernel, kernels[0])
    assert json.loads(again.initialization.read_text()) == records[0]

    # the images the seed chooses: these, whitened by the run's kernel; another seed chooses others
    config = load_config(QUICK, overrides)
    examples = load_datasets(config, one_hot=True).stream.examples
    chosen = np.concatenate(training_images(examples, 500, 4, config.data.shuffle_buffer))
    other = np.concatenate(training_images(examples, 500, 5, config.data.shuffle_buffer))
    assert chosen.shape == (500, 28, 28, 1) and not np.array_equal(chosen, other)
    model = keras.models.load_model(tmp_path / "a" / "checkpoints" / "last.keras")
    conv = model.layers[1]
    conv.kernel.assign(kernels[0])
    moments = _second_moments(conv, chosen)[:9, :9]
    values = np.array(records[0]["layers"][0]["eigenvalues"])
    np.testing.assert_allclose(moments, np.diag(values / (values + 1e-3)), atol=1e-3)


@pytest.mark.parametrize("layer, message", [
    ("{Conv2D: {filters: 32, kernel_size: 3, kernel_initializer: patch_whitening}}",
     "`patch_whitening` gives at most 2 x 3 x 3 x 1 = 18 filters"),
    ("{Conv2D: {filters: 9, kernel_size: 3, kernel_initializer: {patch_whitening: {images: 0}}}}",
     "`patch_whitening.images` must be a whole number of images > 0"),
    ("{Conv2D: {filters: 9, kernel_size: 3, kernel_initializer: {patch_whitening: {eps: -1}}}}",
     "`patch_whitening.eps` must be a number > 0"),
    ("{Conv2D: {filters: 9, kernel_size: 3, kernel_initializer: {patch_whitening: {count: 5}}}}",
     "`patch_whitening` takes `images` and `eps`, got count"),
])
def test_bad_whitening_settings_are_refused_at_validate(layer, message):
    done = cli("validate", QUICK, f"model.layers.0={layer}")
    assert done.returncode == 2
    assert message in done.stderr and "layer 1 (Conv2D)" in done.stderr
