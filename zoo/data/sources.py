"""Open any TFDS dataset split as a random-access source for grain, without TensorFlow.

One code path for every dataset: `tfds.data_source(name, split=..., data_dir=...)`.

- zoo's own datasets (`generated_tasks/dates`, `de_en/sentences`, `en_es_bible`,
  `wordnet_glosses`, see `zoo.data.builders`) are prepared from local files on
  first use, into `data_dir`.
- Any other dataset (e.g. `wmt14_translate/de-en`) must already be prepared in
  `data_dir` in the array_record format; it is never downloaded.

`data_dir=None` means TFDS's default: $TFDS_DATA_DIR, else ~/tensorflow_datasets.
Records are dicts of `bytes` for text features (`str` under
`tfds.testing.mock_data`); `zoo.data.pipeline` accepts both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow_datasets as tfds

from zoo import distributed
from zoo.data.builders import BUILDERS, download_config


def is_zoo_dataset(name: str) -> bool:
    """True for the datasets zoo can prepare itself ('de_en/sentences', 'generated_tasks', ...)."""
    return name.split("/")[0].split(":")[0] in BUILDERS


def data_source(
    name: str,
    split: str,
    *,
    data_dir: str | None = None,
    prepare: bool = True,
    builder_kwargs: dict[str, Any] | None = None,
) -> Sequence[dict[str, Any]]:
    """Records of `split` of TFDS dataset `name` (a grain-ready random-access source).

    Args:
      name: TFDS name with optional config and version: 'generated_tasks/dates',
        'de_en/sentences', 'wmt14_translate/de-en:1.0.0', ...
      split: 'train', 'validation', 'test', or a TFDS split slice ('train[:1000]').
      data_dir: where prepared datasets live (None: TFDS's default).
      prepare: prepare zoo's own datasets if they are not in `data_dir` yet.
      builder_kwargs: extra builder arguments, e.g. `{'config': task_config(...)}`.

    Raises:
      zoo.data.corpora.MissingSourceError: a real corpus' Debian package is missing.
      FileNotFoundError: a dataset that zoo cannot prepare is not in `data_dir` (as
        array_record).
    """
    ours = is_zoo_dataset(name)
    if ours and not prepare:
        builder = tfds.builder(name, data_dir=data_dir, **(builder_kwargs or {}))
        if not builder.is_prepared():
            raise _not_prepared(name, split, data_dir, "pass prepare=True to write it")
    def load():
        return tfds.data_source(
            name,
            split=split,
            data_dir=data_dir,
            download=ours and prepare,
            builder_kwargs=builder_kwargs,
            download_and_prepare_kwargs={"download_config": download_config()} if ours else None,
            try_gcs=False,
        )

    try:
        if ours and prepare:  # several processes: one prepares, then the others read it
            return distributed.process_zero_first(f"prepare {name} in {data_dir}", load)
        return load()
    except (AssertionError, NotImplementedError, tfds.core.registered.DatasetNotFoundError) as e:
        # How TFDS says "not prepared": DatasetNotFoundError (no code, no files),
        # NotImplementedError (code but no array_record files), AssertionError.
        hint = ("zoo never downloads: prepare it with TFDS on a machine with network access, "
                "with file_format='array_record', and copy it there")
        cause = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        raise _not_prepared(name, split, data_dir, f"{hint} ({cause})") from e


def _not_prepared(name: str, split: str, data_dir: str | None, hint: str) -> FileNotFoundError:
    where = data_dir or "TFDS's default data_dir ($TFDS_DATA_DIR or ~/tensorflow_datasets)"
    return FileNotFoundError(f"dataset {name!r} split {split!r} is not prepared in the "
                             f"array_record format in {where}; {hint}")
