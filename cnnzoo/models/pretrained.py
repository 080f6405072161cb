"""Start from trained weights (`model.weights`) and freeze what should not move (`model.freeze`).

Sources: a `.keras` file, a `.weights.h5` file, a cnnzoo run folder (its `checkpoints/best.keras`,
else `model.keras`), or `imagenet` for configs laid out as a `keras.applications` network
(`model.application`; Keras downloads the weights once into `~/.keras/models/`).

Layers are matched by name, then by the shapes of their weights; a layer of another shape (e.g.
a classifier for another number of classes) is skipped and reported. `keras.applications`
networks name their layers otherwise, so their weights are matched in order, layer by layer.
"""

from __future__ import annotations

import fnmatch
import math
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnzoo.errors import BuildError, Location

IMAGENET = "imagenet"


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (layer, why)

    def line(self) -> str:
        skipped = "; ".join(f"{name} ({why})" for name, why in self.skipped[:4])
        more = f" and {len(self.skipped) - 4} more" if len(self.skipped) > 4 else ""
        return (f"weights of {len(self.loaded)} layers loaded from {self.source}"
                + (f"; {len(self.skipped)} skipped: {skipped}{more}" if self.skipped else ""))


def load_weights(model, source: str, *, application: str | None, where: Location | None,
                 classes: list[str] | None = None) -> LoadReport:
    """Copy the weights of `source` into `model`'s layers that match.

    `classes`: the dataset's class names. A run folder records its own (classes.json); when they
    differ, its classifier (the last layer with weights) is not loaded even if its shape fits: it
    answers for other classes.

    Raises:
        BuildError: a source that cannot be read, or that matches no layer.
    """
    by_name, in_order, label = _read(source, application, where)
    report = LoadReport(label)
    mine = [layer for layer in model.layers if layer.weights]
    theirs = _run_classes(source)
    if by_name is not None and theirs is not None and classes is not None and theirs != list(classes) and mine:
        if by_name.pop(mine[-1].name, None) is not None:
            report.skipped.append((mine[-1].name, f"its classes differ ({_few(theirs)} in the source, "
                                                  f"{_few(classes)} here)"))
            mine = mine[:-1]
    if label.endswith(".weights.h5"):
        pairs = [(layer, by_name.get(name)) for name, layer in saved_names(model).items() if layer.weights]
    elif by_name is not None and any(layer.name in by_name for layer in mine):
        pairs = [(layer, by_name.get(layer.name)) for layer in mine]
    else:  # keras.applications' own names, or a .weights.h5 of saved order: layer by layer
        in_order = in_order if in_order is not None else list((by_name or {}).values())
        pairs = list(zip(mine, in_order + [None] * (len(mine) - len(in_order))))
    for layer, weights in pairs:
        why = _mismatch(layer, weights)
        if why:
            report.skipped.append((layer.name, why))
        else:
            layer.set_weights(weights)
            report.loaded.append(layer.name)
    if not report.loaded:
        shown = sorted(report.skipped, key=lambda s: not s[1].startswith("shapes"))[:3]  # the likely causes first
        raise BuildError(f"no layer of the model matches the weights in {label}",
                         location=where, path="model.weights",
                         hint="The layers are matched by name and weight shapes: start from a model of the same "
                              "layout (skipped: " + "; ".join(f"{name}: {why}" for name, why in shown)
                              + ("; ..." if len(report.skipped) > 3 else "") + ").")
    return report


