"""TFDS builder for Fashion-MNIST from the Debian package `dataset-fashion-mnist`.

    fashion_mnist    {'image': uint8 [28, 28, 1], 'label': 0..9}    train 60,000 / test 10,000

The package installs Zalando's four IDX files (gzip) under
/usr/share/datasets/fashion-mnist; they are parsed with numpy (no TensorFlow)
and written as array_record under the name, splits and feature keys of TFDS's
own `fashion_mnist` (the image is a raw uint8 tensor rather than an encoded
PNG, which would need TensorFlow), so records decode to the same arrays. The splits are
the official ones. A missing package raises `MissingSourceError` naming it.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds

from zoo.data import corpora
from zoo.data.builders.base import LocalBuilder

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
PACKAGE = "dataset-fashion-mnist"
FILES = {  # split -> (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one these files use


def read_idx(path: str) -> np.ndarray:
    """A gzipped IDX file (magic 0x0000TTNN: type TT, NN dimensions, big-endian sizes) as uint8."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype != _IDX_UBYTE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()})")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(split: str, root: str = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [B, 28, 28], labels uint8 [B]) of the official `split` ('train' or 'test')."""
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    corpora.require(root, PACKAGE, "fashion_mnist")
    images_file, labels_file = FILES[split]
    images = read_idx(corpora.require(os.path.join(root, images_file), PACKAGE, "fashion_mnist"))
    labels = read_idx(corpora.require(os.path.join(root, labels_file), PACKAGE, "fashion_mnist"))
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    return images, labels


class FashionMnist(LocalBuilder):
    """Zalando's Fashion-MNIST: 28x28 grey images of 10 kinds of clothing (Debian package)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: the IDX files of dataset-fashion-mnist."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict({
                # A Tensor, not tfds.features.Image: encoding PNGs needs TensorFlow.
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=LABELS),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        root = self.source_path(FASHION_MNIST_DIR)
        return {split: self._generate_examples(*load_split(split, root)) for split in FILES}

    def _generate_examples(self, images, labels):
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield i, {"image": image[:, :, None], "label": int(label)}
