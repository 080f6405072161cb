"""Per-class precision, recall, F1 and support: the numbers, metrics.json, `cnnzoo evaluate`, TensorBoard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import cli
from cnnzoo.training.per_class import Predicted, per_class


def test_per_class_numbers_are_scikit_learns_counts():
    """Counted example by example as scikit-learn's precision_recall_fscore_support does (zero_division=0):
    class 3 is never predicted, class 4 never present."""
    rng = np.random.default_rng(0)
    true = rng.choice([0, 1, 2, 3], 300)
    predicted = np.where(rng.random(300) < 0.6, true, rng.choice([0, 1, 2, 4], 300))
    predicted[predicted == 3] = 0
    probabilities = np.eye(5)[predicted] * 0.9 + 0.02
    rows = per_class(Predicted(true, probabilities).matrix, ["a", "b", "c", "d", "e"])
    for c, name in enumerate("abcde"):
        tp = int(np.sum((predicted == c) & (true == c)))
        fp = int(np.sum((predicted == c) & (true != c)))
        fn = int(np.sum((predicted != c) & (true == c)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert rows[name] == {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}, name
    assert rows["d"]["precision"] == 0 and rows["d"]["support"] > 0 and rows["e"]["support"] == 0


@pytest.mark.slow
def test_a_run_records_per_class_numbers_for_validation_and_test(pictures_run):
    metrics = json.loads((pictures_run / "metrics.json").read_text())
    names = json.loads((pictures_run / "classes.json").read_text())["class_names"]
    for split, accuracy in (("validation", metrics["validation"]["accuracy"]), ("test", metrics["test"]["accuracy"])):
        rows = metrics["per_class"][split]
        assert list(rows) == names
        support = sum(r["support"] for r in rows.values())
        # every example once: the test split, and the last 10% of the training split (quickstart's validation)
        assert support == (metrics["test_examples"] if split == "test" else metrics["train_examples"] // 9)
        # The recalls weighted by support are the accuracy Keras measured on the same model and split.
        assert abs(sum(r["recall"] * r["support"] for r in rows.values()) / support - accuracy) < 1e-6


@pytest.mark.slow
def test_tensorboard_gets_per_class_recall_and_pr_curves(pictures_run):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator

    metrics = json.loads((pictures_run / "metrics.json").read_text())
    for split in ("validation", "test"):
        events = EventAccumulator(str(pictures_run / "logs" / split), size_guidance={TENSORS: 0})
        events.Reload()
        rows = metrics["per_class"][split]
        for name, row in rows.items():
            recall = events.Tensors(f"per_class_recall/{name}")
            assert [e.step for e in recall] == [metrics["epochs_completed"] - 1]
            assert abs(float(tf.make_ndarray(recall[0].tensor_proto)) - row["recall"]) < 1e-6
            curve = events.Tensors(f"pr_curve/{name}/pr_curves")  # the plugin's own suffix
            assert [e.step for e in curve] == [metrics["epochs_completed"] - 1]
            assert events.SummaryMetadata(f"pr_curve/{name}/pr_curves").plugin_data.plugin_name == "pr_curves"
            tp, fp, tn, fn, precision, recall = tf.make_ndarray(curve[0].tensor_proto)
            assert tp[0] == row["support"] and tp[0] + fp[0] == sum(r["support"] for r in rows.values())
            assert recall[0] == 1 and all(np.diff(recall) <= 0)  # from everything called positive, down


@pytest.mark.slow
def test_evaluate_prints_the_per_class_table(pictures_run):
    done = cli("evaluate", pictures_run)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = lines.index("per class:") + 1
    assert lines[header].split() == ["class", "precision", "recall", "f1", "support"]
    metrics = json.loads((pictures_run / "metrics.json").read_text())["per_class"]["test"]
    for line, (name, row) in zip(lines[header + 1:], metrics.items()):
        cells = line.split()
        assert cells[0] == name and float(cells[2]) == round(row["recall"], 4) and int(cells[4].replace(",", "")) \
            == row["support"]
    done = cli("evaluate", pictures_run, "--json")
    assert json.loads(done.stdout)["per_class"] == metrics  # the same model on the same split
