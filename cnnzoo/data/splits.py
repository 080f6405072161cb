"""Which examples a run trains on, validates on and tests on.

The test split is for the final number only. By default the validation examples are the
last 10% of the training split, Keras' own convention (`fit(validation_split=0.1)`), held
out as a deterministic TFDS slice: `train` of 60,000 becomes `train[0:54000]` to train on
and `train[54000:60000]` to validate on, the same examples on every run and machine.
`data.validation_split` may instead name a split (e.g. `test`, as Keras' mnist_cnn example
validates), or be null for none.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnzoo.config.schema import Config
from cnnzoo.errors import DataError


@dataclass(frozen=True)
class Splits:
    """TFDS split specs, resolved; `sizes` holds the number of examples where known."""

    train: str
    validation: str | None
    test: str
    held_out: float | None = None  # the fraction of the training split used for validation
    sizes: tuple[tuple[str, int], ...] = ()

    def size(self, spec: str | None) -> int | None:
        return dict(self.sizes).get(spec) if spec else None

    @property
    def validates_on_test(self) -> bool:
        return self.validation is not None and self.validation == self.test

    def describe(self) -> str:
        """For the first log line: `train[0:54000], validating on train[54000:60000] (the last 10% of train)`."""
        if self.validation is None:
            return f"{self.train}, no validation"
        held = f" (the last {self.held_out:.0%} of the training split)" if self.held_out else ""
        if self.held_out and not self.sizes:  # slices are known once TFDS has prepared the dataset
            return f"{self.train} (first {1 - self.held_out:.0%}), validating on its last {self.held_out:.0%}"
        return f"{self.train}, validating on {self.validation}{held}"


def resolve_splits(config: Config, split_infos) -> Splits:
    """The run's splits; `split_infos` is the builder's `info.splits` (empty until the dataset is prepared)."""
    data = config.data
    validation = data.validation_split
    check_splits(config, split_infos)
    if not isinstance(validation, float):
        return Splits(data.train_split, validation, data.test_split, sizes=_sizes(split_infos, data.train_split,
                                                                                  validation, data.test_split))
    if not split_infos:  # sizes are known once TFDS has prepared the dataset
        return Splits(data.train_split, f"{data.train_split}[-{validation:.0%}:]", data.test_split, held_out=validation)
    train, held = hold_out(config, split_infos, validation)
    return Splits(train, held, data.test_split, held_out=validation,
                  sizes=_sizes(split_infos, train, held, data.test_split))


def check_splits(config: Config, split_infos) -> None:
    """Every split the config names, checked against `split_infos` (nothing to check while it is empty)."""
    for key in ("train_split", "validation_split", "test_split"):
        if split_infos and isinstance(getattr(config.data, key), str):
            check_split(config, split_infos, key, getattr(config.data, key))


def known_splits(builder) -> dict:
    """Split sizes a dataset not prepared yet still knows (the bundled sample's, from its file), as
    TFDS's `info.splits` gives them once prepared; empty for a catalogue dataset."""
    from types import SimpleNamespace

    sizes = getattr(builder, "split_sizes", None)
    return {name: SimpleNamespace(num_examples=n) for name, n in sizes().items()} if sizes else {}


def check_split(config: Config, split_infos, key: str, spec: str, given: str | None = None) -> None:
    """A DataError naming the splits there are, unless `spec` (e.g. `train[:10%]`) reads from them;
    `given`: the command-line option that named it (else the config key `key` did)."""
    import tensorflow_datasets as tfds

    try:
        tfds.core.ReadInstruction.from_spec(spec).to_absolute(split_infos)
    except (ValueError, AssertionError, KeyError) as exc:
        raise no_split(config, split_infos, key, spec, exc, given) from None


def no_split(config: Config, split_infos, key: str, spec: str, exc: BaseException,
             given: str | None = None) -> DataError:
    return DataError(
        f"dataset `{config.data.name}` has no split `{spec}` ({str(exc).strip().splitlines()[0]})",
        location=None if given else config.where("data", key), path=given or f"data.{key}",
        hint=f"Its splits: {', '.join(split_infos)}. Slices such as `train[:10%]` also work.",
    )


def hold_out(config: Config, split_infos, fraction: float) -> tuple[str, str]:
    """(train, validation): the training split's first `1 - fraction` and last `fraction`, as absolute slices."""
    import tensorflow_datasets as tfds

    spec = config.data.train_split
    where = config.where("data", "validation_split")
    try:
        parts = tfds.core.ReadInstruction.from_spec(spec).to_absolute(split_infos)
    except (ValueError, AssertionError) as exc:
        raise DataError(f"data.train_split `{spec}`: {exc}", location=config.where("data", "train_split"),
                        path="data.train_split", hint=f"Its splits: {', '.join(split_infos)}.") from None
    if len(parts) != 1:
        raise DataError(f"cannot hold out the last {fraction:.0%} of `{spec}`: it joins several splits",
                        location=where, path="data.validation_split",
                        hint="Name the validation split, e.g. `validation_split: validation`.")
    part = parts[0]
    start = part.from_ or 0
    stop = split_infos[part.splitname].num_examples if part.to is None else part.to
    cut = start + int((stop - start) * (1 - fraction))  # as keras.Model.fit(validation_split=...) cuts
    if not start < cut < stop:
        raise DataError(f"`{spec}` has {stop - start} examples: too few to hold out {fraction:.0%} for validation",
                        location=where, path="data.validation_split")
    return f"{part.splitname}[{start}:{cut}]", f"{part.splitname}[{cut}:{stop}]"


def _sizes(split_infos, *specs: str | None) -> tuple[tuple[str, int], ...]:
    sizes = []
    for spec in specs:
        if spec is None or not split_infos:
            continue
        try:
            sizes.append((spec, split_infos[spec].num_examples))  # TFDS resolves slices like train[:10%]
        except (KeyError, ValueError, AssertionError):
            pass
    return tuple(sizes)
