"""What TFDS's metadata says about a dataset, before any download: its builder, image shape and classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnzoo.config.schema import Config, DataConfig
from cnnzoo.errors import CnnzooError, DataError, Location, did_you_mean


@dataclass(frozen=True)
class DatasetSignature:
    """A dataset as a model sees it: image shape (after `preprocessing.resize`) and classes."""

    builder: Any  # the TFDS builder (catalogue copy; preparation may hand back another)
    image_shape: tuple[int | None, ...]
    num_classes: int
    class_names: list[str] | None  # None when the classes are merely numbered


def dataset_signature(config: Config) -> DatasetSignature:
    """From TFDS metadata (no download needed), or for `data.path` from the files' names and headers.
    Also checks the preprocessing against the image channels."""
    if config.data.path:
        from cnnzoo.data.folder_source import open_folder

        folder = open_folder(config)
        return _checked(config, DatasetSignature(folder, folder.image_shape, len(folder.class_names), folder.class_names))
    builder = get_builder(config.data, config.where("data", "name"))
    features = builder.info.features
    image_shape = tuple(features["image"].shape)
    if config.data.preprocessing.resize:
        image_shape = (*config.data.preprocessing.resize, image_shape[-1])
    return _checked(config, DatasetSignature(builder, image_shape, features["label"].num_classes, label_names(features)))


def _checked(config: Config, signature: DatasetSignature) -> DatasetSignature:
    channels = signature.image_shape[-1]
    for key in ("mean", "std"):
        values = getattr(config.data.preprocessing, key)
        if values is not None and len(values) not in (1, channels):
            raise DataError(
                f"{len(values)} values, one per channel, but the model's images have {channels} channel"
                + ("s" if channels > 1 else "") + (f" (`data.color_mode: {config.data.color_mode}`)" if config.data.path
                                                    else f" (`{config.data.name}`'s)"),
                location=config.where("data", "preprocessing", key),
                path=f"data.preprocessing.{key}",
                hint=f"Give one value per channel ({channels}), or one for all.",
            )
    return signature


def label_names(features) -> list[str] | None:
    """A builder's class names (None when merely numbered, e.g. before TFDS has read them from the data)."""
    names = list(features["label"].names)
    return None if names == [str(i) for i in range(len(names))] else names


def class_names(config: Config) -> list[str] | None:
    """The dataset's class names (None when unknown or merely numbered): a nicety that never fails."""
    try:
        return dataset_signature(config).class_names
    except CnnzooError:
        return None


def get_builder(data: DataConfig, where: Location | None):
    """The TFDS builder for `data.name`; unknown names get suggestions."""
    import tensorflow_datasets as tfds

    import cnnzoo.data.sample_dataset  # noqa: F401  (registers mnist_sample)

    try:
        builder = tfds.builder(data.name, data_dir=data.data_dir)
    except Exception as exc:  # DatasetNotFoundError is a ValueError; odd names and builders raise others
        names = tfds.list_builders(with_community_datasets=False)
        known = data.name in names
        raise DataError(
            f"TFDS cannot open dataset `{data.name}`: {type(exc).__name__}" if known
            else f"TFDS has no dataset `{data.name}`.{did_you_mean(data.name, names)}",
            location=where,
            path="data.name",
            hint="See https://www.tensorflow.org/datasets/catalog for names; `mnist_sample` ships with cnnzoo.",
        ) from None
    features = builder.info.features
    if not {"image", "label"} <= set(getattr(features, "keys", lambda: [])()):
        raise DataError(
            f"dataset `{data.name}` has no `image` and `label` features; cnnzoo trains image classifiers",
            location=where,
            path="data.name",
        )
    return builder
