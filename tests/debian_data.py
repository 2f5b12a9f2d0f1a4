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
