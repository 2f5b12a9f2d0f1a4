"""Data: generated seq2seq tasks and character vocabularies (re-exported here), plus
TFDS builders, corpora, tokenizers and grain pipelines in their own modules."""

from zoo.data.tasks import (
    ALPHABETS,
    DATE_FORMATS,
    TASKS,
    addition_pairs,
    copy_pairs,
    date_pairs,
    generate,
    reverse_pairs,
    sort_pairs,
    task_vocab,
)
from zoo.data.vocab import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    CharVocab,
    Encoded,
    Seq2SeqArrays,
    pad,
    seq2seq_arrays,
)

__all__ = [
    "ALPHABETS",
    "BOS_ID",
    "DATE_FORMATS",
    "EOS_ID",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "TASKS",
    "UNK_ID",
    "CharVocab",
    "Encoded",
    "Seq2SeqArrays",
    "addition_pairs",
    "copy_pairs",
    "date_pairs",
    "generate",
    "pad",
    "reverse_pairs",
    "seq2seq_arrays",
    "sort_pairs",
    "task_vocab",
]
