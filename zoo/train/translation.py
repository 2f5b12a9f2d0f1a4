"""Translations from a trained encoder–decoder's checkpoint, from the command line or Python.

    python train.py --workdir runs/de_en --translate "Guten Morgen." "Wie geht es dir?"
    python train.py --workdir runs/de_en --translate --beam_size 8 < sentences.de
    out = zoo.train.translate("runs/de_en", ["Guten Morgen."], beam_size=4)

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

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import ml_collections

from zoo.data.reading import check_positive
from zoo.data.vocab import pad
from zoo.train import config as config_lib
from zoo.train.sample import load_config, restore_for_inference


class Translations(NamedTuple):
    step: int  # the checkpoint's step
    sources: list[str]
    texts: list[str]  # texts[i]: the best hypothesis for sources[i]


def translate(workdir: str, sentences: Sequence[str], *, beam_size: int | None = None,
              length_penalty: float | None = None, max_len: int | None = None,
              batch_size: int = 64,
              config: ml_collections.ConfigDict | None = None) -> Translations:
    """The best translation of each of ``sentences`` by the newest good checkpoint of ``workdir``.

    Args:
      workdir: a 'seq2seq' training run's directory (``checkpoints/``, ``config.json``).
      sentences: source texts, one sentence each.
      beam_size: beam search of this width (1: greedy); default: the run's eval search.
      length_penalty: the beam's length penalty alpha; default: the run's.
      max_len: the longest translation in tokens; default: the run's eval.max_decode_len.
      batch_size: sentences decoded at once.
      config: the run's config; default: ``<workdir>/config.json``.

    Raises:
      ValueError: no sentences, an empty sentence, a run of another family, a run
        without a checkpoint that restores, or an argument out of range.
    """
    config = load_config(workdir) if config is None else config_lib.validate(config)
    if config.family != "seq2seq":
        raise ValueError(f"translating needs an encoder-decoder (config family 'seq2seq'); the "
                         f"run in {workdir!r} has family {config.family!r}")
    sentences = [sentences] if isinstance(sentences, str) else list(sentences)
    if not sentences:
        raise ValueError("sentences is empty: give at least one sentence to translate")
    blank = [i for i, s in enumerate(sentences) if not isinstance(s, str) or not s.strip()]
    if blank:
        raise ValueError(f"sentences must be non-empty strings; entry {blank[0]} is "
                         f"{sentences[blank[0]]!r}")
    check_positive(batch_size=batch_size)
    config = _with_search(config, beam_size, length_penalty, max_len)
    family, data, model, step, params = restore_for_inference(workdir, config)

    limit = config.data.max_src_len
    rows = []
    for i, sentence in enumerate(sentences):
        ids = list(data.src_tokenizer.encode(sentence))
        if len(ids) > limit:
            warnings.warn(f"sentence {i} has {len(ids)} tokens; the model was trained on at "
                          f"most data.max_src_len={limit}, so it is cut there: {sentence!r}",
                          stacklevel=2)
            ids = ids[:limit]
        rows.append(ids)
    texts = []
    for start in range(0, len(rows), batch_size):
        src, lengths = pad(rows[start:start + batch_size])  # [B, S], [B]
        tokens = family.decode(model, params, src, lengths)  # [B, T]
        texts += [data.detokenize(row) for row in tokens]
    return Translations(int(step), sentences, texts)


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
