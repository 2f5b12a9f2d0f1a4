"""Model families: how a batch feeds a model, and how the model is evaluated.

Glossary: B batch, S source length, T target length, V vocabulary.

``seq2seq`` covers every encoder–decoder in the zoo (RNN seq2seq and the
Transformer EncoderDecoder): batches are dicts with ``src [B, S]``,
``src_lengths [B]``, ``tgt_in [B, T]`` (BOS y1 .. yn), ``tgt_out [B, T]``
(y1 .. yn EOS) and ``tgt_lengths [B]``; evaluation decodes the held-out
sources for real (greedy or beam) and scores exact match (generated tasks) or
sacreBLEU (translation), and draws attention heat maps.

``lm`` covers decoder-only language models: ``inputs [B, T]``, ``targets
[B, T]``, ``lengths [B]``; evaluation reports perplexity and prints samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from zoo.train import losses
from zoo.train import metrics as metrics_lib


class Family(NamedTuple):
    data: Callable[..., Any]  # (config, workdir) -> a data bundle (zoo/train/data.py)
    init: Callable[..., Any]  # (model, rng, example_batch) -> params
    make_loss: Callable[..., Any]  # (model, config) -> loss_fn(params, batch, rng, deterministic)
    evaluate: Callable[..., dict]  # (model, params, data, config, eval_step, workdir, step)


def _logits(output):
    return output.logits if hasattr(output, "logits") else output


def _eval_loss(params, data, eval_step) -> dict:
    """Loss-based metrics (nll, perplexity, token accuracy) over the eval batches."""
    sums = None
    for batch in data.eval_batches():
        m = eval_step(params, batch)
        sums = m if sums is None else jax.tree.map(jnp.add, sums, m)
    return metrics_lib.summarize(jax.device_get(sums)) if sums is not None else {}


# --- seq2seq ----------------------------------------------------------------------------------

def _seq2seq_init(model, rng, batch):
    params_rng, dropout_rng = jax.random.split(rng)
    variables = jax.jit(lambda r1, r2: model.init(
        {"params": r1, "dropout": r2}, batch["src"], batch["src_lengths"], batch["tgt_in"]))(
        params_rng, dropout_rng)
    return variables["params"]


def _seq2seq_loss(model, config):
    smoothing = config.optim.label_smoothing

    def loss_fn(params, batch, rng, deterministic):
        output = model.apply({"params": params}, batch["src"], batch["src_lengths"],
                             batch["tgt_in"], deterministic=deterministic,
                             rngs={"dropout": rng})
        logits = _logits(output)  # [B, T, V]
        t = batch["tgt_out"].shape[1]
        weights = (jnp.arange(t)[None, :] < batch["tgt_lengths"][:, None]).astype(jnp.float32)
        loss, tokens = losses.cross_entropy(logits, batch["tgt_out"], weights, smoothing)
        nll, _ = losses.cross_entropy(logits, batch["tgt_out"], weights, 0.0)
        correct = losses.token_accuracy(logits, batch["tgt_out"], weights) * tokens
        return loss, {"nll_sum": nll * tokens, "tokens": tokens, "correct": correct}

    return loss_fn


def _decode(model, params, src, src_lengths, config, data):
    """Greedy or beam decoding through the model family's generate function."""
    generate = data.generate  # chosen by the data bundle for the model class
    out = generate(model, {"params": params}, src, src_lengths, config)
    return np.asarray(out)  # [B, L]


def _seq2seq_evaluate(model, params, data, config, eval_step, *, workdir, step):
    result = _eval_loss(params, data, eval_step)

    hypotheses, references, sources = [], [], []
    for src, src_lengths, refs, src_texts in data.eval_decode_batches(config.eval.num_examples):
        tokens = _decode(model, params, src, src_lengths, config, data)
        hypotheses += [data.detokenize(row) for row in tokens]
        references += refs
        sources += src_texts
    if hypotheses:
        result.update(data.score(hypotheses, references))
        for i in range(min(3, len(hypotheses))):
            print(f"  src: {sources[i]!r}\n  ref: {references[i]!r}\n  hyp: {hypotheses[i]!r}")
    if config.eval.num_heatmaps and data.heatmap is not None:
        data.heatmap(model, params, os.path.join(workdir, "attention"), step,
                     config.eval.num_heatmaps)
    return result


# --- decoder-only LM ------------------------------------------------------------------------

def _lm_init(model, rng, batch):
    params_rng, dropout_rng = jax.random.split(rng)
    variables = jax.jit(lambda r1, r2: model.init({"params": r1, "dropout": r2},
                                                  batch["inputs"]))(params_rng, dropout_rng)
    return variables["params"]


def _lm_loss(model, config):
    smoothing = config.optim.label_smoothing

    def loss_fn(params, batch, rng, deterministic):
        kwargs = {}
        if "segment_ids" in batch:
            kwargs["segment_ids"] = batch["segment_ids"]
        output = model.apply({"params": params}, batch["inputs"], deterministic=deterministic,
                             rngs={"dropout": rng}, **kwargs)
        logits = _logits(output)  # [B, T, V]
        weights = batch["weights"].astype(jnp.float32)  # [B, T]
        loss, tokens = losses.cross_entropy(logits, batch["targets"], weights, smoothing)
        nll, _ = losses.cross_entropy(logits, batch["targets"], weights, 0.0)
        correct = losses.token_accuracy(logits, batch["targets"], weights) * tokens
        return loss, {"nll_sum": nll * tokens, "tokens": tokens, "correct": correct}

    return loss_fn


def _lm_evaluate(model, params, data, config, eval_step, *, workdir, step):
    result = _eval_loss(params, data, eval_step)
    if data.sample is not None:
        for text in data.sample(model, params, config, step):
            print(f"  sample: {text!r}")
    return result


def _families() -> dict[str, Family]:
    from zoo.train import data as data_lib  # noqa: PLC0415 -- data imports heavy deps

    return {
        "seq2seq": Family(data_lib.seq2seq_data, _seq2seq_init, _seq2seq_loss,
                          _seq2seq_evaluate),
        "lm": Family(data_lib.lm_data, _lm_init, _lm_loss, _lm_evaluate),
    }


def get(name: str) -> Family:
    families = _families()
    if name not in families:
        raise ValueError(f"config key 'family' is {name!r}; allowed: {sorted(families)}")
    return families[name]
