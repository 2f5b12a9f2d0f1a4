"""grain input pipelines: records -> tokens -> fixed-shape numpy batches, resumable.

Glossary: B batch, S source length, T target length (an LM's sequence length);
``...`` is one example's array shape ((Y, X, C) for images: height, width, channels).

    seq2seq_dataset  (source, target) records -> `Seq2SeqArrays` batches:
                     src [B, S], tgt_in [B, T] (<bos> y), tgt_out [B, T] (y <eos>)
                     + lengths; bucketed by length
    lm_dataset       text records -> `LMBatch`: inputs [B, T] (<bos> x),
                     targets [B, T] (x <eos>), segment_ids, positions, lengths;
                     documents packed into rows (or one a row)
    array_dataset    records with one array feature (images, points) -> dicts
                     {'x': float32 [B, ...]} (+ 'mask' [B] for evaluation)

All return a `grain.IterDataset` whose order depends only on `seed` (and
the shard); `iter(ds)` is a `grain.DatasetIterator`, and
`it.get_state()` / `it.set_state(state)` (a small JSON-able dict; or
`grain.checkpoint.CheckpointSave/CheckpointRestore` with Orbax) resume it
exactly, mid-epoch included.

Static shapes for jit: every batch has B rows (a short last batch is
dropped, or with `drop_remainder=False` filled with empty rows of length 0),
and its length dimension is one of a few bucket boundaries (only the maximum
when `buckets=None`), so a jitted step compiles once per bucket.

Order of operations: shard the record indices by process (contiguous
ranges), shuffle (a new permutation each epoch), repeat, read and tokenise in
chunks (grain threads), drop or truncate long examples, then take windows of
`bucket_window * B` examples, sort each window by length and cut it into
B-row batches, in a seeded random order (seq2seq), or pack documents into
rows (LM), or stack arrays (array_dataset).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import grain
import numpy as np

from zoo.data.reading import Flatten, check_positive, shard_interval, tokenized, with_workers
from zoo.data.tokenizers import Tokenizer, as_text
from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID, Seq2SeqArrays

LONG_EXAMPLES = ("drop", "truncate")
__all__ = ["LMBatch", "array_dataset", "lm_dataset", "seq2seq_dataset", "shard_interval"]


class LMBatch(NamedTuple):
    """A language-model batch; loss where `segment_ids > 0`."""

    inputs: np.ndarray  # [B, T] int32: <bos> x_1 .. x_n per document, PAD after
    targets: np.ndarray  # [B, T] int32: x_1 .. x_n <eos> (what to predict at each position)
    segment_ids: np.ndarray  # [B, T] int32: 1, 2, .. per packed document, 0 on padding
    positions: np.ndarray  # [B, T] int32: position within its document
    lengths: np.ndarray  # [B] int32: non-padding tokens per row


def _bucket_lengths(buckets: Sequence[int] | None, max_len: int) -> np.ndarray:
    """Sorted padded lengths: the boundaries below max_len, then max_len itself."""
    bounds = [b for b in (buckets or ()) if 0 < b < max_len]
    return np.array(sorted(set(bounds)) + [max_len], dtype=np.int32)


def _padded_length(lengths: np.ndarray, bounds: np.ndarray) -> int:
    """The smallest bucket boundary that holds the longest of `lengths`."""
    return int(bounds[np.searchsorted(bounds, lengths.max(initial=1))])


def _pad_rows(rows: Sequence[np.ndarray], length: int, batch_size: int) -> np.ndarray:
    out = np.full((batch_size, length), PAD_ID, dtype=np.int32)  # [B, length]
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


# ------------------------------------------------------------------------- seq2seq


def _window_to_batches(
    window, rng, *, batch_size, src_bounds, tgt_bounds, drop_remainder, shuffle
) -> list[Seq2SeqArrays]:
    """Tokenised pairs -> B-row Seq2SeqArrays batches of similar lengths, in random order."""
    B = batch_size
    order = sorted(range(len(window)), key=lambda i: (len(window[i][1]), len(window[i][0])))
    chunks = [[window[i] for i in order[k : k + B]] for k in range(0, len(order), B)]
    if drop_remainder and chunks and len(chunks[-1]) < B:
        chunks.pop()
    if shuffle:  # else short batches would always come first in each window
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return [_seq2seq_batch(chunk, B, src_bounds, tgt_bounds) for chunk in chunks]


def _seq2seq_batch(pairs, batch_size, src_bounds, tgt_bounds) -> Seq2SeqArrays:
    B = batch_size
    src_lengths = np.zeros(B, np.int32)  # [B]
    tgt_lengths = np.zeros(B, np.int32)  # [B] = n + 1 (<bos>/<eos> added)
    src_lengths[: len(pairs)] = [len(s) for s, _ in pairs]
    tgt_lengths[: len(pairs)] = [len(t) + 1 for _, t in pairs]
    S = _padded_length(src_lengths, src_bounds)
    T = _padded_length(tgt_lengths, tgt_bounds)
    src = _pad_rows([s for s, _ in pairs], S, B)  # [B, S]
    tgt_in = _pad_rows([np.concatenate([[BOS_ID], t]) for _, t in pairs], T, B)  # [B, T]
    tgt_out = _pad_rows([np.concatenate([t, [EOS_ID]]) for _, t in pairs], T, B)  # [B, T]
    return Seq2SeqArrays(src, src_lengths, tgt_in, tgt_out, tgt_lengths)


def seq2seq_dataset(
    source: Sequence[Any],
    *,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer | None = None,
    fields: tuple[str, str] = ("source", "target"),
    batch_size: int,
    max_src_len: int,
    max_tgt_len: int,
    buckets: Sequence[int] | None = None,
    bucket_window: int = 16,
    long_examples: str = "drop",
    source_eos: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = None,
    shard: grain.sharding.ShardOptions | None = None,
    drop_remainder: bool = True,
    worker_count: int = 0,
    read_options: grain.ReadOptions | None = None,
) -> grain.IterDataset:
    """Batches of `Seq2SeqArrays` from a random-access source of (source, target) records.

    Args:
      source: records (dicts), e.g. `zoo.data.sources.data_source(...)`.
      src_tokenizer / tgt_tokenizer: CharVocab or SentencePieceTokenizer
        (tgt defaults to src: a shared vocabulary).
      fields: the record keys of source and target text, e.g. ('de', 'en').
      batch_size: B, rows per batch (also the size of the last batch).
      max_src_len: S bound, source tokens (plus <eos> if `source_eos`).
      max_tgt_len: T bound, target tokens + 1 (tgt_in has <bos>, tgt_out <eos>).
      buckets: padded lengths to choose from (each batch takes the smallest that
        fits, per side); None pads every batch to the maximum.
      bucket_window: batches per window sorted by length (1 = no sorting).
      long_examples: 'drop' pairs over the bounds, or 'truncate' them.
      source_eos: append <eos> to source sequences.
      shuffle, seed: shuffle records (a new permutation every epoch) and
        batch order within each window, deterministically by seed.
      num_epochs: passes over the data; None repeats forever.
      shard: this process' share, e.g. `grain.sharding.ShardByJaxProcess(
        drop_remainder=True)`; None reads everything.
      drop_remainder: drop a short last batch, else fill it with empty rows
        (length 0) so evaluation sees every example with static shapes.
      worker_count: grain worker processes (absl flags must be parsed first).
      read_options: grain threads for reading and tokenising.
    """
    check_positive(batch_size=batch_size, max_src_len=max_src_len, max_tgt_len=max_tgt_len,
                    bucket_window=bucket_window)
    if max_tgt_len < 2:
        raise ValueError(f"max_tgt_len must be >= 2 (a token plus <bos>/<eos>), got {max_tgt_len}")
    if long_examples not in LONG_EXAMPLES:
        raise ValueError(f"long_examples must be one of {LONG_EXAMPLES}, got {long_examples!r}")
    if len(fields) != 2:
        raise ValueError(f"fields must name the source and target features, got {fields!r}")
    tgt_tokenizer = tgt_tokenizer or src_tokenizer
    src_key, tgt_key = fields

    def tokenize(record) -> tuple[np.ndarray, np.ndarray]:
        src = src_tokenizer.encode(as_text(record[src_key]))
        tgt = tgt_tokenizer.encode(as_text(record[tgt_key]))
        if long_examples == "truncate":
            src, tgt = src[: max_src_len - source_eos], tgt[: max_tgt_len - 1]
        return np.asarray(src + [EOS_ID] * source_eos, np.int32), np.asarray(tgt, np.int32)

    def fits(pair) -> bool:
        src, tgt = pair
        return len(src) <= max_src_len and len(tgt) + 1 <= max_tgt_len

    ds = tokenized(source, tokenize, shard=shard, shuffle=shuffle, seed=seed,
                    num_epochs=num_epochs, read_options=read_options).filter(fits)
    ds = ds.batch(bucket_window * batch_size, batch_fn=list)
    to_batches = functools.partial(
        _window_to_batches, batch_size=batch_size,
        src_bounds=_bucket_lengths(buckets, max_src_len),
        tgt_bounds=_bucket_lengths(buckets, max_tgt_len),
        drop_remainder=drop_remainder, shuffle=shuffle,
    )
    ds = ds.random_map(to_batches, seed=seed)
    ds = grain.experimental.FlatMapIterDataset(ds, Flatten(bucket_window))
    return with_workers(ds, worker_count)


# ------------------------------------------------------------------------- language model


def _lm_batch(rows: Sequence[dict[str, np.ndarray]], batch_size: int, length: int) -> LMBatch:
    inputs = np.full((batch_size, length), PAD_ID, np.int32)  # [B, T]
    targets = np.full((batch_size, length), PAD_ID, np.int32)  # [B, T]
    segment_ids = np.zeros((batch_size, length), np.int32)  # [B, T]
    positions = np.zeros((batch_size, length), np.int32)  # [B, T]
    for i, row in enumerate(rows):
        inputs[i], targets[i] = row["inputs"], row["targets"]
        segment_ids[i], positions[i] = row["inputs_segment_ids"], row["inputs_positions"]
    lengths = (segment_ids > 0).sum(axis=1).astype(np.int32)  # [B]
    return LMBatch(inputs, targets, segment_ids, positions, lengths)


def lm_dataset(
    source: Sequence[Any],
    *,
    tokenizer: Tokenizer,
    field: str = "text",
    batch_size: int,
    seq_len: int,
    pack: bool = True,
    long_examples: str = "truncate",
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = None,
    shard: grain.sharding.ShardOptions | None = None,
    drop_remainder: bool = True,
    worker_count: int = 0,
    read_options: grain.ReadOptions | None = None,
) -> grain.IterDataset:
    """Batches of `LMBatch` [B, T] from a random-access source of text records.

    Each document becomes inputs `<bos> x` and targets `x <eos>` (n + 1 tokens).
    With `pack`, documents are packed first-fit into rows of `seq_len` tokens,
    told apart by `segment_ids` (1, 2, ..; 0 = padding) and restarted
    `positions`, so attention must not cross segments; without it, one
    document a row. Documents longer than `seq_len` are truncated or dropped
    (`long_examples`). Other arguments as in `seq2seq_dataset`.
    """
    check_positive(batch_size=batch_size, seq_len=seq_len)
    if long_examples not in LONG_EXAMPLES:
        raise ValueError(f"long_examples must be one of {LONG_EXAMPLES}, got {long_examples!r}")

    def tokenize(record) -> dict[str, np.ndarray]:
        ids = tokenizer.encode(as_text(record[field]))
        inputs = np.asarray([BOS_ID, *ids], np.int32)[:seq_len]
        targets = np.asarray([*ids, EOS_ID], np.int32)[:seq_len]
        if long_examples == "drop" and len(ids) + 1 > seq_len:
            inputs = targets = np.zeros(0, np.int32)  # filtered out below
        return {"inputs": inputs, "targets": targets}

    ds = tokenized(source, tokenize, shard=shard, shuffle=shuffle, seed=seed,
                    num_epochs=num_epochs, read_options=read_options)
    ds = ds.filter(lambda d: len(d["inputs"]))
    if pack:
        ds = grain.experimental.FirstFitPackIterDataset(
            ds, length_struct={"inputs": seq_len, "targets": seq_len},
            num_packing_bins=batch_size, seed=seed, shuffle_bins=shuffle,
        )
    else:
        ds = ds.map(lambda d: {
            **d,
            "inputs_segment_ids": np.ones(len(d["inputs"]), np.int32),
            "inputs_positions": np.arange(len(d["inputs"]), dtype=np.int32),
        })
    ds = ds.map(lambda d: {k: _pad_rows([v], seq_len, 1)[0] for k, v in d.items()})
    ds = ds.batch(batch_size, drop_remainder=drop_remainder,
                  batch_fn=lambda rows: _lm_batch(rows, batch_size, seq_len))
    return with_workers(ds, worker_count)


# ------------------------------------------------------------------------- arrays (images)


def _array_batch(rows: Sequence[tuple[np.ndarray, int | None]], batch_size: int,
                 with_mask: bool) -> dict:
    """Stacks (array [...], label or None) rows into {'x': [B, ...]} (+ 'label' int32 [B]);
    a short batch is filled with zero rows."""
    x = np.zeros((batch_size, *rows[0][0].shape), np.float32)  # [B, ...]
    x[: len(rows)] = np.stack([row[0] for row in rows])
    batch = {"x": x}
    if rows[0][1] is not None:
        batch["label"] = np.zeros((batch_size,), np.int32)  # [B]
        batch["label"][: len(rows)] = [row[1] for row in rows]
    if with_mask:
        batch["mask"] = np.arange(batch_size) < len(rows)  # [B] True on real rows
    return batch


def array_dataset(
    source: Sequence[Any],
    *,
    field: str,
    batch_size: int,
    value_range: tuple[float, float] = (0.0, 1.0),
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = None,
    shard: grain.sharding.ShardOptions | None = None,
    drop_remainder: bool = True,
    worker_count: int = 0,
    read_options: grain.ReadOptions | None = None,
    label_field: str | None = None,
) -> grain.IterDataset:
    """Batches {'x': float32 [B, ...]} of the array feature `field` of each record, and
    {'label': int32 [B]} of its integer feature `label_field` when one is given.

    uint8 features (pixels) are mapped linearly from [0, 255] onto `value_range`:
    (0, 1) for a VAE's grey levels, (-1, 1) for a tanh generator. Float features
    (points in the plane) pass through unchanged. With `drop_remainder=False`
    a short last batch is filled with zero rows and every batch also carries
    `mask` bool [B] (True on real rows), so evaluation sees each example once
    with static shapes. Other arguments as in `seq2seq_dataset`.
    """
    check_positive(batch_size=batch_size)
    low, high = (float(v) for v in value_range)
    if not low < high:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")

    def convert(record) -> tuple[np.ndarray, int | None]:
        x = np.asarray(record[field])
        if x.dtype == np.uint8:
            x = x.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low)
        label = None if label_field is None else int(record[label_field])
        return x.astype(np.float32), label

    ds = tokenized(source, convert, shard=shard, shuffle=shuffle, seed=seed,
                   num_epochs=num_epochs, read_options=read_options)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder,
                  batch_fn=functools.partial(_array_batch, batch_size=batch_size,
                                             with_mask=not drop_remainder))
    return with_workers(ds, worker_count)
