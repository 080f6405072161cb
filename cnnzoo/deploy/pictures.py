"""`cnnzoo pictures`: the pictures a run shows in TensorBoard, as PNG files, from its saved model."""

from __future__ import annotations

from pathlib import Path

from cnnzoo.deploy.runs import load_trained
from cnnzoo.errors import CnnzooError


def write_pictures(path: str, output: str | None = None, config_path: str | None = None,
                   manual_dir: str | None = None) -> list[Path]:
    """Render the run's filters, feature maps, confusion matrix and mistakes; returns the files written.

    The fixed images and settings are the run's (`train.pictures`, `runtime.seed`), so the files
    match what TensorBoard shows for its last epoch.
    """
    from matplotlib.image import imsave

    from cnnzoo.data.tfds_input import load_datasets
    from cnnzoo.models.compile import outputs_logits, uses_one_hot_labels
    from cnnzoo.pictures.learned import Pictures

    config, model = load_trained(path, config_path)
    data = load_datasets(config, one_hot=uses_one_hot_labels(config.train.loss.name), manual_dir=manual_dir)
    pictures = Pictures.of_run(model, config.train.pictures, data, config.runtime.seed or 0, outputs_logits(config))
    folder = Path(output) if output else _default_folder(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnzooError(f"cannot create {folder}: {exc.strerror}", hint="Pick another folder with -o DIR.") from None
    written = []
    for tag, (picture, _) in pictures.render(data.validation).items():
        file = folder / (tag.replace("/", "-") + ".png")
        imsave(file, picture)
        written.append(file)
    return written


def _default_folder(path: str) -> Path:
    given = Path(path)
    return (given if given.is_dir() else given.parent) / "pictures"
