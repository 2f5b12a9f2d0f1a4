"""A minimal teacher-forcing train step and exact-match evaluation for Seq2Seq.

Glossary: B batch, S source length, T target length, V vocabulary.

Just enough for the learning test and the length benchmark; the full training
loop (state, schedules, checkpoints, metrics) belongs to `zoo.train`.

A batch is any object with the fields of `zoo.data.Seq2SeqArrays`:
src [B, S], src_lengths [B], tgt_in [B, T] (<bos> y), tgt_out [B, T] (y <eos>),
tgt_lengths [B] (positions of tgt_out that count).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo.attention.masks import padding_mask
from zoo.rnn.generate import generate
from zoo.rnn.seq2seq import Seq2Seq


class Metrics(NamedTuple):
    loss: jax.Array  # [] float32, mean cross-entropy per real target token
    token_accuracy: jax.Array  # [] float32, teacher-forced argmax == target


def token_loss(logits: jax.Array, targets: jax.Array, lengths: jax.Array) -> Metrics:
    """logits [B, T, V] float32, targets [B, T], lengths [B] -> mean over real tokens."""
    weights = padding_mask(lengths, targets.shape[1]).astype(jnp.float32)  # [B, T]
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)  # [B, T]
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)  # [B, T]
    total = jnp.maximum(weights.sum(), 1.0)
    return Metrics(jnp.sum(losses * weights) / total, jnp.sum(correct * weights) / total)


def make_train_step(model: Seq2Seq, optimizer: optax.GradientTransformation):
    """A jitted `step(params, opt_state, batch, key) -> (params, opt_state, Metrics)`."""

    def loss_fn(params, batch, key):
        out = model.apply(params, batch.src, batch.src_lengths, batch.tgt_in,
                          deterministic=False, rngs={"dropout": key})
        metrics = token_loss(out.logits, batch.tgt_out, batch.tgt_lengths)
        return metrics.loss, metrics

    @jax.jit
    def step(params, opt_state, batch, key):
        grads, metrics = jax.grad(loss_fn, has_aux=True)(params, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    return step


def exact_match(model: Seq2Seq, params: Any, batch: Any, **generate_options: Any) -> np.ndarray:
    """[B] bool: greedy output (up to and including EOS) equals tgt_out exactly.

    Decodes up to T = tgt_out.shape[1] tokens; after EOS both sides hold pad.
    """
    tgt_out = np.asarray(batch.tgt_out)  # [B, T]
    options = {"method": "greedy", **generate_options}
    out = generate(model, params, batch.src, batch.src_lengths, max_len=tgt_out.shape[1],
                   **options)
    tokens = np.asarray(out.tokens if out.tokens.ndim == 2 else out.tokens[:, 0])  # [B, T]
    return np.all(tokens == tgt_out, axis=1)