def _run_classes(source: str) -> list[str] | None:
    """The class names a cnnzoo run folder recorded, for a run folder or a model file inside one."""
    import json

    path = Path(source).expanduser()
    for folder in (path, path.parent, path.parent.parent):
        try:
            return list(json.loads((folder / "classes.json").read_text())["class_names"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _mismatch(layer, weights) -> str | None:
    if weights is None:
        return "not in the source"
    mine = [tuple(w.shape) for w in layer.weights]
    theirs = [tuple(w.shape) for w in weights]
    return None if mine == theirs else f"shapes {_fmt(theirs)} in the source, {_fmt(mine)} here"


def _fmt(shapes: list[tuple]) -> str:
    return "/".join("x".join(map(str, s)) for s in shapes[:1]) + ("..." if len(shapes) > 1 else "")


def _read(source: str, application: str | None, where):
    """(weights by layer name or None, weights in layer order or None, label for messages)."""
    if source == IMAGENET:
        return None, _imagenet(application, where), f"keras.applications.{application} (ImageNet)"
    path = Path(source).expanduser()
    if path.is_dir():
        path = next((p for p in (path / "checkpoints" / "best.keras", path / "model.keras") if p.is_file()), path)
    if not path.is_file():
        raise BuildError(f"model.weights: {source} is not a file or a run folder with a saved model",
                         location=where, path="model.weights",
                         hint="Give a .keras or .weights.h5 file, a run folder (checkpoints/best.keras, "
                              "else model.keras), or `imagenet`.")
    if path.name.endswith(".weights.h5"):
        return _h5_layers(path, where), None, str(path)  # keyed by Keras' saved names: see `saved_names`
    return _keras_layers(path, where), None, str(path)


def _keras_layers(path: Path, where) -> dict[str, list]:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # a damaged or foreign file: many kinds
        raise BuildError(f"cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                         location=where, path="model.weights") from None
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def _h5_layers(path: Path, where) -> dict[str, list]:
    """A Keras 3 `.weights.h5` file: `layers/<saved name>/vars/<i>`, in the order the layers were saved."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            layers = f["layers"]
            return {name: [layers[name]["vars"][str(i)][()] for i in range(len(layers[name]["vars"]))]
                    for name in layers.keys() if len(layers[name]["vars"])}
    except (OSError, KeyError) as exc:
        raise BuildError(f"cannot read {path} as a Keras weights file: {exc}", location=where,
                         path="model.weights") from None


def saved_names(model) -> dict[str, Any]:
    """Keras' names for a model's layers in a `.weights.h5` file: the class in snake case, numbered in
    layer order (`conv2d`, `conv2d_1`, ...), as `keras.src.saving.saving_lib` writes them."""
    used: dict[str, int] = {}
    names = {}
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        names[base if used[base] == 0 else f"{base}_{used[base]}"] = layer
    return names


def _imagenet(application: str | None, where) -> list[list]:
    import keras

    if not application:
        raise BuildError("model.weights: imagenet needs `model.application`, the keras.applications network "
                         "this config is laid out as", location=where, path="model.weights",
                         hint="The zoo's configs (configs/zoo/, configs/resnet/resnet50.yaml ...) set it.")
    build = getattr(keras.applications, application, None)
    if build is None:
        raise BuildError(f"keras.applications has no `{application}`", location=where, path="model.application")
    try:
        network = build(weights=IMAGENET)
    except Exception as exc:  # offline: Keras' get_file raises a plain Exception naming the URL
        url = next(iter(re.findall(r"https?://\S+?\.h5", str(exc))), None)
        name = url.rsplit("/", 1)[-1] if url else "the weights file"
        why = str(exc).split(" -- ")[-1].strip() if " -- " in str(exc) else type(exc).__name__
        raise BuildError(f"cannot download the ImageNet weights of keras.applications.{application} ({why})",
                         location=where, path="model.weights",
                         hint=f"Offline, put {name} ({url or 'see Keras'}) in ~/.keras/models/ (or "
                              "$KERAS_HOME/models/) and run again; or start from a local .keras file.") from None
    return [layer.get_weights() for layer in network.layers if layer.weights]


def _snake_case(name: str) -> str:
    """Keras' `naming.to_snake_case` (Conv2D -> conv2d, BatchNormalization -> batch_normalization)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# -- freezing ----------------------------------------------------------------------------------------

def freeze(model, spec: Any, where: Location | None) -> list[str]:
    """Make layers untrainable; returns their names. `spec`: a layer name (it and every layer before
    it), or a list of names or shell patterns (`conv2d*`). None or []: every layer trains.

    Frozen BatchNormalization layers then run in inference mode (Keras 3 does so for a layer whose
    `trainable` is False), as Keras' fine-tuning guide requires. A layer the config itself builds
    with `trainable: false` (e.g. a fixed whitening layer) never trains, whatever the spec.
    """
    names = [layer.name for layer in model.layers]
    fixed = _BUILT_FIXED.setdefault(model, frozenset(layer.name for layer in model.layers if not layer.trainable))
    if spec in (None, [], ""):
        frozen: set[str] = set()
    elif isinstance(spec, str):
        if spec not in names:
            raise _unknown_layer(spec, names, where)
        frozen = set(names[: names.index(spec) + 1])
    else:
        frozen = set()
        for pattern in spec:
            matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                raise _unknown_layer(pattern, names, where)
            frozen.update(matched)
    frozen |= fixed
    for layer in model.layers:
        layer.trainable = layer.name not in frozen
    return [n for n in names if n in frozen]


# Each model's layers built untrainable, seen at its first freeze (models are frozen right after the build).
_BUILT_FIXED: "weakref.WeakKeyDictionary[Any, frozenset[str]]" = weakref.WeakKeyDictionary()


def _unknown_layer(name: str, names: list[str], where) -> BuildError:
    from cnnzoo.errors import did_you_mean

    return BuildError(f"no layer named `{name}` to freeze.{did_you_mean(name, names)}", location=where,
                      path="model.freeze", hint="`cnnzoo inspect CONFIG` lists the layers' names.")


def frozen_note(model) -> str | None:
    """`frozen: 12 layers, 2,257,984 of 2,270,794 parameters (up to block_16_project_BN)`, or None."""
    frozen = [layer for layer in model.layers if not layer.trainable and layer.weights]
    if not frozen:
        return None
    count = sum(math.prod(w.shape) for layer in frozen for w in layer.weights)
    layers = f"{len(frozen)} layer" + ("s" if len(frozen) != 1 else "")
    return f"frozen: {layers}, {count:,} of {model.count_params():,} parameters (the last: {frozen[-1].name})"
