"""Training throughput: cnnzoo from YAML against the same model hand-written in Keras, in one run.

    python benchmarks/throughput.py --manual-dir ../shared/data          # slide net (MNIST) and ResNet-20 (CIFAR-10)
    python benchmarks/throughput.py --models slide --validation          # also validate each epoch, as mnist_cnn does
    python benchmarks/throughput.py --precision mixed_bfloat16           # both sides in bfloat16

Both sides always compute at the same precision (`--precision`, float32 by default): the
hand-written model under Keras' global dtype policy, cnnzoo with `runtime.precision`.

(a) "by hand": the model written directly with keras.layers and fed NumPy arrays to `model.fit`,
    as Keras' mnist_cnn example does (x_train / 255, one-hot labels, batch 128);
(b) "cnnzoo": `cnnzoo.train` on the shipped YAML config, with its tf.data pipeline and runtime defaults.
Each round trains a fresh model each way for one warm-up epoch (tracing, cache filling) and then
`--epochs` timed epochs of `--steps` steps (default: the slide's net a whole MNIST epoch, ResNet-20
100 steps), without augmentation. A round's rate is the timed images over the wall time from the end
of the warm-up epoch to the end of the last epoch: epoch starts (where the two pipelines differ
most, see the README) and cnnzoo's checkpoint and log writing included. The median over
`--rounds` rounds is reported. The two take turns, so a noisy neighbour slows both alike.
Also reported: the builder's own time (config -> Keras model) as a share of cnnzoo's first epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

import keras  # noqa: E402

from cnnzoo import build_model, load_config, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS = {"slide": "configs/slide_cnn.yaml", "resnet20": "configs/resnet/resnet20.yaml"}
DEFAULT_STEPS = {"slide": None, "resnet20": 100}  # None: the whole training split
NO_AUGMENTATION = "data.augmentation={pad_crop: 0, horizontal_flip: false}"


def slide_net_by_hand() -> keras.Model:
    """The lecture's network, as the Keras mnist_cnn example writes it (Keras 3 names)."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), padding="valid"), layers.Activation("relu"),
        layers.Conv2D(32, (3, 3)), layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Dropout(0.25), layers.Flatten(),
        layers.Dense(128), layers.Activation("relu"), layers.Dropout(0.5),
        layers.Dense(10), layers.Activation("softmax", dtype="float32"),  # float32 output, as Keras' guide says
    ])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adadelta(1.0), metrics=["accuracy"])
    return model


def resnet20_by_hand() -> keras.Model:
    """ResNet-20 v1 as Keras' cifar10_resnet example writes it (1x1 convolution shortcuts)."""
    layers = keras.layers

    def conv(x, filters, strides=1):
        return layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                             kernel_initializer="he_normal", kernel_regularizer=keras.regularizers.L2(5e-5))(x)

    inputs = keras.Input((32, 32, 3))
    x = layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(conv(inputs, 16)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(conv(x, filters, strides)))
            y = layers.BatchNormalization(momentum=0.9)(conv(y, filters))
            if strides != 1:
                x = layers.BatchNormalization(momentum=0.9)(
                    layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x))
            x = layers.Activation("relu")(layers.Add()([x, y]))
    outputs = layers.Dense(10, activation="softmax", dtype="float32")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  metrics=["accuracy"])
    return model


BY_HAND = {"slide": slide_net_by_hand, "resnet20": resnet20_by_hand}


