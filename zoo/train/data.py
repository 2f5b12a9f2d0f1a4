"""Data bundles for the training loop, built from the config's ``data`` section.

Glossary: B batch, S source length, T target length (an LM's sequence length);
``...`` is one example's array shape ((Y, X, C) for images: height, width, channels).

Every dataset goes through one path: ``zoo.data.sources.data_source`` (TFDS,
array_record, no TensorFlow; zoo's own datasets are prepared locally on first
use) -> ``zoo.data.pipeline`` (grain) -> dict batches of numpy arrays. The
train iterator's state is JSON and is checkpointed with the model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Any

import grain
import jax
import numpy as np
import sacrebleu
import tensorflow_datasets as tfds

from zoo.data import pipeline, sources, tokenizers
from zoo.data.builders import task_config
from zoo.data.marian import marian_tokenizers
from zoo.data.tasks import TASKS, task_vocab
from zoo.data.vocab import EOS_ID, PAD_ID

GENERATED = "generated_tasks"


@dataclasses.dataclass
class Bundle:
    """What the loop needs from a dataset."""

    example_batch: dict
    train_iterator: Callable[[], Any]
    eval_batches: Callable[[], Iterator[dict]]
    # What the data decides about the model (the family's vocab_fields reads it):
    # {"src": size, "tgt": size} for text, {"data_shape": (...)} for arrays.
    vocab: dict
    tokenizer: Any  # target side: decode ids -> text (None for arrays)
    src_tokenizer: Any = None
    eval_decode_batches: Callable[[int], Iterator] | None = None
    metric: str = "exact_match"  # exact_match | bleu
    extras: dict = dataclasses.field(default_factory=dict)

    def detokenize(self, ids) -> str:
        ids = [int(i) for i in ids]
        if EOS_ID in ids:
            ids = ids[: ids.index(EOS_ID)]
        return self.tokenizer.decode([i for i in ids if i != PAD_ID])

    def score(self, hypotheses: list[str], references: list[str],
              sources: list[str] | None = None) -> dict:
        """Exact match; for translation also corpus sacreBLEU and chrF with their
        signatures and, given the ``sources``, BLEU by source length (``bleu_by_length``)."""
        exact = float(np.mean([h == r for h, r in zip(hypotheses, references, strict=True)]))
        if self.metric != "bleu":
            return {"exact_match": exact}
        bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
        result = {"bleu": bleu.corpus_score(hypotheses, [references]).score,
                  "chrf": chrf.corpus_score(hypotheses, [references]).score,
                  "exact_match": exact,
                  "bleu_signature": str(bleu.get_signature()),
                  "chrf_signature": str(chrf.get_signature())}
        if sources is not None:
            result.update(bleu_by_length(sources, hypotheses, references))
        return result


LENGTH_THIRDS = ("shortest", "middle", "longest")


def bleu_by_length(sources: list[str], hypotheses: list[str], references: list[str]) -> dict:
    """Corpus sacreBLEU on each third of the sentences by source length in words.

    Returns ``bleu_shortest_third``, ``bleu_middle_third``, ``bleu_longest_third``
    and ``length_thirds`` (each third's source lengths, "1-6 / 7-11 / 12-40
    words"); nothing for fewer than three sentences. Ties in length keep input
    order, so the thirds are as equal in size as the count allows.
    """
    if not len(sources) == len(hypotheses) == len(references):
        raise ValueError(f"sources, hypotheses and references must be as long as each other, "
                         f"got {len(sources)}, {len(hypotheses)} and {len(references)}")
    if len(sources) < len(LENGTH_THIRDS):
        return {}
    words = [len(s.split()) for s in sources]
    order = sorted(range(len(sources)), key=lambda i: words[i])
    result, ranges = {}, []
    for name, part in zip(LENGTH_THIRDS, np.array_split(order, len(LENGTH_THIRDS)), strict=True):
        hyps = [hypotheses[i] for i in part]
        refs = [references[i] for i in part]
        result[f"bleu_{name}_third"] = sacrebleu.metrics.BLEU().corpus_score(hyps, [refs]).score
        ranges.append(f"{words[part[0]]}-{words[part[-1]]}")
    result["length_thirds"] = " / ".join(ranges) + " words"
    return result


class DictIterator:
    """Wraps a grain iterator of NamedTuple batches into dict batches; state passes through."""

    def __init__(self, iterator):
        self._it = iterator

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return next(self._it)._asdict()

    def get_state(self) -> dict:
        return self._it.get_state()

    def set_state(self, state: dict) -> None:
        self._it.set_state(state)


def _per_process(batch_size: int) -> int:
    """This process's rows of a global batch (the loop checks divisibility)."""
    return batch_size // jax.process_count()


def _data_dir(config, workdir: str) -> str:
    return config.data.data_dir or os.path.join(workdir, "data")


def _source(config, workdir: str, split: str):
    name = config.data.dataset
    kwargs = None
    if name.split("/")[0] == GENERATED:
        task = name.split("/")[1] if "/" in name else ""
        if task not in TASKS:
            raise ValueError(f"config key 'data.dataset' {name!r}: the task must be one of "
                             f"{sorted(TASKS)} (e.g. '{GENERATED}/dates')")
        kwargs = {"config": task_config(task, seed=config.seed, train_size=config.data.num_train,
                                        validation_size=config.data.num_eval,
                                        test_size=config.data.num_eval)}
        name = GENERATED
    return sources.data_source(name, split, data_dir=_data_dir(config, workdir),
                               builder_kwargs=kwargs)


def _texts(source, field: str, limit: int, chunk: int = 4096):
    """The ``field`` text of the first ``limit`` records; TFDS sources are read a chunk of
    records per call (one record per call is ~6x slower on a 100k-record corpus)."""
    total = min(len(source), limit)
    for start in range(0, total, chunk):
        keys = range(start, min(start + chunk, total))
        records = (source.__getitems__(list(keys)) if hasattr(source, "__getitems__")
                   else [source[i] for i in keys])
        for record in records:
            yield tokenizers.as_text(record[field])


def _tokenizers(config, workdir: str, train):
    """(source tokenizer, target tokenizer)."""
    name = config.data.dataset
    kind = config.data.tokenizer
    src_field, tgt_field = config.data.fields
    if kind == "marian":  # an imported Opus-MT model's own files (zoo/train/imports.py)
        return marian_tokenizers(os.path.join(workdir, "tokenizer"))
    if kind == "char" and name.startswith(GENERATED):
        vocab = task_vocab(name.split("/")[1])
        return vocab, vocab
    if kind == "char":
        from zoo.data.vocab import CharVocab

        vocab = CharVocab.from_texts(t for f in (src_field, tgt_field)
                                     for t in _texts(train, f, config.data.tokenizer_records))
        return vocab, vocab
    if kind == "sentencepiece":
        # One subword model for both sides (shared embeddings), kept in the workdir.
        def texts():
            for f in (src_field, tgt_field):
                yield from _texts(train, f, config.data.tokenizer_records)

        tok = tokenizers.sentencepiece_tokenizer(os.path.join(workdir, "tokenizer"), texts,
                                                 vocab_size=config.data.vocab_size)
        return tok, tok
    raise ValueError(f"config key 'data.tokenizer' is {kind!r}; allowed: 'char', "
                     "'sentencepiece', 'marian'")


def split_texts(config, workdir: str, split: str) -> tuple[list[str], list[str]]:
    """(sources, references): the raw texts of the ``data.fields`` of a split of the run's
    translation dataset, in the split's order (no tokenizer round trip, no truncation)."""
    src_field, tgt_field = config.data.fields
    source = _source(config, workdir, split)
    return (list(_texts(source, src_field, len(source))),
            list(_texts(source, tgt_field, len(source))))


def _tokenizers_only(config, workdir: str) -> Bundle:
    """The bundle of an imported model with no dataset: its tokenizers (enough to translate)
    and no batches."""
    if config.data.tokenizer != "marian":
        raise ValueError("config key 'data.dataset' is empty; only an imported model "
                         "(data.tokenizer 'marian', zoo/train/imports.py) runs without a dataset")
    src_tok, tgt_tok = _tokenizers(config, workdir, None)

    def no_data(*_):
        raise ValueError("config key 'data.dataset' is empty: this imported model has no data "
                         "to train or evaluate on; set one, e.g. "
                         "--config.data.dataset=de_en/sentences")

    return Bundle(example_batch={}, train_iterator=no_data, eval_batches=no_data,
                  vocab={"src": src_tok.size, "tgt": tgt_tok.size}, tokenizer=tgt_tok,
                  src_tokenizer=src_tok, eval_decode_batches=no_data, metric="bleu")


def seq2seq_data(config, workdir: str) -> Bundle:
    if not config.data.dataset:
        return _tokenizers_only(config, workdir)
    train = _source(config, workdir, "train")
    validation = _source(config, workdir, "validation")
    src_tok, tgt_tok = _tokenizers(config, workdir, train)
    common = dict(src_tokenizer=src_tok, tgt_tokenizer=tgt_tok, fields=tuple(config.data.fields),
                  max_src_len=config.data.max_src_len, max_tgt_len=config.data.max_tgt_len,
                  buckets=tuple(config.data.buckets) or None)

    def train_iterator():
        ds = pipeline.seq2seq_dataset(
            train, batch_size=_per_process(config.data.batch_size), shuffle=True, seed=config.seed,
            shard=grain.sharding.ShardByJaxProcess(drop_remainder=True), **common)
        return DictIterator(iter(ds))

    def eval_dataset(limit=None):
        # The first data.num_eval validation pairs (a generated split has exactly that many).
        limit = config.data.num_eval if limit is None else min(limit, config.data.num_eval)
        source = [validation[i] for i in range(min(limit, len(validation)))]
        return pipeline.seq2seq_dataset(
            source, batch_size=config.data.eval_batch_size, shuffle=False, num_epochs=1,
            drop_remainder=False, bucket_window=1, long_examples="truncate", **common)

    def eval_batches():
        for batch in eval_dataset():
            yield batch._asdict()

    def eval_decode_batches(limit: int):
        for batch in eval_dataset(limit):
            real = batch.src_lengths > 0
            if not real.any():
                continue
            refs = [bundle.detokenize(row) for row in batch.tgt_out[real]]
            srcs = [src_tok.decode([i for i in row if i != PAD_ID]) for row in batch.src[real]]
            yield batch.src[real], batch.src_lengths[real], refs, srcs

    example = next(iter(eval_dataset(config.data.eval_batch_size)))._asdict()
    example = {k: v[:2] for k, v in example.items()}
    bundle = Bundle(
        example_batch=example, train_iterator=train_iterator, eval_batches=eval_batches,
        vocab={"src": src_tok.size, "tgt": tgt_tok.size},
        tokenizer=tgt_tok, src_tokenizer=src_tok, eval_decode_batches=eval_decode_batches,
        metric="exact_match" if config.data.dataset.startswith(GENERATED) else "bleu",
    )
    return bundle


def lm_data(config, workdir: str) -> Bundle:
    train = _source(config, workdir, "train")
    validation = _source(config, workdir, "validation")
    field = config.data.fields[0]
    if config.data.tokenizer == "sentencepiece":
        tok = tokenizers.sentencepiece_tokenizer(
            os.path.join(workdir, "tokenizer"),
            lambda: _texts(train, field, config.data.tokenizer_records),
            vocab_size=config.data.vocab_size)
    else:
        from zoo.data.vocab import CharVocab

        tok = CharVocab.from_texts(_texts(train, field, config.data.tokenizer_records))

    def as_dict(batch) -> dict:
        return {"inputs": batch.inputs, "targets": batch.targets,
                "segment_ids": batch.segment_ids, "weights": batch.segment_ids > 0}

    class LMIterator(DictIterator):
        def __next__(self):
            return as_dict(next(self._it))

    def train_iterator():
        ds = pipeline.lm_dataset(train, tokenizer=tok, field=field,
                                 batch_size=_per_process(config.data.batch_size),
                                 seq_len=config.data.max_tgt_len, shuffle=True, seed=config.seed,
                                 shard=grain.sharding.ShardByJaxProcess(drop_remainder=True))
        return LMIterator(iter(ds))

    def eval_batches():
        source = [validation[i] for i in range(min(config.data.num_eval, len(validation)))]
        ds = pipeline.lm_dataset(source, tokenizer=tok, field=field,
                                 batch_size=config.data.eval_batch_size,
                                 seq_len=config.data.max_tgt_len, shuffle=False, num_epochs=1,
                                 drop_remainder=False)
        for batch in ds:
            yield as_dict(batch)

    example = {k: v[:2] for k, v in next(eval_batches()).items()}
    return Bundle(example_batch=example, train_iterator=train_iterator,
                  eval_batches=eval_batches, vocab={"src": tok.size, "tgt": tok.size},
                  tokenizer=tok, metric="perplexity")


def _array_sources(config, workdir: str, field: str):
    """(train, evaluation) record sources of an array dataset; evaluation holds at most
    ``data.num_eval`` records.

    The generated ring of Gaussians (zoo.data.ring), or any TFDS dataset
    with an array feature, e.g. zoo's ``fashion_mnist``: trained on its 'train'
    split, evaluated on its 'test' split (image datasets have no validation split).
    """
    from zoo.data import ring as toy  # noqa: PLC0415 -- only the generative families need it

    name = config.data.dataset
    if name == toy.DATASET:
        key = jax.random.PRNGKey(config.seed)
        train = toy.ring_of_gaussians(jax.random.fold_in(key, 0), config.data.num_train)
        evaluation = toy.ring_of_gaussians(jax.random.fold_in(key, 1), config.data.num_eval)
        return ([{field: row} for row in np.asarray(train, np.float32)],  # records {field: [2]}
                [{field: row} for row in np.asarray(evaluation, np.float32)])
    if name.split("/")[0] == GENERATED:
        raise ValueError(f"config key 'data.dataset' is {name!r}, a text task; the generative "
                         f"families need arrays: {toy.DATASET!r}, 'fashion_mnist' or a prepared "
                         "TFDS image dataset")
    train = sources.data_source(name, "train", data_dir=_data_dir(config, workdir))
    evaluation = sources.data_source(name, f"test[:{config.data.num_eval}]",
                                     data_dir=_data_dir(config, workdir))
    return train, evaluation


def array_data(config, workdir: str, *, value_range: tuple[float, float]) -> Bundle:
    """Batches {'x': float32 [B, ...]} of images (pixels mapped onto ``value_range``) or points.

    The array feature is ``config.data.fields[0]`` (``'image'`` for image
    datasets); a second field, the class (``('image', 'label')``), adds
    ``'label'`` int32 [B] to every batch. Evaluation reads the first
    ``data.num_eval`` held-out records. ``vocab`` is ``{"data_shape": (...)}``
    (+ ``"num_classes"`` with labels): the data decides the model's shape.
    """
    name, fields = config.data.dataset, tuple(config.data.fields)
    if len(fields) not in (1, 2):
        raise ValueError(f"config key 'data.fields' is {fields!r}; allowed: (array,) or "
                         "(array, label), e.g. ('image',) or ('image', 'label')")
    field, label_field = fields[0], (fields[1] if len(fields) == 2 else None)
    train, evaluation = _array_sources(config, workdir, field)
    features = sorted(train[0])
    for name_, what in ((field, "the array feature first, e.g. ('image',)"),
                        (label_field, "the label feature second, e.g. ('image', 'label')")):
        if name_ is not None and name_ not in features:
            raise ValueError(f"config key 'data.fields' is {fields!r}, but the records of "
                             f"{name!r} have the features {features}; give {what}")

    def train_iterator():
        ds = pipeline.array_dataset(
            train, field=field, batch_size=_per_process(config.data.batch_size),
            value_range=value_range, shuffle=True, seed=config.seed, label_field=label_field,
            shard=grain.sharding.ShardByJaxProcess(drop_remainder=True))
        return iter(ds)  # batches are dicts already; the iterator state is checkpointed

    def eval_batches():
        yield from pipeline.array_dataset(
            evaluation, field=field, batch_size=config.data.eval_batch_size,
            value_range=value_range, shuffle=False, num_epochs=1, drop_remainder=False,
            label_field=label_field)

    first = next(eval_batches())
    example = {k: v[:2] for k, v in first.items() if k != "mask"}  # x [2, ...] (label [2])
    vocab = {"data_shape": tuple(example["x"].shape[1:])}
    extras = {"value_range": tuple(value_range)}
    if label_field is not None:
        extras["class_names"] = _class_names(train, name, label_field)
        vocab["num_classes"] = len(extras["class_names"])
    return Bundle(example_batch=example, train_iterator=train_iterator,
                  eval_batches=eval_batches, vocab=vocab, tokenizer=None, metric="",
                  extras=extras)


def _class_names(source, name: str, label_field: str) -> tuple[str, ...]:
    """The class names of a TFDS source's ClassLabel feature ``label_field``."""
    feature = source.dataset_info.features[label_field]
    if not isinstance(feature, tfds.features.ClassLabel):
        raise ValueError(f"config key 'data.fields': feature {label_field!r} of {name!r} is "
                         f"not a class label but a {type(feature).__name__}")
    return tuple(feature.names)


__all__ = ["Bundle", "array_data", "lm_data", "seq2seq_data", "split_texts"]
