"""Whether the decoded, preprocessed examples are cached in memory (`data.cache`).

Caching makes every epoch after the first read from memory; it pays for small datasets
(MNIST: 0.2 GB of float32 pixels) and cannot work for big ones (ImageNet at 224x224: about
800 GB). `auto`, the default, caches when the splits' float32 pixels, counted from TFDS's
metadata, fit in a quarter of this machine's memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from cnnzoo.config.schema import Config
from cnnzoo.memory import available_memory
from cnnzoo.data.splits import Splits

MEMORY_SHARE = 0.25


@dataclass(frozen=True)
class CacheChoice:
    cache: bool
    note: str | None = None  # said at start when the choice is not the obvious one
    warning: str | None = None


def physical_memory() -> int | None:
    """Bytes of memory this process may use: a container's limit where there is one, else the RAM."""
    return available_memory()


def cached_bytes(splits: Splits, image_shape: tuple[int | None, ...]) -> int | None:
    """float32 pixels of every split the run reads (None when a size or a dimension is unknown)."""
    specs = {splits.train, splits.validation, splits.test} - {None}
    counts = [splits.size(spec) for spec in specs]
    if None in counts or None in image_shape:
        return None
    return sum(counts) * prod(image_shape) * 4


def choose_cache(config: Config, splits: Splits, image_shape: tuple[int | None, ...],
                 memory: int | None = None) -> CacheChoice:
    asked = config.data.cache
    if asked is False:
        return CacheChoice(False)
    needed = cached_bytes(splits, image_shape)
    memory = physical_memory() if memory is None else memory
    fits = needed is not None and memory is not None and needed <= MEMORY_SHARE * memory
    if fits:
        return CacheChoice(True)
    size = f"about {needed / 2**30:,.1f} GB of float32 pixels" if needed is not None else "an unknown size"
    have = f"{memory / 2**30:,.0f} GB" if memory else "an unknown amount of"
    where = config.where("data", "cache")
    if asked is True:
        return CacheChoice(True, warning=f"{where}: data.cache is true, but the cached splits would take {size} "
                           f"and this machine has {have} of memory; set data.cache: auto to let cnnzoo decide.")
    return CacheChoice(False, note=f"not caching the dataset in memory: it would take {size}, and this machine has "
                       f"{have} of memory (data.cache: auto)")
