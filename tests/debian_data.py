"""Skip markers for tests that read the real corpora of Debian data packages.

Each marker skips, naming the package to install, where the package is absent;
`.ci/run` installs all of them first (`make data`), so in CI they always run.
"""

import os

import pytest

from zoo.data import corpora
from zoo.data.builders.fashion_mnist import FASHION_MNIST_DIR

_PRESENT = {
    "trans-de-en": os.path.exists(corpora.TRANS_DE_EN),
    "sword-text-kjv sword-text-sparv": all(
        os.path.exists(os.path.join(corpora.SWORD_ROOT, "mods.d", m + ".conf"))
        for m in (corpora.KJV_MODULE, corpora.SPARV_MODULE)
    ),
    "wordnet-base": os.path.exists(os.path.join(corpora.WORDNET_DIR, "data.noun")),
    "dataset-fashion-mnist": os.path.exists(FASHION_MNIST_DIR),
}


def needs(packages: str):
    """A skipif marker for tests that need the Debian ``packages`` (space-separated)."""
    return pytest.mark.skipif(not _PRESENT[packages],
                              reason=f"needs `apt-get install {packages}` (make data; CI does)")


needs_de_en = needs("trans-de-en")
needs_bibles = needs("sword-text-kjv sword-text-sparv")
needs_wordnet = needs("wordnet-base")
needs_fashion_mnist = needs("dataset-fashion-mnist")


def prepare(config, data_dir: str) -> None:
    """Points ``config`` at ``data_dir`` and prepares its dataset there first, under a file
    lock, so two workers never write the same dataset at once."""
    from filelock import FileLock

    from zoo.data import sources

    config.data.data_dir = data_dir
    name = config.data.dataset
    if sources.is_zoo_dataset(name) and not name.startswith("generated_tasks"):
        with FileLock(os.path.join(data_dir, name.replace("/", "_") + ".lock"), timeout=600):
            sources.data_source(name, "train", data_dir=data_dir)
