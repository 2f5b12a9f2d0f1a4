"""Translations from a trained encoder–decoder's checkpoint, from the command line or Python.

    python train.py --workdir runs/de_en --translate "Guten Morgen." "Wie geht es dir?"
    python train.py --workdir runs/de_en --translate --beam_size 8 < sentences.de
    python train.py --workdir runs/de_en --eval_only --split test    # scores: evaluate_split
    out = zoo.train.translate("runs/de_en", ["Guten Morgen."], beam_size=4)
    where = align("runs/de_en", "Guten Morgen.")                      # attention weights

Glossary: B sentences, S longest source, T longest translation (both in tokens).

The run's ``config.json`` rebuilds the tokenizers and the model exactly as
training built them, and the newest checkpoint that restores gives the
parameters (``sample.restore_for_inference``). Restoring only reads, so it is
safe beside a running job. The search is the run's evaluation search
(``config.eval``: greedy or beam) unless a flag overrides it. A source longer
than the model was trained on (``data.max_src_len`` tokens) is cut there, with a
warning naming the sentence.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import ml_collections
import numpy as np

from zoo.data.reading import check_positive
from zoo.data.vocab import pad
from zoo.train import config as config_lib
from zoo.train import data as data_lib
from zoo.train.sample import load_config, restore_for_inference


class Translations(NamedTuple):
    step: int  # the checkpoint's step (the newest one, when averaged)
    sources: list[str]
    texts: list[str]  # texts[i]: the best hypothesis for sources[i]
    steps: tuple[int, ...]  # every step whose parameters were used (several: averaged)


def translate(workdir: str, sentences: Sequence[str], *, beam_size: int | None = None,
              length_penalty: float | None = None, max_len: int | None = None,
              batch_size: int = 64, average: int = 1,
              config: ml_collections.ConfigDict | None = None) -> Translations:
    """The best translation of each of ``sentences`` by the newest good checkpoint of ``workdir``.

    Args:
      workdir: a 'seq2seq' training run's directory (``checkpoints/``, ``config.json``).
      sentences: source texts, one sentence each.
      beam_size: beam search of this width (1: greedy); default: the run's eval search.
      length_penalty: the beam's length penalty alpha; default: the run's.
      max_len: the longest translation in tokens; default: the run's eval.max_decode_len.
      batch_size: sentences decoded at once.
      average: translate with the mean parameters of this many newest saved steps
        (checkpoint averaging; 1: the newest step alone).
      config: the run's config; default: ``<workdir>/config.json``.

    Raises:
      ValueError: no sentences, an empty sentence, a run of another family, a run
        without a checkpoint that restores, or an argument out of range.
    """
    sentences = [sentences] if isinstance(sentences, str) else list(sentences)
    if not sentences:
        raise ValueError("sentences is empty: give at least one sentence to translate")
    blank = [i for i, s in enumerate(sentences) if not isinstance(s, str) or not s.strip()]
    if blank:
        raise ValueError(f"sentences must be non-empty strings; entry {blank[0]} is "
                         f"{sentences[blank[0]]!r}")
    check_positive(batch_size=batch_size)
    _, family, data, model, step, params, steps = _restore(workdir, config, "latest", average,
                                                           beam_size, length_penalty, max_len)
    texts = _translate(family, data, model, params, sentences, batch_size)
    return Translations(int(step), sentences, texts, tuple(int(s) for s in steps))


def evaluate_split(workdir: str, *, split: str = "test", checkpoint: str = "best",
                   beam_size: int | None = None, length_penalty: float | None = None,
                   max_len: int | None = None, batch_size: int = 64, average: int = 1,
                   config: ml_collections.ConfigDict | None = None) -> dict:
    """Translates every source of a split of the run's dataset and scores it against the raw
    reference texts: sacreBLEU and chrF with their signatures, BLEU by source-length third.

    Args:
      workdir: a 'seq2seq' training run's directory.
      split: 'test' (the held-out split no tuning may read), 'validation' or 'train',
        or any TFDS split expression of the dataset ('test[:100]').
      checkpoint: 'best' (the step with the best ``train.best_metric`` among the saved
        ones, e.g. validation BLEU) or 'latest'.
      beam_size, length_penalty, max_len: override the run's eval search, as in
        :func:`translate`.
      batch_size: sentences decoded at once.
      average: score the mean parameters of this many saved steps, ranked as
        ``checkpoint`` ranks them (the best, or the newest, first): checkpoint
        averaging. 1: the one step.
      config: the run's config; default: ``<workdir>/config.json``.

    Returns:
      The scores plus ``step`` (the first of ``steps``), ``steps`` (the averaged
      steps), ``checkpoint``, ``split``, ``num_sentences``, the
      search (``method``, ``beam_size``, ``length_penalty``, ``max_decode_len``),
      ``sources``, ``references`` and ``hypotheses``.

    Raises:
      ValueError: as :func:`translate`; also an unknown ``checkpoint`` or an empty split.
    """
    check_positive(batch_size=batch_size)
    config, family, data, model, step, params, steps = _restore(
        workdir, config, checkpoint, average, beam_size, length_penalty, max_len)
    sources, references = data_lib.split_texts(config, workdir, split)
    if not sources:
        raise ValueError(f"split {split!r} of {config.data.dataset!r} has no sentences")
    hypotheses = _translate(family, data, model, params, sources, batch_size)
    ev = config.eval
    result = {"step": int(step), "steps": [int(s) for s in steps], "checkpoint": checkpoint,
              "split": split, "num_sentences": len(sources), "method": ev.method,
              "beam_size": ev.beam_size if ev.method == "beam" else 1,
              "length_penalty": ev.length_penalty, "max_decode_len": ev.max_decode_len}
    result.update(data.score(hypotheses, references, sources))
    result.update(sources=sources, references=references, hypotheses=hypotheses)
    return result


def save_evaluation(workdir: str, result: dict) -> str:
    """Writes an :func:`evaluate_split` result to ``<workdir>/eval/``: the scores as
    ``<split>_step<N>[_avg<K>]_beam<B>_lp<alpha>.json`` and the translations, one a line, beside it
    as ``.txt``. Returns the JSON's path."""
    result = dict(result)
    texts = {k: result.pop(k) for k in ("sources", "references", "hypotheses") if k in result}
    folder = os.path.join(workdir, "eval")
    os.makedirs(folder, exist_ok=True)
    split = re.sub(r"[^A-Za-z0-9.-]+", "_", result["split"]).strip("_")  # test[:9] -> test_9
    steps = result.get("steps", [result["step"]])
    averaged = f"_avg{len(steps)}" if len(steps) > 1 else ""
    name = (f"{split}_step{result['step']}{averaged}_beam{result['beam_size']}"
            f"_lp{result['length_penalty']:g}")
    with open(os.path.join(folder, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    if "hypotheses" in texts:
        with open(os.path.join(folder, name + ".txt"), "w") as f:
            f.writelines(line + "\n" for line in texts["hypotheses"])
    return os.path.join(folder, name + ".json")


class Alignment(NamedTuple):
    step: int  # the checkpoint's step
    source: list[str]  # the source's subword pieces, S of them
    output: list[str]  # the translation's pieces up to and with </s>, T of them
    text: str  # the translation
    weights: np.ndarray  # [T, S] an RNN's alignment; [N, T, S] a Transformer's heads


def align(workdir: str, sentence: str, *, checkpoint: str = "latest",
          beam_size: int | None = None, length_penalty: float | None = None,
          max_len: int | None = None,
          config: ml_collections.ConfigDict | None = None) -> Alignment:
    """Translates one sentence and returns where the model looked while writing each piece.

    The weights are the model's attention under teacher forcing on its own
    translation (the figures of Bahdanau et al. 2015 and Luong et al. 2015): an
    RNN's one alignment [T, S], or every head of the last decoder layer's
    encoder-decoder attention [N, T, S] for a Transformer. ``checkpoint`` is
    'latest' or 'best'; the other arguments are those of :func:`translate`.

    Raises:
      ValueError: as :func:`translate`; also for a model without attention (the plain
        context-vector seq2seq has nothing to draw).
    """
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError(f"sentence must be a non-empty string, got {sentence!r}")
    config, family, data, model, step, params, _ = _restore(workdir, config, checkpoint, 1,
                                                            beam_size, length_penalty, max_len)
    src, lengths = pad(_source_ids(data, [sentence], config.data.max_src_len))  # [1, S], [1]
    tokens = family.decode(model, params, src, lengths)  # [1, T]
    drawn = family.alignments(model, params, data, src, lengths, tokens)
    if drawn is None:
        raise ValueError(f"the model of {workdir!r} ({config.model.name}) has no attention "
                         "to draw: the plain seq2seq reads one context vector")
    [(source, output, weights)] = drawn
    return Alignment(int(step), source, output, data.detokenize(tokens[0]), weights)


def _restore(workdir: str, config, checkpoint: str, average: int, beam_size, length_penalty,
             max_len):
    """(config with the search overrides, family, data, model, step, params, steps) of an
    encoder-decoder run's ``checkpoint`` ('best' or 'latest') step, or of the mean of
    ``average`` steps ranked that way."""
    if checkpoint not in ("best", "latest"):
        raise ValueError(f"checkpoint must be 'best' or 'latest', got {checkpoint!r}")
    config = load_config(workdir) if config is None else config_lib.validate(config)
    if config.family != "seq2seq":
        raise ValueError(f"translating needs an encoder-decoder (config family 'seq2seq'); the "
                         f"run in {workdir!r} has family {config.family!r}")
    config = _with_search(config, beam_size, length_penalty, max_len)
    family, data, model, step, params, steps = restore_for_inference(
        workdir, config, best=checkpoint == "best", average=average)
    return config, family, data, model, step, params, steps


def _source_ids(data, sentences: list[str], limit: int) -> list[list[int]]:
    """Each sentence's source ids, cut at ``limit`` (the model's data.max_src_len) with a
    warning naming the sentence."""
    rows = []
    for i, sentence in enumerate(sentences):
        ids = list(data.src_tokenizer.encode(sentence))
        if len(ids) > limit:
            warnings.warn(f"sentence {i} has {len(ids)} tokens; the model was trained on at "
                          f"most data.max_src_len={limit}, so it is cut there: {sentence!r}",
                          stacklevel=4)
            ids = ids[:limit]
        rows.append(ids)
    return rows


def _translate(family, data, model, params, sentences: list[str], batch_size: int) -> list[str]:
    """The best translation of each sentence, in order; decoded in batches of similar length."""
    rows = _source_ids(data, sentences, family.config.data.max_src_len)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # less padding per batch
    texts = [""] * len(rows)
    for start in range(0, len(rows), batch_size):
        part = order[start:start + batch_size]
        src, lengths = pad([rows[i] for i in part])  # [B, S], [B]
        tokens = family.decode(model, params, src, lengths)  # [B, T]
        for i, row in zip(part, tokens, strict=True):
            texts[i] = data.detokenize(row)
    return texts


def _with_search(config, beam_size, length_penalty, max_len) -> ml_collections.ConfigDict:
    """``config`` with its eval search overridden where an argument is given."""
    config = config.copy_and_resolve_references()
    if beam_size is not None:
        check_positive(beam_size=beam_size)
        config.eval.method = "greedy" if beam_size == 1 else "beam"
        config.eval.beam_size = beam_size
    if length_penalty is not None:
        if length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
        config.eval.length_penalty = float(length_penalty)
    if max_len is not None:
        check_positive(max_len=max_len)
        config.eval.max_decode_len = max_len
    return config
