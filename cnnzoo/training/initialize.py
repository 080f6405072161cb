"""A new run's data-dependent initializers (`cnnzoo.models.data_init`, e.g. `patch_whitening`), computed
before the first step from training images the run's seed chooses, and recorded in initialization.json."""

from __future__ import annotations

from typing import Any, Callable

from cnnzoo.training.run_dir import RunDir, write_json


def training_images(examples, count: int, seed: int, shuffle_buffer: int, batch: int = 256) -> list:
    """Up to `count` preprocessed, unaugmented training images in batches, chosen by `seed` (the same seed
    and split give the same images)."""
    import numpy as np

    chosen = examples.shuffle(max(1, shuffle_buffer), seed=seed, reshuffle_each_iteration=False).take(count)
    return [np.asarray(images) for images in chosen.map(lambda image, *_: image).batch(batch)]


def initialize_from_data(run: RunDir, model, data, config, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Compute the model's data-dependent kernels; [] when it has none."""
    from cnnzoo.models.data_init import initialize, layers_to_initialize

    if not layers_to_initialize(model):
        return []
    seed = config.runtime.seed or 0
    records = initialize(model, lambda count: training_images(data.stream.examples, count, seed,
                                                              config.data.shuffle_buffer))
    write_json(run.initialization, {"seed": seed, "layers": records})
    for record in records:
        log(f"cnnzoo: {record['layer']}: {record['initializer']} from {record['images_used']:,} training images "
            f"({record['patches']:,} patches, seed {seed}); recorded in {run.initialization}")
    return records
