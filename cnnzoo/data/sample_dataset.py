"""`mnist_sample`: the bundled MNIST subset, registered as a TFDS dataset.

Defining the builder class registers its name with TFDS, so after
`import cnnzoo.data.sample_dataset`, `tfds.builder("mnist_sample")` works like
any catalogue dataset, offline, from the file shipped inside the package.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import tensorflow_datasets as tfds

SAMPLE_FILE = "mnist_sample.npz"


class MnistSample(tfds.core.GeneratorBasedBuilder):
    """6,000 train / 1,000 test real MNIST digits shipped with cnnzoo (CC BY-SA 3.0)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "600 train and 100 test images per class, drawn from MNIST with a fixed seed."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="A class-balanced subset of MNIST bundled with cnnzoo for offline quick starts.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="http://yann.lecun.com/exdb/mnist/",
            license="CC BY-SA 3.0",
            citation="LeCun, Cortes and Burges, The MNIST database of handwritten digits.",
        )

    def split_sizes(self) -> dict[str, int]:
        """Examples per split, known before preparing (so a plan checks split names before a run writes)."""
        arrays = _arrays()
        return {"train": len(arrays["y_train"]), "test": len(arrays["y_test"])}

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the data ships with the package
        arrays = _arrays()
        return {
            "train": self._generate_examples(arrays["x_train"], arrays["y_train"]),
            "test": self._generate_examples(arrays["x_test"], arrays["y_test"]),
        }

    def _generate_examples(self, images, labels):
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image[..., None], "label": int(label)}


def _arrays() -> dict[str, np.ndarray]:
    with resources.files("cnnzoo.data").joinpath("sample", SAMPLE_FILE).open("rb") as f:
        return dict(np.load(f))
