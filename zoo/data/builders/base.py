"""What every zoo TFDS builder shares: array_record files, local sources, no download.

TFDS needs TensorFlow only to write or read tfrecord files; builders that
write `array_record` and are read with `tfds.data_source` /
`builder.as_data_source()` work without it. So `LocalBuilder` makes
array_record the default, and `prepare` never lets TFDS reach the network
(prepared data is not fetched from GCS; `_split_generators` reads local files).
"""

from __future__ import annotations

from typing import Any

import tensorflow_datasets as tfds

FILE_FORMAT = "array_record"


def download_config(max_examples_per_split: int | None = None) -> tfds.download.DownloadConfig:
    """A DownloadConfig that never downloads (prepared data included)."""
    return tfds.download.DownloadConfig(
        try_download_gcs=False, max_examples_per_split=max_examples_per_split
    )


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A GeneratorBasedBuilder that writes array_record from local files.

    `source` overrides where the Debian package put its files (tests point it
    at a missing path to check the error message).
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> None:
        # TFDS looks for a checksums file beside the builder's code, and on
        # Python >= 3.9 trips over a missing `importlib_resources` backport
        # doing so; these builders download nothing, so there is no such file.
        return None

    def __init__(self, *, source: str | None = None, **kwargs: Any):
        kwargs.setdefault("file_format", FILE_FORMAT)
        self._source = source
        super().__init__(**kwargs)

    def source_path(self, default: str) -> str:
        return default if self._source is None else self._source


def prepare(
    builder: tfds.core.DatasetBuilder, *, max_examples_per_split: int | None = None
) -> tfds.core.DatasetBuilder:
    """Writes `builder`'s splits to its data_dir unless they are there already."""
    builder.download_and_prepare(download_config=download_config(max_examples_per_split))
    return builder
