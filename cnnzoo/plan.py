"""One plan from a config to a run: everything that can fail on user input, resolved before
anything is written or downloaded.

`cnnzoo validate` prints a plan, `inspect` renders its model, `train` runs it, and
`evaluate`/`export` reuse its pieces, so "OK" from validate means train starts. In order:
the strategy and precision (checked against this machine), the dataset (TFDS metadata, and
where its examples will come from), the splits, steps per epoch, the built and compiled
model, the config's callbacks, and what the run should tell its user at start.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from cnnzoo.config.schema import Config
from cnnzoo.data.cache import CacheChoice, choose_cache
from cnnzoo.data.catalog import DatasetSignature, dataset_signature
from cnnzoo.data.folder_input import HELD_IN_MEMORY, described, folder_splits
from cnnzoo.data.folder_source import assign
from cnnzoo.data.prepare import Source, locate, manual_dir_of
from cnnzoo.data.splits import Splits, check_splits, known_splits, resolve_splits
from cnnzoo.errors import CnnzooWarning, DataError
from cnnzoo.models.builder import build_model
from cnnzoo.models.compile import compile_model, config_callbacks, steps_per_epoch
from cnnzoo.models.phases import enter, phase_at
from cnnzoo.models.pretrained import frozen_note, load_weights
from cnnzoo.models.shapes import fmt_dims
from cnnzoo.pictures.grad_cam import find_layer
from cnnzoo.pictures.learned import wanted as pictures_wanted
from cnnzoo.runtime.precision import PrecisionChoice, choose_precision
from cnnzoo.runtime.strategy import Placement, StrategyChoice, choose_strategy


@dataclass
class Plan:
    """A config resolved for this machine: what `train` will do, step by step."""

    config: Config  # `runtime.precision: auto` replaced by the policy chosen
    strategy: StrategyChoice
    precision: PrecisionChoice
    dataset: DatasetSignature
    source: Source
    splits: Splits
    cache: CacheChoice | None  # decided once the dataset's sizes are known (prepared)
    steps_per_epoch: int | None  # None until the dataset is prepared, unless train.steps_per_epoch
    model: Any  # the compiled keras.Model
    callbacks: list  # from train.callbacks
    pictures: tuple[bool, str] = (False, "")  # drawn or not, and why (train.pictures)
    notes: list[str] = field(default_factory=list)  # said once at start
    warnings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # a folder's images per split and class, for validate
    loaded: Any = None  # what `model.weights` loaded (cnnzoo.models.pretrained.LoadReport)
    phase: int = 0  # the `train.phases` entry the model is set up for (frozen layers, optimizer)
    source_notes: tuple[list[str], list[str]] = ([], [])  # (notes, warnings) about the data source

    def warn(self) -> None:
        """Say the plan's warnings (once each, as Python warnings)."""
        for text in self.warnings:
            warnings.warn(text, CnnzooWarning, stacklevel=2)

    def lines(self) -> list[str]:
        """The plan as `cnnzoo validate` prints it, one fact per line."""
        c = self.config
        steps = f"{self.steps_per_epoch} steps" if self.steps_per_epoch else "steps known once the dataset is prepared"
        cache = ("in memory" if self.cache.cache else "not cached") if self.cache else "decided once prepared"
        return [
            f"data: {c.data.name} {fmt_dims(self.dataset.image_shape)}, {self.dataset.num_classes} classes; "
            f"{self.source.description}",
            f"splits: training on {self.splits.describe()}; testing on {self.splits.test}; cache: {cache}",
            *(f"  {line}" for line in self.details),
            f"training: {c.train.epochs} epochs ({steps}), batch {c.data.batch_size}, "
            f"optimizer {c.train.optimizer.name}, loss {c.train.loss.name}",
            f"runtime: {self.precision.policy}; {self.strategy.summary()}",
            f"pictures: {self.pictures[1]}",
            *(f"note: {note}" for note in self.notes),
        ]


