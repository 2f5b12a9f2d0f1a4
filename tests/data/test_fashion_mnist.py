"""The Fashion-MNIST builder (Debian dataset-fashion-mnist) and its missing-package message."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from debian_data import needs_fashion_mnist

from zoo.data import corpora
from zoo.data.builders import prepare
from zoo.data.builders.fashion_mnist import FashionMnist, load_split

tfds.disable_progress_bar()


def test_missing_package_is_named_with_the_install_command(tmp_path):
    builder = FashionMnist(data_dir=str(tmp_path), source=str(tmp_path / "nowhere"))
    with pytest.raises(corpora.MissingSourceError, match="apt-get install dataset-fashion-mnist"):
        prepare(builder)
    with pytest.raises(ValueError, match="split must be one of"):
        load_split("validation")


@needs_fashion_mnist
def test_builder_writes_the_official_splits_as_array_record(tmp_path):
    images, labels = load_split("test")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))
    assert load_split("train")[0].shape == (60_000, 28, 28)
    builder = prepare(FashionMnist(data_dir=str(tmp_path)), max_examples_per_split=100)
    assert any(".array_record-" in f for f in os.listdir(builder.data_dir))
    source = builder.as_data_source(split="test")
    first = source[0]
    assert first["image"].shape == (28, 28, 1) and first["image"].dtype == np.uint8
    # TFDS shuffles records by key on writing: find the record's image among the first 100.
    (index,) = np.flatnonzero((images[:100] == first["image"][None, :, :, 0]).all(axis=(1, 2)))
    assert first["label"] == labels[index]
    assert builder.info.features["label"].num_classes == 10
