"""Tokenizers: characters for generated tasks, a locally trained SentencePiece model for text.

Both kinds share one interface (`Tokenizer`) and the special ids of
`zoo.data.vocab`: pad=0, bos=1, eos=2, unk=3. Characters are the teammate's
`CharVocab` as it is; `SentencePieceTokenizer` mirrors it.

    tok = sentencepiece_tokenizer(workdir, lambda: record_texts(src, ("de", "en")),
                                  vocab_size=8000)

trains a model on first use, writes `workdir/spm.model`, and on every later
call (or restarted run) loads that file instead of training again.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import sentencepiece as spm

from zoo import distributed
from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID, Encoded, pad


class Tokenizer(Protocol):
    """What pipelines need of a tokenizer (CharVocab and SentencePieceTokenizer both fit)."""

    @property
    def size(self) -> int: ...

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


class SentencePieceTokenizer:
    """A SentencePiece model with zoo's special ids (pad 0, bos 1, eos 2, unk 3)."""

    def __init__(self, model_path: str):
        self.path = os.fspath(model_path)
        with open(self.path, "rb") as f:
            self._load(f.read())

    def _load(self, proto: bytes) -> None:
        self._proto = proto
        self._sp = spm.SentencePieceProcessor(model_proto=proto)
        ids = (self._sp.pad_id(), self._sp.bos_id(), self._sp.eos_id(), self._sp.unk_id())
        if ids != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
            raise ValueError(f"SentencePiece model {self.path} has special ids (pad, bos, eos, "
                             f"unk) = {ids}; zoo needs {(PAD_ID, BOS_ID, EOS_ID, UNK_ID)}")

    # Grain worker processes receive the pipeline pickled; the C++ processor is not.
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "proto": self._proto}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._load(state["proto"])

    @property
    def size(self) -> int:
        return self._sp.get_piece_size()

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(size={self.size}, path={self.path!r})"

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._sp.encode(text)
        return [BOS_ID] * add_bos + ids + [EOS_ID] * add_eos

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids` up to the first <eos>; <pad> and <bos> are dropped (as CharVocab)."""
        out = []
        for i in map(int, ids):
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            if not 0 <= i < self.size:
                raise ValueError(f"id {i} is outside this vocabulary of size {self.size}")
            out.append(i)
        return self._sp.decode(out)

    def pieces(self, text: str) -> list[str]:
        return self._sp.encode(text, out_type=str)

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
        rows = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        return pad(rows, max_len=max_len)


def train_sentencepiece(
    texts: Iterable[str],
    model_path: str,
    *,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    character_coverage: float = 0.9995,
    max_sentences: int = 1_000_000,
    **trainer_options: Any,
) -> SentencePieceTokenizer:
    """Trains a SentencePiece model on the first `max_sentences` of `texts`; writes `model_path`.

    The file appears atomically (written beside it, then renamed), so a run
    killed mid-training never leaves a half-written model to be reused.
    """
    if model_type not in ("unigram", "bpe", "char", "word"):
        raise ValueError(f"model_type must be 'unigram', 'bpe', 'char' or 'word', "
                         f"got {model_type!r}")

    def sentences() -> Iterator[str]:
        for n, text in enumerate(texts):
            if n >= max_sentences:
                return
            if text.strip():
                yield text

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
            pad_piece=SPECIAL_TOKENS[PAD_ID], bos_piece=SPECIAL_TOKENS[BOS_ID],
            eos_piece=SPECIAL_TOKENS[EOS_ID], unk_piece=SPECIAL_TOKENS[UNK_ID],
            minloglevel=2,  # quiet
            **trainer_options,
        )
    except RuntimeError as e:  # e.g. "Vocabulary size is too high" for a small corpus
        raise ValueError(f"SentencePiece training failed with vocab_size={vocab_size}: {e}") from e
    directory = os.path.dirname(os.path.abspath(model_path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as f:
        f.write(model.getvalue())
    os.chmod(f.name, 0o644)  # NamedTemporaryFile makes it private
    os.replace(f.name, model_path)
    return SentencePieceTokenizer(model_path)


def sentencepiece_tokenizer(
    model_dir: str,
    texts: Iterable[str] | Callable[[], Iterable[str]],
    *,
    vocab_size: int = 8000,
    name: str = "spm",
    **train_options: Any,
) -> SentencePieceTokenizer:
    """`model_dir/<name>.model` if it exists, else one trained on `texts` and saved there.

    Pass `texts` as a zero-argument callable to read the corpus only when a
    model has to be trained. A saved model with another vocab_size is an error
    (delete it, or use another `name`), not silently replaced.
    """
    return distributed.process_zero_first(
        f"tokenizer {model_dir}/{name}",
        lambda: _load_or_train(os.path.join(model_dir, f"{name}.model"), texts, vocab_size,
                               train_options))


def _load_or_train(path: str, texts, vocab_size: int, train_options: dict):
    if os.path.exists(path):
        tokenizer = SentencePieceTokenizer(path)
        if tokenizer.size != vocab_size:
            raise ValueError(f"{path} has vocab_size {tokenizer.size}, but vocab_size="
                             f"{vocab_size} was asked for; delete the file to retrain, or pass "
                             "another name")
        return tokenizer
    corpus = texts() if callable(texts) else texts
    return train_sentencepiece(corpus, path, vocab_size=vocab_size, **train_options)


def record_texts(
    source: Sequence[dict[str, Any]], fields: Sequence[str], *, limit: int | None = None
) -> Iterator[str]:
    """The text of each of `fields` of the first `limit` records (bytes decoded as UTF-8)."""
    count = len(source) if limit is None else min(limit, len(source))
    for i in range(count):
        record = source[i]
        for field in fields:
            yield as_text(record[field])


def as_text(value: Any) -> str:
    """A record's text feature as str: TFDS data sources give bytes (mock_data gives str)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