class EpochEnds(keras.callbacks.Callback):
    """When each epoch ended; as the last callback, after any checkpoint or log writing of that epoch."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter())

    def rate(self, images_per_epoch: int) -> float:
        """Images per second from the end of the warm-up epoch to the end of the last one."""
        return images_per_epoch * (len(self.times) - 1) / (self.times[-1] - self.times[0])


def numpy_arrays(builder, split: str):
    """A split of a prepared TFDS dataset as the Keras examples hold it: float32 in [0, 1], one-hot labels."""
    import tensorflow_datasets as tfds

    images, labels = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True))
    return images.astype("float32") / 255.0, keras.utils.to_categorical(labels, 10)


def measure(name: str, steps: int | None, epochs: int, rounds: int, validation: bool, manual_dir: str | None,
            extra: list[str], precision: str = "float32") -> dict:
    """Rounds of (by hand, then cnnzoo), each a fresh model trained 1 + `epochs` epochs of `steps` steps,
    both computing in `precision`."""
    from cnnzoo.data.catalog import dataset_signature
    from cnnzoo.data.prepare import locate, prepare
    from cnnzoo.data.tfds_input import load_datasets

    config_path = MODELS[name]
    overrides = [f"train.epochs={1 + epochs}", "runtime.seed=0", NO_AUGMENTATION, f"runtime.precision={precision}",
                 *extra]
    # Keras' mnist_cnn example validates on the test arrays; both sides do the same, or neither does.
    overrides.append(f"data.validation_split={'test' if validation else 'null'}")
    start = time.perf_counter()
    config = load_config(REPO / config_path, overrides)
    build_model(config)
    builder_seconds = time.perf_counter() - start
    steps = steps or DEFAULT_STEPS[name]
    if steps:  # an epoch is then one pass over the first `steps` batches, cached after the warm-up
        config = load_config(REPO / config_path, [*overrides, f"data.train_split=train[:{steps * config.data.batch_size}]"])

    dataset = config.data.name
    folder = str(Path(manual_dir) / dataset.replace("_", "-")) if manual_dir and dataset != "mnist_sample" else None
    source = locate(dataset_signature(config).builder, config, folder)
    datasets = load_datasets(config, one_hot=True, source=source)  # prepares the TFDS dataset once
    builder = prepare(source, config)  # the prepared copy both sides read (cnnzoo's own, for .npz arrays)
    batch = config.data.batch_size
    splits = datasets.splits  # the very examples cnnzoo trains and validates on
    x, y = numpy_arrays(builder, splits.train)
    held_out = numpy_arrays(builder, splits.validation) if validation else None
    hand, ours, first = [], [], []
    with tempfile.TemporaryDirectory() as runs:
        for r in range(rounds):
            timer = EpochEnds()
            keras.mixed_precision.set_global_policy(precision)  # how a hand-written script chooses it
            model = BY_HAND[name]()
            keras.mixed_precision.set_global_policy("float32")
            model.fit(x, y, batch_size=batch, epochs=1 + epochs, shuffle=True, verbose=0,
                      validation_data=held_out, callbacks=[timer])
            hand.append(timer.rate(len(x)))
            timer = EpochEnds()  # after cnnzoo's own callbacks: its checkpoints and logs count
            result = train(config, output_dir=f"{runs}/{r}", log=lambda _: None, callbacks=[timer])
            ours.append(timer.rate(datasets.train_examples))
            first.append(result.metrics["epoch_seconds"][0])
    return {"model": name, "by_hand": statistics.median(hand), "cnnzoo": statistics.median(ours),
            "ratio": statistics.median(ours) / statistics.median(hand), "rounds": (hand, ours),
            "images": len(x), "builder_seconds": builder_seconds, "first_epoch_seconds": statistics.median(first)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="key=value overrides for the cnnzoo config (e.g. data.name=mnist_sample)")
    parser.add_argument("--models", default="slide,resnet20", help="comma-separated: slide, resnet20")
    parser.add_argument("--steps", type=int, help="training steps per epoch (default: slide a whole epoch, resnet20 100)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after each warm-up epoch")
    parser.add_argument("--rounds", type=int, default=3, help="fresh models of each kind, taking turns")
    parser.add_argument("--validation", action="store_true",
                        help="validate on the test split after every epoch, as Keras' mnist_cnn example does")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"],
                        help="what both sides compute in (default float32)")
    parser.add_argument("--manual-dir", help="folder holding mnist/ and cifar10/ to prepare the datasets offline")
    args = parser.parse_args(argv)
    print(f"both sides in {args.precision}")
    print(f"{'model':<10} {'by hand (img/s)':>16} {'cnnzoo (img/s)':>15} {'ratio':>6}  builder time / cnnzoo first epoch")
    for name in args.models.split(","):
        r = measure(name, args.steps, args.epochs, args.rounds, args.validation, args.manual_dir, args.overrides,
                    args.precision)
        hand, ours = (" ".join(f"{v:,.0f}" for v in side) for side in r["rounds"])
        print(f"{r['model']:<10} {r['by_hand']:>16,.0f} {r['cnnzoo']:>15,.0f} {r['ratio']:>5.2f}x  "
              f"{r['builder_seconds']:.2f} s / {r['first_epoch_seconds']:.1f} s "
              f"({100 * r['builder_seconds'] / r['first_epoch_seconds']:.1f}%)", flush=True)
        print(f"{'':<10} rounds ({r['images']:,} images per epoch{', validated' if args.validation else ''}): "
              f"by hand {hand}; cnnzoo {ours}", flush=True)


if __name__ == "__main__":
    main()
