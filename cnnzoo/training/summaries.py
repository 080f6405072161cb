"""What a run records about its model: a weights digest, and TensorBoard's start extras."""

from __future__ import annotations

import hashlib

from cnnzoo.config.schema import Config
from cnnzoo.training.run_dir import RunDir


def weights_digest(model) -> str:
    """SHA-256 of every weight's bytes, in order: equal digests mean identical models."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()


def write_start_summaries(run: RunDir, config: Config, model) -> None:
    """TensorBoard extras: the resolved config (Text tab) and the op graph of the forward pass.

    Keras 3's TensorBoard callback writes only the conceptual `keras` graph, so the
    op-level graph is traced here once from the model's call.
    """
    import tensorflow as tf

    text = "    " + config.to_yaml().replace("\n", "\n    ")  # indented: a Markdown code block
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    writer = tf.summary.create_file_writer(str(run.logs / "train"))
    with writer.as_default():
        tf.summary.text("config", text, step=0)
        tf.summary.graph(graph)
    writer.close()
