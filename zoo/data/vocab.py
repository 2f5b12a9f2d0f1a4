"""Character vocabulary: text <-> token ids, and padded id arrays for seq2seq batches.

Glossary: B examples, S source length, T target length (also the padded length of
any `Encoded` ids).

Ids 0..3 are reserved for the special tokens below in every vocabulary, so a
model trained on one task's vocabulary decodes with the same `pad_id`,
`bos_id` and `eos_id` as any other:

    0 <pad>   fills positions after the end of a sequence
    1 <bos>   first decoder input ("begin of sequence")
    2 <eos>   last target token; decoding stops when it is produced
    3 <unk>   any character outside the vocabulary

Characters get ids 4.. in the order given, so a vocabulary built from the
same alphabet always assigns the same ids (no dependence on data order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
# What `decode` writes for an <unk> id: visibly not a character of the input.
UNK_TEXT = "\N{REPLACEMENT CHARACTER}"


class Encoded(NamedTuple):
    ids: np.ndarray  # [B, T] int32, PAD_ID after each sequence's end
    lengths: np.ndarray  # [B] int32, real tokens per row (bos/eos included)


class Seq2SeqArrays(NamedTuple):
    """Teacher-forcing arrays for (source, target) pairs; one row per pair."""

    src: np.ndarray  # [B, S] int32 source ids (no bos/eos)
    src_lengths: np.ndarray  # [B] int32
    tgt_in: np.ndarray  # [B, T] int32: <bos> y_1 .. y_n  (decoder inputs)
    tgt_out: np.ndarray  # [B, T] int32: y_1 .. y_n <eos> (what to predict)
    tgt_lengths: np.ndarray  # [B] int32 = n + 1, the positions that count in the loss


class CharVocab:
    """A fixed character vocabulary with the four reserved special ids."""

    def __init__(self, alphabet: Iterable[str]):
        chars = list(dict.fromkeys(alphabet))  # dedupe, keep first-seen order
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"alphabet must hold single characters, got {bad[:5]!r}")
        self.chars = tuple(chars)
        self._ids = {c: i + len(SPECIAL_TOKENS) for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharVocab:
        """The vocabulary of every character in `texts`, sorted (order-independent)."""
        return cls(sorted(set().union(*map(set, texts))))

    @property
    def size(self) -> int:
        return len(SPECIAL_TOKENS) + len(self.chars)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size}, chars={''.join(self.chars)!r})"

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of `text`; characters outside the vocabulary become UNK_ID."""
        ids = [self._ids.get(c, UNK_ID) for c in text]
        return [BOS_ID] * add_bos + ids + [EOS_ID] * add_eos

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids` up to the first <eos>; <pad> and <bos> are dropped."""
        out = []
        for i in map(int, ids):
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            if not 0 <= i < self.size:
                raise ValueError(f"id {i} is outside this vocabulary of size {self.size}")
            out.append(UNK_TEXT if i == UNK_ID else self.chars[i - len(SPECIAL_TOKENS)])
        return "".join(out)

    def decode_batch(self, ids: np.ndarray) -> list[str]:
        """[B, T] ids -> B texts."""
        return [self.decode(row) for row in np.asarray(ids)]

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        max_len: int | None = None,
        add_bos: bool = False,
        add_eos: bool = False,
    ) -> Encoded:
        """Encodes and right-pads `texts` to `max_len` (default: the longest)."""
        rows = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        return pad(rows, max_len=max_len)


def pad(rows: Sequence[Sequence[int]], *, max_len: int | None = None) -> Encoded:
    """Right-pads id lists with PAD_ID into `Encoded(ids [B, T], lengths [B])`."""
    lengths = np.array([len(r) for r in rows], dtype=np.int32)  # [B]
    longest = int(lengths.max(initial=0))
    if max_len is None:
        max_len = max(longest, 1)
    if longest > max_len:
        raise ValueError(
            f"max_len={max_len} is shorter than the longest sequence ({longest} ids); "
            "pass max_len >= the longest length or None"
        )
    ids = np.full((len(rows), max_len), PAD_ID, dtype=np.int32)  # [B, T]
    for n, row in enumerate(rows):
        ids[n, : len(row)] = row
    return Encoded(ids, lengths)


def seq2seq_arrays(
    pairs: Sequence[tuple[str, str]],
    src_vocab: CharVocab,
    tgt_vocab: CharVocab | None = None,
    *,
    src_len: int | None = None,
    tgt_len: int | None = None,
) -> Seq2SeqArrays:
    """Teacher-forcing arrays for `pairs`; `tgt_len` counts the added <bos>/<eos>."""
    tgt_vocab = tgt_vocab or src_vocab
    src = src_vocab.encode_batch([s for s, _ in pairs], max_len=src_len)
    tgt_in = tgt_vocab.encode_batch([t for _, t in pairs], max_len=tgt_len, add_bos=True)
    tgt_out = tgt_vocab.encode_batch([t for _, t in pairs], max_len=tgt_len, add_eos=True)
    return Seq2SeqArrays(src.ids, src.lengths, tgt_in.ids, tgt_out.ids, tgt_out.lengths)
