"""Per-class metrics: precision, recall, F1 and support of every class, from a split's predictions.

The numbers are scikit-learn's (`precision_recall_fscore_support`, a class never predicted or never
present counting as 0), computed from the confusion matrix. TensorBoard gets the recall of every
class as a scalar and a precision-recall curve per class (its PR Curves plugin), one class against
the rest, thresholds on the predicted probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnzoo.scores import softmax

MAX_CURVES = 100  # beyond this many classes TensorBoard gets no per-class cards (metrics.json keeps them all)
THRESHOLDS = 201


@dataclass
class Predicted:
    """A split's true classes (n,) and predicted probabilities (n, classes)."""

    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        """Rows: the true class; columns: the predicted one."""
        classes = self.probabilities.shape[1]
        counts = np.zeros((classes, classes), np.int64)
        np.add.at(counts, (self.labels, self.probabilities.argmax(-1)), 1)
        return counts


def predict(model, batches, logits: bool = False) -> Predicted:
    """Predict a batched (image, label) dataset; labels sparse or one-hot, scores probabilities or logits.

    Batches padded to full size (image, label, weight) keep only their weighted examples."""
    import tensorflow as tf

    call, labels, scores = None, [], []
    for batch in batches:
        if call is None:  # a direct call (every image, under any strategy), traced once for any batch size
            spec = tf.TensorSpec([None, *batch[0].shape[1:]], batch[0].dtype)
            call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        classes, kept = np.asarray(batch[1]), (np.asarray(batch[2]) > 0 if len(batch) > 2 else slice(None))
        labels.append((classes.argmax(-1) if classes.ndim == 2 else classes.reshape(-1))[kept])
        scores.append(np.asarray(call(batch[0]), np.float32)[kept])
    scores = softmax(np.concatenate(scores)) if logits else np.concatenate(scores)
    return Predicted(np.concatenate(labels).astype(np.int64), scores)


def per_class(matrix: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """{class name: {precision, recall, f1, support}} from a confusion matrix (rows true, columns predicted)."""
    matrix = np.asarray(matrix, np.float64)
    hits, predicted, support = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)}


def table(rows: dict[str, dict[str, float]]) -> list[str]:
    """The per-class numbers as aligned text lines, a header first."""
    width = max([5, *(len(name) for name in rows)])
    lines = [f"  {'class':<{width}}  precision  recall      f1  support"]
    lines += [f"  {name:<{width}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:6.4f}  {m['support']:7,}"
              for name, m in rows.items()]
    return lines


def write_summaries(logs: Path, predicted: Predicted, names: list[str], step: int) -> None:
    """`per_class_recall/<class>` scalars and `pr_curve/<class>` PR curves in the TensorBoard run `logs`."""
    if len(names) > MAX_CURVES:
        return
    import tensorflow as tf
    from tensorboard.plugins.pr_curve import summary as pr_curve

    rows = per_class(predicted.matrix, names)
    writer = tf.summary.create_file_writer(str(logs))
    with writer.as_default(step=step):
        for index, name in enumerate(names):
            tag = name.replace(" ", "_")
            tf.summary.scalar(f"per_class_recall/{tag}", rows[name]["recall"],
                              description=f"The share of `{name}` examples predicted as `{name}`.")
            curve = pr_curve.pb(f"pr_curve/{tag}", predicted.labels == index, predicted.probabilities[:, index],
                                num_thresholds=THRESHOLDS,
                                description=f"`{name}` against the other classes, thresholds on its probability.")
            tf.summary.experimental.write_raw_pb(curve.SerializeToString(), step=step)
    writer.close()


def split_results(model, data, logits: bool, logs: Path | None, step: int) -> dict[str, dict]:
    """{"validation": rows, "test": rows} for the splits a run has (`per_class` rows); with `logs`, the
    TensorBoard summaries of each in the runs `validation` and `test`. A split read twice is predicted once."""
    names = data.class_names or [str(i) for i in range(data.num_classes)]
    out, seen = {}, {}
    for split, spec, batches in (("validation", data.splits.validation, data.validation),
                                 ("test", data.splits.test, data.test)):
        if batches is None:
            continue
        if spec not in seen:
            seen[spec] = predict(model, batches, logits)
        out[split] = per_class(seen[spec].matrix, names)
        if logs is not None:
            write_summaries(logs / split, seen[spec], names, step)
    return out
