"""The typed config: every key a user may write, its type, default and meaning.

Sections split by concern: `model` (what to build), `data` (what to feed it),
`train` (how to fit it) and `runtime` (where and how reproducibly it runs).
Unknown keys are rejected (`extra="forbid"`) and types are strict, so a YAML
typo never silently becomes a default. Keras-specific names (layer classes,
optimizer arguments) are checked later against Keras itself, where the
knowledge lives (`cnnzoo.config.items`, `cnnzoo.models.compile`).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional, Union

from pydantic import Field, PositiveInt, PrivateAttr, field_validator

from cnnzoo.config.runtime_schema import RuntimeConfig
from cnnzoo.config.search_schema import SearchConfig
from cnnzoo.config.sections import CallItem, Section
from cnnzoo.config.train_schema import TrainConfig
from cnnzoo.config.yaml_io import dump_yaml, nearest_mark
from cnnzoo.errors import Location



class BlockConfig(Section):
    """A named, reusable residual block: `pre` -> (`layers` + shortcut) -> Add -> `after`.

    Layer arguments may refer to the block's parameters as `$name` or `${expression}`
    (e.g. `${4 * filters}`); stages and block items in `model.layers` set them.
    """

    params: dict[str, Any] = Field(
        {}, description="The block's parameters and their defaults (null: must be given where the block is used)."
    )
    pre: list[CallItem] = Field(
        [], description="Layers before the split, shared by both paths when the shortcut is a projection "
        "(pre-activation, ResNet v2)."
    )
    layers: list[CallItem] = Field(..., min_length=1, description="The residual path F(x).")
    shortcut: str = Field(
        "identity",
        description="What is added to F(x): `identity` (x itself; shapes must match), `A` (identity, or when "
        "shapes change: stride subsampling and zero-padded channels, no parameters), `B` (identity, or when "
        "shapes change: the `projection` layers), or `none` (no shortcut: a plain net).",
    )
    projection: Optional[list[CallItem]] = Field(
        None, description="Shortcut B's layers when channels change (default: 1x1 Conv2D with the block's "
        "strides, then BatchNormalization)."
    )
    after: list[CallItem] = Field([], description="Layers after the Add (e.g. the ReLU of ResNet v1).")


class ModelConfig(Section):
    name: str = Field("model", description="Model name; also names the run directory. Letters, digits, `_`, "
                      "`.` and `-` (TensorFlow's name scopes allow no others).")
    input_shape: Optional[list[Optional[PositiveInt]]] = Field(
        None,
        description="Input image shape, channels last: [rows, cols, channels]. "
        "Channels-first Keras-1 shapes like [1, 28, 28] are converted with a warning. "
        "`[null, null, 3]` leaves the size open (a model that ends in global pooling, as `cnnzoo import` writes "
        "for one): training then needs `data.preprocessing.resize`, which sets it. "
        "Default: the dataset's image shape.",
    )
    num_classes: Optional[int] = Field(
        None, description="Classes the model must output; checked against the last layer and the dataset."
    )
    layers: list[CallItem] = Field(
        ...,
        min_length=1,
        description="The network as a list of items: `LayerClass: args` (any class of `keras.layers` by name), "
        "`BlockName: {params}` (a block of `model.blocks`), or `stage: {block: NAME, repeat: N, first: {...}, "
        "last: {...}, **params}`. A Conv2D's `kernel_initializer: {patch_whitening: {images: N, eps: E}}` is "
        "computed from N training images before the first step; `kernel_initializer: dirac` starts a kernel as "
        "the identity (docs/runs.md).",
    )
    params: dict[str, Any] = Field(
        {}, description="Variables for `$name` / `${expression}` in layers and stages (e.g. a depth `n`)."
    )
    blocks: dict[str, BlockConfig] = Field({}, description="Named blocks that `model.layers` may use.")
    layer_defaults: dict[str, dict[str, Any]] = Field(
        {}, description="Default arguments per layer class, e.g. `Conv2D: {use_bias: false}`; "
        "arguments written on a layer win."
    )
    weights: Optional[str] = Field(
        None, description="Start from trained weights: a .keras or .weights.h5 file, a cnnzoo run folder (its "
        "checkpoints/best.keras, else model.keras), or `imagenet` (keras.applications' weights, for configs that set "
        "`application`; downloaded once by Keras into ~/.keras/models/). Layers are matched by name and weight shapes "
        "(keras.applications' in order); the run says how many loaded and lists those skipped, e.g. a classifier for "
        "another number of classes.",
    )
    application: Optional[str] = Field(
        None, description="The keras.applications network this config is laid out as (e.g. MobileNetV2): what "
        "`weights: imagenet` loads, layer by layer.",
    )
    freeze: Union[str, list[str], None] = Field(
        None, description="Layers that do not train: a layer name freezes it and every layer before it; a list of "
        "names or shell patterns (`conv2d*`) freezes those. Frozen BatchNormalization layers run in inference mode "
        "(their statistics stay). `cnnzoo inspect` shows trainable and frozen parameters.",
    )


    @field_validator("input_shape")
    @classmethod
    def _open_size(cls, value: Optional[list[Optional[int]]]) -> Optional[list[Optional[int]]]:
        if value is not None and None in value and (len(value) < 2 or value[-1] is None):
            raise ValueError("only rows and cols may be null (an open size, e.g. [null, null, 3]); "
                             "the channels must be given")
        return value

    @field_validator("name")
    @classmethod
    def _scope_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.][A-Za-z0-9_.-]*", value):
            raise ValueError("a model name may hold letters, digits, `_`, `.` and `-` only, and must not start "
                             "with `_` or `-` (TensorFlow names its operations after it)")
        return value


class PreprocessingConfig(Section):
    resize: Optional[list[PositiveInt]] = Field(
        None, min_length=2, max_length=2,
        description="[rows, cols] to resize every image to first (for datasets of mixed sizes, e.g. ImageNet).",
    )
    rescale: bool = Field(
        True, description="Scale pixels from 0-255 to [0, 1]. false: the model gets 0-255, for models that scale "
        "their own input (keras.applications' EfficientNet begins with Rescaling and Normalization layers).",
    )
    mean: Optional[list[float]] = Field(
        None, description="Per-channel mean subtracted after scaling pixels to [0, 1] (or not, see `rescale`)."
    )
    std: Optional[list[float]] = Field(None, description="Per-channel std divided after subtracting `mean`.")


class AugmentationConfig(Section):
    pad_crop: int = Field(
        0, ge=0, description="Pad each side with this many zero pixels, then crop a random window of the "
        "input size (the ResNet paper's CIFAR augmentation uses 4)."
    )
    horizontal_flip: Union[bool, Literal["alternate"]] = Field(
        False, description="Flip half the training images left to right: `true`, a random half each epoch; "
        "`alternate`, a random half in the first epoch, then every image the other way from the epoch before "
        "(airbench's alternating flip: each image is seen both ways in every two epochs)."
    )


class DataConfig(Section):
    name: str = Field("mnist", min_length=1, description="A TFDS dataset name (e.g. mnist, fashion_mnist, mnist_sample); "
                      "with `path`, replaced by the folder's (or CSV's) name in the run's records.")
    path: Optional[str] = Field(
        None, description="Your own images instead of a TFDS dataset: a folder of class subfolders (`DIR/<class>/*.jpg`, "
        "as Keras' image_dataset_from_directory reads), or of `train/`, `test/` (and `validation/` or `val/`) "
        "subfolders of them, or a CSV file with a header and columns `path,label` (paths relative to the CSV) and "
        "optionally `split`. Relative to the config file's folder when not found from the working directory.",
    )
    color_mode: Literal["rgb", "grayscale"] = Field(
        "rgb", description="With `path`: images become 3 channels (rgb) or 1 (grayscale), converted as TensorFlow "
        "converts (Keras' name and default).",
    )
    batch_size: int = Field(128, gt=0, description="Global batch size (summed over replicas).")
    train_split: str = Field("train", description="TFDS split to train on (slicing like `train[:10%]` works).")
    validation_split: Union[float, str, None] = Field(
        0.1, description="What is evaluated after each epoch (and selects checkpoints/best.keras): a fraction "
        "(default 0.1: the last 10% of train_split is held out, as Keras' `fit(validation_split=0.1)`), a TFDS "
        "split name (e.g. `validation`; `test` works, with a warning that model selection then sees the test set), "
        "or null for none.",
    )
    test_split: Union[float, str] = Field(
        "test", description="Split for the final test metrics in metrics.json, evaluated once, after training. With "
        "`path`: a fraction of the images held out by a hash of each file's path (the default, `test`, holds out "
        "0.1 when the files give no test split), so images added later never move old ones between splits.",
    )
    data_dir: Optional[str] = Field(None, description="TFDS data directory (default: TFDS's, ~/tensorflow_datasets).")
    manual_dir: Optional[str] = Field(
        None,
        description="Folder holding the dataset's original archive files, for offline preparation "
        "(also --manual-dir or CNNZOO_MANUAL_DIR).",
    )
    shuffle_buffer: int = Field(10_000, gt=0, description="Examples in the tf.data shuffle buffer.")
    cache: Union[bool, Literal["auto"]] = Field(
        "auto", description="Cache decoded, preprocessed examples in memory. auto (default): when their float32 "
        "pixels, counted from TFDS's metadata, fit in a quarter of this machine's memory (MNIST and CIFAR do, "
        "ImageNet does not). A cached split is also kept decoded on disk beside TFDS's files, so later runs "
        "skip decoding it (docs/data.md).",
    )
    autotune: bool = Field(
        False,
        description="tf.data autotuning. Off by default: its background thread made each new iterator "
        "(every epoch, every validation) wait ~2 s on this project's CPU benchmarks; maps then run one "
        "call per core. Turn on for pipelines that decode or augment heavily.",
    )
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    augmentation: AugmentationConfig = Field(
        default_factory=AugmentationConfig,
        description="Random changes to training images, in the tf.data pipeline (never part of the saved model).",
    )


    @field_validator("validation_split", "test_split")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError("a fraction of the training split must be between 0 and 1 (e.g. 0.1)")
        return value


class Config(Section):
    """A whole experiment: what to build, what to feed it, how to train it, where."""

    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    sweep: dict[str, list[Any]] = Field(
        {}, description="For `cnnzoo sweep`: override key -> values; every combination is one run, "
        "e.g. `model.params.n: [3, 9]`. `cnnzoo train` ignores it."
    )
    search: Optional[SearchConfig] = Field(None, description="For `cnnzoo search` (docs/search.md).")

    _marks: dict = PrivateAttr(default_factory=dict)
    _sources: tuple = PrivateAttr(default=())
    _items: tuple = PrivateAttr(default=())  # model.layers resolved (cnnzoo.config.items)
    _defaults: dict = PrivateAttr(default_factory=dict)  # model.layer_defaults, checked
    _declared_input: Any = PrivateAttr(default=None)  # (shape, location) or None

    @property
    def items(self) -> tuple:
        """`model.layers` as typed items: `$params`, `${...}`, stages and block uses resolved."""
        return self._items

    @property
    def checked_layer_defaults(self) -> dict[str, dict[str, Any]]:
        """`model.layer_defaults` keyed by Keras class name, checked against each class."""
        return self._defaults

    @property
    def declared_input(self) -> tuple[tuple[int, ...], Location | None] | None:
        """(input shape, where it was written): model.input_shape (channels last), else a Keras-1
        `input_shape` on the first layer; None when the dataset's shape is to be used."""
        return self._declared_input

    def is_written(self, *path: Any) -> bool:
        """Whether a config file or override set this key (rather than its default)."""
        return path in self._marks

    def where(self, *path: Any) -> Location | None:
        """The location a config path was written at (nearest written ancestor)."""
        return nearest_mark(self._marks, path) or (Location(self._sources[-1]) if self._sources else None)

    def to_yaml(self, *, resolved: bool = False) -> str:
        """The config with every default, as YAML: what `--print-config` shows and runs save.

        `resolved` adds, for reading only, the layer list the model is built from.
        """
        data = self.model_dump(mode="json", by_alias=True)
        if data.get("search") is None:
            data.pop("search", None)  # written only where there is one
        else:
            data["search"]["parameters"] = {key: {k: v for k, v in spec.items() if v is not None and v is not False}
                                            for key, spec in data["search"]["parameters"].items()}
        text = dump_yaml(data)
        if not resolved:
            return text
        from cnnzoo.config.resolve import resolved_yaml

        return (f"{text}# model.layers with $params, ${{...}}, stages and blocks expanded (not a config key):\n"
                f"{dump_yaml({'resolved_layers': resolved_yaml(self.items)})}")

    @property
    def sources(self) -> tuple[str, ...]:
        """The files (and `<command line>`) this config was assembled from, base first."""
        return self._sources
