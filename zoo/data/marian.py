"""Marian (Opus-MT) tokenization: SentencePiece pieces looked up in ``vocab.json``.

A Marian checkpoint directory, as Hugging Face distributes Opus-MT, tokenizes
with two SentencePiece models, ``source.spm`` and ``target.spm``. Their own
ids are never used: each *piece* is looked up in ``vocab.json`` {piece: id},
one table for both sides (``target_vocab.json`` when the sides differ), whose
ids index the model's embeddings. A piece missing from it becomes ``<unk>``;
a leading language code such as ``>>fra<<`` (multilingual models) is one
token; every encoded source ends with ``</s>``. This is what transformers'
``MarianTokenizer`` computes when sacremoses is absent (with sacremoses it
first normalises punctuation, which zoo does not).

Marian's ids put ``</s>`` and ``<unk>`` first and ``<pad>`` last; its decoder
starts from ``<pad>``. zoo's pipelines, training family and decoding use the
fixed ids of ``zoo.data.vocab`` instead (pad 0, bos 1, eos 2, unk 3), so
``ZooOrderTokenizer`` renumbers a MarianTokenizer into that order:

    zoo id   0      1                    2       3       4 ...
    Marian   (new)  <pad> (the start)    </s>    <unk>   every other id, ascending

Marian's one <pad> plays two parts that zoo keeps apart (padding and the
decoder's first input), so zoo's table has one row more: row 0, which the
importer fills with a copy of <pad>'s row and never lets the model predict.
``zoo_order`` gives the Marian id of every zoo id, to reorder weights with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import sentencepiece as spm

from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID

SIDES = ("source", "target")
EOS, UNK, PAD = "</s>", "<unk>", "<pad>"
WORD_START = "\N{LOWER ONE EIGHTH BLOCK}"  # SentencePiece's '▁'


def _language_code(text: str) -> tuple[list[str], str]:
    """('>>fra<<' prefix as a one-item list, the rest), or ([], text)."""
    end = text.find("<<")
    if text.startswith(">>") and end != -1:
        return [text[:end + 2]], text[end + 2:]
    return [], text


class MarianTokenizer:
    """One side of a Marian directory, in Marian's own ids.

    Args:
      directory: holds ``source.spm``, ``target.spm`` and ``vocab.json``.
      side: 'source' (encodes end with </s>, as the model reads them) or 'target'.
    """

    def __init__(self, directory: str, side: str = "source"):
        if side not in SIDES:
            raise ValueError(f"side must be one of {list(SIDES)}, got {side!r}")
        self.directory, self.side = os.fspath(directory), side
        model = os.path.join(self.directory, f"{side}.spm")
        separate = os.path.join(self.directory, "target_vocab.json")
        table = separate if side == "target" and os.path.isfile(separate) else os.path.join(
            self.directory, "vocab.json")
        for path in (model, table):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{self.directory!r} is not a Marian tokenizer directory: "
                                        f"{os.path.basename(path)} is missing")
        self._sp = spm.SentencePieceProcessor(model_file=model)
        with open(table) as f:
            self.vocab: dict[str, int] = json.load(f)
        missing = [p for p in (EOS, UNK, PAD) if p not in self.vocab]
        if missing:
            raise ValueError(f"{table!r} lacks the special pieces {missing}")
        self.pieces = {i: p for p, i in self.vocab.items()}
        if sorted(self.pieces) != list(range(len(self.vocab))):
            raise ValueError(f"{table!r} must number its pieces 0 .. {len(self.vocab) - 1}")
        self.eos_id, self.unk_id, self.pad_id = (self.vocab[p] for p in (EOS, UNK, PAD))

    # Grain worker processes receive pipelines pickled; the SentencePiece processor is not.
    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "side": self.side}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"], state["side"])

    @property
    def size(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"MarianTokenizer(side={self.side!r}, size={self.size}, {self.directory!r})"

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Marian ids of ``text``; a source always ends with </s>, a target when ``add_eos``."""
        if add_bos:
            raise ValueError("Marian has no <bos>: its decoder starts from <pad>; encode "
                             "without add_bos")
        code, rest = _language_code(text)
        pieces = code + self._sp.encode(rest, out_type=str)
        ids = [self.vocab.get(p, self.unk_id) for p in pieces]
        return ids + [self.eos_id] * (add_eos or self.side == "source")

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` up to the first </s>; <pad> and <unk> are dropped."""
        pieces = []
        for i in map(int, ids):
            if i == self.eos_id:
                break
            if i not in self.pieces:
                raise ValueError(f"id {i} is outside this vocabulary of size {self.size}")
            if i not in (self.pad_id, self.unk_id):
                pieces.append(self.pieces[i])
        return self._sp.decode_pieces(pieces).replace(WORD_START, " ").strip()


def zoo_order(tokenizer: MarianTokenizer) -> np.ndarray:
    """[V + 1] int: the Marian id of each zoo id (zoo's row 0 repeats <pad>)."""
    special = [tokenizer.pad_id, tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id]  # 0..3
    rest = [i for i in range(tokenizer.size) if i not in special]
    return np.asarray(special + rest, np.int32)


class ZooOrderTokenizer:
    """A MarianTokenizer renumbered to zoo's special ids (see the module docstring)."""

    def __init__(self, marian: MarianTokenizer):
        self.marian = marian
        self.order = zoo_order(marian)  # [V + 1]: zoo id -> Marian id
        self._to_zoo = np.empty(marian.size, np.int32)  # [V]: Marian id -> zoo id
        self._to_zoo[self.order[1:]] = np.arange(1, len(self.order), dtype=np.int32)

    def __getstate__(self) -> dict[str, Any]:
        return {"marian": self.marian}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["marian"])

    @property
    def size(self) -> int:
        return len(self.order)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"ZooOrderTokenizer({self.marian!r})"

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._to_zoo[self.marian.encode(text, add_eos=add_eos)].tolist()
        return [BOS_ID] * add_bos + ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text up to the first <eos>; zoo's <pad> and <bos> are dropped."""
        marian = []
        for i in map(int, ids):
            if not 0 <= i < self.size:
                raise ValueError(f"id {i} is outside this vocabulary of size {self.size}")
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                marian.append(int(self.order[i]))
        return self.marian.decode(marian)


def marian_tokenizers(directory: str) -> tuple[ZooOrderTokenizer, ZooOrderTokenizer]:
    """(source, target) tokenizers of a Marian directory, in zoo's order."""
    return tuple(ZooOrderTokenizer(MarianTokenizer(directory, side)) for side in SIDES)


__all__ = ["MarianTokenizer", "ZooOrderTokenizer", "marian_tokenizers", "zoo_order"]
