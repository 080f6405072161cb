"""`cnnzoo evaluate`: a trained model's metrics on a split of its dataset."""

from __future__ import annotations

from typing import Any

from cnnzoo.deploy.runs import load_trained


def evaluate(path: str, split: str | None = None, config_path: str | None = None,
             manual_dir: str | None = None) -> dict[str, Any]:
    """{"model", "dataset", "split", "metrics": {name: value}, "per_class": {class: {precision, recall, f1,
    support}}} for the run's test split or `split`."""
    from cnnzoo.data.tfds_input import load_datasets
    from cnnzoo.deploy.runs import class_names_of
    from cnnzoo.models.compile import build_metrics, compile_model, outputs_logits, uses_one_hot_labels
    from cnnzoo.training.per_class import per_class, predict
    from cnnzoo.training.tta import augmented_test

    config, model = load_trained(path, config_path)
    data = load_datasets(config, one_hot=uses_one_hot_labels(config.train.loss.name), manual_dir=manual_dir,
                         evaluated=split)
    if not model.compiled:
        compile_model(model, config)
    build_metrics(model, data.test.element_spec)
    metrics = {k: float(v) for k, v in model.evaluate(data.test, return_dict=True, verbose=0).items()}
    tta, _ = augmented_test(model, data.test, config)  # with train.test_time_augmentation: accuracy_tta
    predicted = predict(model, data.test, outputs_logits(config))
    names = class_names_of(path, config) or data.class_names
    names = names if names and len(names) == predicted.probabilities.shape[1] else \
        [str(i) for i in range(predicted.probabilities.shape[1])]
    return {"model": model.name, "dataset": config.data.name, "split": split or config.data.test_split,
            "metrics": {**metrics, **tta}, "per_class": per_class(predicted.matrix, names)}
