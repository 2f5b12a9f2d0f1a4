"""Reading for grain pipelines: shard by process, shuffle per epoch, read in chunks, tokenise.

`tokenized(source, tokenize, ...)` is the first stage of every pipeline in
`zoo.data.pipeline`: an `IterDataset` of `tokenize(record)` for this
process' records, in a seeded order that is new each epoch, whose iterator
state is a small dict (grain restores it exactly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np


def shard_interval(num_records: int, shard: grain.sharding.ShardOptions) -> tuple[int, int]:
    """[start, end) of the records this process reads: contiguous, sizes differ by <= 1.

    With `shard.drop_remainder` every shard gets exactly num_records // count
    records, so all processes run the same number of steps.
    """
    count, index = shard.shard_count, shard.shard_index
    per_shard, extra = divmod(num_records, count)
    if shard.drop_remainder:
        return index * per_shard, (index + 1) * per_shard
    start = index * per_shard + min(index, extra)
    return start, start + per_shard + (index < extra)


class Flatten(grain.experimental.FlatMapTransform):
    """A list of elements -> the elements, one by one (resumable mid-list)."""

    def __init__(self, max_fan_out: int):
        self.max_fan_out = max_fan_out

    def flat_map(self, element):
        return element


class _ReadChunk:
    """Chunk number -> the tokenised records of that chunk of this epoch's permutation.

    Why not `MapDataset.shuffle().map()`: with grain 0.2.18 and TFDS's
    array_record source that reads one record per call (~150 us each) and
    pays a per-element prefetch bookkeeping cost; one batched read
    (`__getitems__`) of a chunk costs about as much as a single record, which
    makes the pipeline ~8x faster. The permutation of epoch e is
    `default_rng([seed, e]).permutation(n)`: the same after every restart.
    """

    def __init__(self, source, start, num_records, chunk, shuffle, seed, tokenize):
        self._source, self._start, self._n = source, start, num_records
        self._chunk, self._shuffle, self._seed = chunk, shuffle, seed
        self._tokenize = tokenize
        self.chunks_per_epoch = -(-num_records // chunk)
        self._cached: tuple[int, np.ndarray] | None = None  # (epoch, permutation)

    def _order(self, epoch: int) -> np.ndarray:
        cached = self._cached  # one read: other grain threads may replace it
        if cached is None or cached[0] != epoch:
            order = np.arange(self._n)
            if self._shuffle:
                order = np.random.default_rng([self._seed, epoch]).permutation(self._n)
            cached = self._cached = (epoch, order)
        return cached[1]

    def __call__(self, index: int, _) -> list[Any]:
        epoch, position = divmod(index, self.chunks_per_epoch)
        ids = self._order(epoch)[position * self._chunk : (position + 1) * self._chunk]
        ids = [self._start + int(i) for i in ids]
        return [self._tokenize(record) for record in _read(self._source, ids)]


def _read(source: Sequence[Any], ids: list[int]) -> Sequence[Any]:
    """source[i] for i in ids, in one batched read where the source has one."""
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        try:
            return getitems(ids)
        except TypeError:  # tfds.testing.mock_data's sources break this method
            pass
    return [source[i] for i in ids]


def tokenized(
    source: Sequence[Any],
    tokenize: Callable[[Any], Any],
    *,
    shard: grain.sharding.ShardOptions | None,
    shuffle: bool,
    seed: int,
    num_epochs: int | None,
    read_options: grain.ReadOptions | None,
    chunk: int = 256,
) -> grain.IterDataset:
    """This process' records, shuffled per epoch, repeated, tokenised: one element each."""
    if num_epochs is not None and (
        isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1
    ):
        raise ValueError(f"num_epochs must be None (forever) or an int >= 1, got {num_epochs!r}")
    start, end = (0, len(source)) if shard is None else shard_interval(len(source), shard)
    if end <= start:
        raise ValueError(f"no records to read: the source has {len(source)}, shard {shard}")
    read = _ReadChunk(source, start, end - start, chunk, shuffle, seed, tokenize)
    ds = grain.MapDataset.range(read.chunks_per_epoch).repeat(num_epochs).map_with_index(read)
    # Buffer sizes count chunks; two threads suit the 2-core machines this runs on.
    default_options = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)
    ds = ds.to_iter_dataset(read_options or default_options)
    return grain.experimental.FlatMapIterDataset(ds, Flatten(chunk))


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def with_workers(ds: grain.IterDataset, worker_count: int) -> grain.IterDataset:
    if worker_count > 0:
        # Worker processes need absl flags parsed first (train.py does; tests use 0).
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return ds
