"""Training throughput of one config under runtime variants, measured side by side in one run.

    python benchmarks/runtime_options.py configs/slide_cnn.yaml --manual-dir ../shared/data/mnist

Each variant gets its own model and trains on the first `--steps` batches of the training split:
one pass to warm up (tracing, XLA compilation, filling the tf.data cache), then the variants
take turns for `--repeats` passes each, so a noisy neighbour slows them all alike. Prints
samples/s (median over passes) and the ratio to the first variant.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from cnnzoo import build_model, load_config  # noqa: E402
from cnnzoo.data.tfds_input import load_datasets  # noqa: E402
from cnnzoo.models.compile import compile_model, uses_one_hot_labels  # noqa: E402
from cnnzoo.runtime.precision import choose_precision  # noqa: E402

VARIANTS = {
    "default": [],  # float32, tf.data autotuning off
    "auto": ["runtime.precision=auto"],  # mixed_bfloat16 on CPUs with native bfloat16, else float32
    "mixed_bfloat16": ["runtime.precision=mixed_bfloat16"],  # CPUs with AVX512_BF16 / AMX compute it natively
    "jit_compile": ["runtime.jit_compile=true"],
    "steps_per_execution=32": ["runtime.steps_per_execution=32"],
    "tf.data autotune": ["data.autotune=true"],  # its tuning thread can hold up each new iterator (each pass)
}


def prepared(config_path: str, overrides: list[str], steps: int, manual_dir: str | None):
    """A compiled model and a cached pipeline of `steps` batches for one variant."""
    import keras

    batch = load_config(config_path, overrides).data.batch_size
    config = load_config(config_path, [*overrides, f"data.train_split=train[:{steps * batch}]",
                                       "data.validation_split=null"])
    policy = choose_precision(config, "cpu").policy  # what `auto` becomes when cnnzoo trains here
    keras.utils.set_random_seed(0)
    data = load_datasets(config, one_hot=uses_one_hot_labels(config.train.loss.name), manual_dir=manual_dir)
    model = build_model(config, input_shape=data.image_shape, num_classes=data.num_classes, dtype=policy)
    compile_model(model, config)
    return model, data.train, config.data.batch_size


def seconds_for(model, batches) -> float:
    """One pass over the batches."""
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value overrides applied to every variant")
    parser.add_argument("--manual-dir")
    parser.add_argument("--steps", type=int, default=128, help="steps per pass (a multiple of 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    args = parser.parse_args(argv)

    chosen = {name: VARIANTS[name] for name in args.variants.split(",")}
    runs = {name: prepared(args.config, [*args.overrides, *extra], args.steps, args.manual_dir)
            for name, extra in chosen.items()}
    for model, batches, _ in runs.values():
        seconds_for(model, batches)  # warm-up pass
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (model, batches, _) in runs.items():
            times[name].append(seconds_for(model, batches))
    batch = next(iter(runs.values()))[2]
    rates = {name: args.steps * batch / statistics.median(t) for name, t in times.items()}
    base = next(iter(rates.values()))
    print(f"{args.config}: {args.steps} steps x batch {batch} per pass, median of {args.repeats} passes after one warm-up pass")
    print(f"{'variant':<24} {'samples/s':>10} {'vs first':>11}")
    for name, rate in rates.items():
        print(f"{name:<24} {rate:>10,.0f} {rate / base:>10.2f}x")


if __name__ == "__main__":
    main()
