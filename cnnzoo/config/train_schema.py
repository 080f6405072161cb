"""The `train` section: how to fit the model (optimizer, schedule, loss, callbacks, pictures)."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from cnnzoo.config.sections import CallItem, Named, Section


class OptimizerConfig(Named):
    """`name` is a class of `keras.optimizers`; other keys are its constructor arguments. `use_ema: true` (with
    `ema_momentum`, default 0.99) keeps a moving average of the weights: validation, checkpoints, the test and
    model.keras use it (docs/runs.md). One more key, `exclude_from_weight_decay: [bias, gamma, beta]`, exempts
    the weights whose names contain any of these (biases, BatchNormalization's scales and offsets) from
    `weight_decay`, and `learning_rate_multipliers: {beta: 64}` steps the weights whose names contain a key
    with that many times the learning rate (docs/runs.md)."""

    name: str = Field("adadelta", description="Optimizer class, e.g. adadelta, sgd, adam.")


class LossConfig(Named):
    """`name` is a `keras.losses` function or class; other keys are the class's arguments."""

    name: str = Field(
        "categorical_crossentropy",
        description="Loss, e.g. categorical_crossentropy; categorical losses get one-hot labels. With arguments: "
        "`{name: categorical_crossentropy, label_smoothing: 0.1}`.",
    )


class ScheduleConfig(Named):
    """`name` is a class of `keras.optimizers.schedules`; other keys are its arguments."""

    name: str = Field(..., description="Schedule class, e.g. ExponentialDecay, PiecewiseConstantDecay.")
    unit: Literal["step", "epoch"] = Field(
        "step", description="What `boundaries` and `*_steps` arguments count: optimizer steps, or epochs (converted "
        "with the run's steps per epoch, so a changed batch size or training split keeps the recipe's schedule).",
    )


class PicturesConfig(Section):
    """What the network learned, as images in TensorBoard's Images tab (run `pictures`)."""

    enabled: Union[bool, Literal["auto"]] = Field(
        "auto", description="Write the pictures. auto: on for models under 5M parameters (the slide's net, LeNet-5, "
        "the CIFAR ResNets), off for bigger ones, and off under multi_worker and tpu strategies.",
    )
    every_epochs: int = Field(1, gt=0, description="Write them every N epochs (and after the last).")
    images: int = Field(4, ge=1, le=32, description="Test images whose feature maps are shown (the same every epoch, chosen by the seed).")
    channels: int = Field(16, ge=1, le=256, description="Feature maps shown per layer (its first N channels).")
    mistakes: int = Field(16, ge=0, le=100, description="The most confidently wrong validation images shown.")
    grad_cam: bool = Field(True, description="Grad-CAM heat maps (tag `grad_cam`) of the fixed test images and the "
                           "mistakes, for the true and the predicted class.")
    grad_cam_layer: Optional[str] = Field(
        None, description="The layer whose maps Grad-CAM weighs (default: the last one with spatial output before "
        "global pooling or flatten, the last convolutional stage).",
    )

    @model_validator(mode="before")
    @classmethod
    def _switch_alone(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, (bool, str)) else value  # `pictures: false`


class PhaseConfig(Section):
    """One phase of `train.phases`: its epochs, and what changes for them."""

    epochs: int = Field(..., gt=0, description="Epochs of this phase.")
    freeze: Union[str, list[str], None] = Field(
        None, description="`model.freeze` for this phase (default: model.freeze; `[]`: every layer trains).",
    )
    optimizer: Optional[OptimizerConfig] = Field(None, description="The optimizer for this phase (default: "
                                                 "train.optimizer); a new one, so its state starts afresh.")


class TrainConfig(Section):
    epochs: int = Field(12, gt=0, description="Number of passes over the training split.")
    steps_per_epoch: Optional[int] = Field(None, gt=0, description="Limit batches per epoch (default: the whole split).")
    loss: LossConfig = Field(
        default_factory=LossConfig, description="`{name: ..., **kwargs}` or just the name; a `keras.losses` loss."
    )
    optimizer: OptimizerConfig = Field(
        # The slide's Adadelta at Keras 1's learning rate (Keras 3's default, 0.001, trains far slower).
        default_factory=lambda: OptimizerConfig(name="adadelta", learning_rate=1.0),
        description="`{name: ..., **kwargs}` or just the name; a class of `keras.optimizers`.",
    )
    lr_schedule: Optional[ScheduleConfig] = Field(
        None, description="Learning-rate schedule; replaces the optimizer's learning_rate."
    )
    metrics: list[str] = Field(["accuracy"], description="`keras.metrics` names.")
    class_weight: Optional[Literal["balanced"]] = Field(
        None, description="`balanced`: weigh each class's examples by n_examples / (n_classes * n_of_that_class) in the "
        "loss (Keras' `class_weight`, scikit-learn's formula), for imbalanced data. Default: every example alike.",
    )
    callbacks: list[CallItem] = Field(
        [], description="Extra `keras.callbacks` as `Name: {args}` items, e.g. `EarlyStopping: {patience: 3}`."
    )
    phases: list[PhaseConfig] = Field(
        [], description="Train in phases within one run (one history, one TensorBoard timeline; --resume continues in "
        "the right phase), e.g. the new head alone at 1e-3, then everything at 1e-5: `[{epochs: 3, freeze: "
        "global_average_pooling2d}, {epochs: 5, freeze: [], optimizer: {name: adam, learning_rate: 1.0e-5}}]`. "
        "train.epochs becomes the phases' sum.",
    )
    test_time_augmentation: list[Union[str, dict[str, Any]]] = Field(
        [], description="Also test on augmented views of each test image and average the class probabilities of "
        "the views (after a softmax for a model trained on logits): `horizontal_flip` adds the mirrored image, "
        "`{translate: N}` the image shifted N pixels down-right and N up-left (zeros fill in, as `pad_crop`), "
        "and the views are all combinations, e.g. `[horizontal_flip, {translate: 2}]`: 6 views. metrics.json "
        "gets `accuracy_tta` beside the plain test's `accuracy`.",
    )
    validation_tta: bool = Field(
        False, description="Also validate with `test_time_augmentation`'s views after each epoch: "
        "`val_accuracy_tta` in history.csv, TensorBoard and metrics.json (best.keras is still chosen by the plain "
        "validation). Costs one validation pass per view.",
    )
    pictures: PicturesConfig = Field(
        default_factory=PicturesConfig,
        description="Filters, feature maps, confusion matrix and mistakes in TensorBoard; `pictures: false` turns them off.",
    )

    @field_validator("test_time_augmentation")
    @classmethod
    def _views(cls, value: list) -> list:
        names = []
        for item in value:
            if item == "horizontal_flip":
                names.append(item)
            elif (isinstance(item, dict) and list(item) == ["translate"] and isinstance(item["translate"], int)
                  and not isinstance(item["translate"], bool) and item["translate"] > 0):
                names.append("translate")
            else:
                raise ValueError(f"{item!r} is not a test-time augmentation: write `horizontal_flip` or "
                                 "`{translate: N}` with N pixels > 0")
        if len(set(names)) < len(names):
            raise ValueError("each test-time augmentation may be listed once")
        return value

    @field_validator("validation_tta")
    @classmethod
    def _validation_views(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("test_time_augmentation"):
            raise ValueError("validation_tta uses the views of test_time_augmentation, which lists none: add e.g. "
                             "`test_time_augmentation: [horizontal_flip]`")
        return value

    @model_validator(mode="before")
    @classmethod
    def _epochs_of_phases(cls, value: Any) -> Any:
        phases = value.get("phases") if isinstance(value, dict) else None
        if isinstance(phases, list) and phases and all(isinstance(p, dict) and isinstance(p.get("epochs"), int)
                                                       for p in phases):
            value = {**value, "epochs": sum(p["epochs"] for p in phases)}
        return value
