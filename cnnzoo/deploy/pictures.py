"""`cnnzoo pictures`: the pictures a run shows in TensorBoard, as PNG files, from its saved model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from cnnzoo.deploy.runs import load_trained
from cnnzoo.errors import CnnzooError, CnnzooWarning


def write_pictures(path: str, output: str | None = None, config_path: str | None = None,
                   manual_dir: str | None = None, images: list[str] | None = None) -> list[Path]:
    """Render the run's filters, feature maps, confusion matrix, mistakes and Grad-CAM; returns the files written.

    The fixed images and settings are the run's (`train.pictures`, `runtime.seed`), so the files
    match what TensorBoard shows for its last epoch. With `images` (files or folders of them), only
    their Grad-CAM is written, one `grad_cam-<name>.png` each, and the dataset is not read.
    """
    from matplotlib.image import imsave

    config, model = load_trained(path, config_path)
    pictures = _own_images(path, config, model, images) if images else _run_pictures(config, model, manual_dir)
    folder = Path(output) if output else _default_folder(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnzooError(f"cannot create {folder}: {exc.strerror}", hint="Pick another folder with -o DIR.") from None
    written = []
    for tag, picture in pictures:
        file = folder / (tag.replace("/", "-") + ".png")
        imsave(file, picture)
        written.append(file)
    return written


def _run_pictures(config, model, manual_dir: str | None) -> list[tuple[str, np.ndarray]]:
    from cnnzoo.data.tfds_input import load_datasets
    from cnnzoo.models.compile import outputs_logits, uses_one_hot_labels
    from cnnzoo.pictures.learned import Pictures

    data = load_datasets(config, one_hot=uses_one_hot_labels(config.train.loss.name), manual_dir=manual_dir)
    pictures = Pictures.of_run(model, config.train.pictures, data, config.runtime.seed or 0, outputs_logits(config))
    return [(tag, picture) for tag, (picture, _) in pictures.render(data.validation).items()]


def _own_images(path: str, config, model, given: list[str]) -> list[tuple[str, np.ndarray]]:
    """Grad-CAM of each image file (decoded and preprocessed as `cnnzoo predict` does), for its two likeliest classes."""
    from cnnzoo.data.preprocessing import preprocess_images, rounds_pixels
    from cnnzoo.deploy.predict import _pixels, gather
    from cnnzoo.deploy.runs import class_names_of
    from cnnzoo.pictures.grad_cam import GradCam, find_layer
    from cnnzoo.pictures.learned import own_images_grad_cam

    layer = find_layer(model, config.train.pictures.grad_cam_layer)
    if layer is None:
        raise CnnzooError(f"the model `{model.name}` has no layer with spatial output: Grad-CAM cannot be drawn")
    cam, names, shape = GradCam(model, layer.name), class_names_of(path, config), tuple(model.input_shape[1:])
    out, used, unread = [], set(), []
    for source in (source for image in given for source in gather(image, shape)):
        pixels, error = _pixels(source, shape, rounds_pixels(config.data))
        if pixels is None:  # as predict: one bad file of a folder never stops the others
            unread.append(f"{source.label} ({error})")
            continue
        file, _, row = source.label.partition(".npy[")  # a row of an array: x.npy[3] -> x-3
        name = f"grad_cam-{Path(file).stem or 'image'}" + (f"-{row.rstrip(']')}" if row else "")
        while name in used:  # photo.jpg and photo.png, or two folders' photo.jpg
            name += "_"
        used.add(name)
        images = np.asarray(preprocess_images(pixels[None], config.data), np.float32)
        out.append((name, own_images_grad_cam(cam, images, names)))
    if unread and not out:
        raise CnnzooError(f"none of the images could be read: {'; '.join(unread[:3])}" + ("; ..." if len(unread) > 3 else ""))
    for what in unread:
        warnings.warn(f"not drawn: {what}", CnnzooWarning, stacklevel=2)
    return out


def _default_folder(path: str) -> Path:
    given = Path(path)
    return (given if given.is_dir() else given.parent) / "pictures"