def plan(config: Config, manual_dir: str | None = None, *, placement: Placement | None = None,
         data_needed: bool = True) -> Plan:
    """Resolve a config for this machine, downloading and writing nothing.

    Args:
        config: a validated config.
        manual_dir: a folder with the dataset's original files or `.npz` arrays (offline use).
        placement: the started strategy when training: the model is built in its scope.
            Without it (validate, inspect) the choice is checked but nothing is started.
        data_needed: False for what needs only the model (`inspect`): a dataset that cannot
            be had here is then described, not an error, and the dataset's image shape and
            classes only fill in what the config leaves out (e.g. a small input to study).

    Raises:
        CnnzooError: the first problem, with the config line it comes from.
    """
    strategy = placement.choice if placement is not None else choose_strategy(config)
    precision = choose_precision(config, strategy.device_kind)
    if config.runtime.precision == "auto":  # the run's config.yaml records the choice; a resume keeps it
        config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"precision": precision.policy})})
    signature = dataset_signature(config)
    folder_splits_ = None
    if config.data.path:  # the run's records name the folder (a base config's `data.name` is not it), and
        origin = signature.builder.listing.origin  # hold its full path: resume and predict read them elsewhere
        config = config.model_copy(update={"data": config.data.model_copy(
            update={"name": origin.resolve().stem, "path": str(origin.resolve())})})  # (`.`: the folder's name)
        # before the model: a class folder misspelt in test/ is a class more, and the model's size not the cause
        by_split = assign(signature.builder, config)
        folder_splits_ = (by_split, folder_splits(config, by_split, signature.builder.class_names))

    def scope():
        return placement.strategy.scope() if placement is not None else contextlib.nullcontext()

    with scope():  # the config's own mistakes first; whether the data can be had is the machine's
        shape = config.model.input_shape
        checked = data_needed or shape is None or None in shape  # an open size is the resize's
        model = build_model(config, input_shape=signature.image_shape if checked else None,
                            num_classes=signature.num_classes if data_needed else None, dtype=precision.policy)
        loaded = load_weights(model, config.model.weights, application=config.model.application,
                              where=config.where("model", "weights"), classes=signature.class_names) \
            if config.model.weights and data_needed else None
        enter(model, phase_at(config, 0), config.train.steps_per_epoch)
        callbacks = config_callbacks(config)
    if config.train.pictures.grad_cam_layer is not None:  # a name that is no spatial layer: said now
        find_layer(model, config.train.pictures.grad_cam_layer, config.where("train", "pictures", "grad_cam_layer"))
    if folder_splits_ is not None:
        return _folder_plan(config, strategy, precision, signature, model, callbacks, loaded, *folder_splits_)
    try:
        source = locate(signature.builder, config, manual_dir_of(config, manual_dir))
    except DataError as exc:
        if data_needed:
            raise
        source = Source(signature.builder, signature.builder, None, f"not available here ({exc.message})")
    prepared = source.writer is None
    splits = resolve_splits(config, source.reader.info.splits if prepared else {})
    if not prepared:  # a split named wrong is the config's mistake wherever the sizes are known
        check_splits(config, known_splits(source.reader))
    cache = choose_cache(config, splits, signature.image_shape) if prepared else None
    result = Plan(config, strategy, precision, signature, source, splits, cache, config.train.steps_per_epoch,
                  model, callbacks, pictures_wanted(config.train.pictures, model.count_params(), strategy.kind, model),
                  loaded=loaded)
    return with_data(result, splits, cache) if prepared else _noted(result)


def _folder_plan(config: Config, strategy, precision, signature: DatasetSignature, model, callbacks, loaded,
                 by_split: dict[str, list], splits: Splits) -> Plan:
    """The plan for `data.path`: the files are read already (names and headers), so everything is known."""
    folder = signature.builder
    details, notes, warnings_ = described(folder, config, by_split)
    result = Plan(config, strategy, precision, signature, Source(folder, None, None, folder.description), splits,
                  HELD_IN_MEMORY, config.train.steps_per_epoch, model, callbacks,
                  pictures_wanted(config.train.pictures, model.count_params(), strategy.kind, model),
                  details=details, source_notes=(notes, warnings_), loaded=loaded)
    return with_data(result, splits, HELD_IN_MEMORY)  # steps per epoch known now


def with_data(plan_: Plan, splits: Splits, cache: CacheChoice) -> Plan:
    """The plan once the dataset is prepared: splits with sizes, the cache decided, steps known.

    A schedule counted in epochs is converted again with the real steps per epoch.
    """
    steps = steps_per_epoch(plan_.config, splits.size(splits.train), drop_remainder=plan_.strategy.kind == "tpu")
    if steps != plan_.steps_per_epoch and plan_.config.train.lr_schedule is not None:
        compile_model(plan_.model, phase_at(plan_.config, 0).config, steps)  # cheap: built at the first step
    return _noted(replace(plan_, splits=splits, cache=cache, steps_per_epoch=steps))


def _noted(p: Plan) -> Plan:
    """The plan with what its run should say at start: notes (facts) and warnings (probably not meant)."""
    p.notes = [note for note in (p.precision.note, p.cache and p.cache.note, p.loaded and p.loaded.line(),
                                 frozen_note(p.model)) if note] + p.source_notes[0]
    p.warnings = [w for w in (p.precision.warning, p.cache and p.cache.warning) if w] + p.source_notes[1]
    if p.splits.validates_on_test:
        p.warnings.append(f"{p.config.where('data', 'validation_split')}: validating on the test split "
                          f"`{p.splits.test}`: model selection (checkpoints/best.keras, EarlyStopping) sees the "
                          "test set, so the final test number is not an unseen estimate")
    return p
