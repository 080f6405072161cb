"""With static batch shapes (TPUs), validation and test still count every example: the last batch is
padded with zero-weight copies instead of being dropped."""

from __future__ import annotations

import keras
import numpy as np

from cnnzoo import load_config
from cnnzoo.data import tfds_input
from cnnzoo.models.compile import compile_model
from conftest import CONFIGS


def test_every_test_example_is_evaluated_in_full_batches():
    config = load_config(CONFIGS / "quickstart.yaml", ["data.batch_size=64"])
    padded = tfds_input.load_datasets(config, one_hot=True, static_shapes=True)
    plain = tfds_input.load_datasets(config, one_hot=True)
    examples = plain.splits.size(plain.splits.test)
    assert examples % 64  # the sample's test split does not fill its last batch
    weights = np.concatenate([w.numpy() for _, _, w in padded.test])
    assert {len(x) for x, _, _ in padded.test} == {64} and weights.sum() == examples

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    compile_model(model, config)  # as a run compiles: its metrics honour the padding's zero weights
    on_tpu_shapes = model.evaluate(padded.test, return_dict=True, verbose=0)
    as_usual = model.evaluate(plain.test, return_dict=True, verbose=0)
    assert on_tpu_shapes["accuracy"] == as_usual["accuracy"]  # the padding counts for nothing
    # The loss of the last batch is still divided by the whole batch (Keras' sum_over_batch_size): lower.
    assert on_tpu_shapes["loss"] < as_usual["loss"]
