"""Token-level losses and metrics over padded target batches (float32)."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def cross_entropy(logits, targets, weights, label_smoothing: float = 0.0):
    """Weighted mean cross-entropy with label smoothing.

    Args:
      logits: [B, T, V] (any float dtype; computed in float32).
      targets: [B, T] int ids.
      weights: [B, T] 1.0 on real tokens, 0.0 on padding.
      label_smoothing: epsilon of Szegedy et al. (the Transformer uses 0.1).

    Returns:
      (mean loss over real tokens, number of real tokens). The loss subtracts the
      entropy of the smoothed targets, so a perfect model scores 0.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    logits = logits.astype(jnp.float32)
    vocab = logits.shape[-1]
    confidence = 1.0 - label_smoothing
    low = label_smoothing / max(vocab - 1, 1)
    onehot = jnp.where(jnp.arange(vocab)[None, None, :] == targets[..., None], confidence, low)
    loss = optax.softmax_cross_entropy(logits, onehot)  # [B, T]
    if label_smoothing > 0:
        # Constant offset: the entropy of the smoothed target distribution.
        normalizer = -(confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20))
        loss = loss - normalizer
    total = jnp.sum(weights)
    return jnp.sum(loss * weights) / jnp.maximum(total, 1.0), total


def token_accuracy(logits, targets, weights):
    """Fraction of real tokens whose argmax is the target."""
    hits = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return jnp.sum(hits * weights) / jnp.maximum(jnp.sum(weights), 1.0)


TOKEN_SUMS = ("nll_sum", "tokens", "correct")  # what token_loss sums, for evaluation


def token_loss(logits, targets, weights, label_smoothing: float = 0.0):
    """(training loss, sums) for next-token prediction.

    The loss is the smoothed mean cross-entropy; the sums over real tokens are
    ``nll_sum`` (unsmoothed), ``tokens`` and ``correct`` (argmax hits), from
    which any window or evaluation derives perplexity and token accuracy.
    logits [B, T, V], targets [B, T], weights [B, T] float32.
    """
    loss, tokens = cross_entropy(logits, targets, weights, label_smoothing)
    nll, _ = cross_entropy(logits, targets, weights, 0.0)
    correct = token_accuracy(logits, targets, weights) * tokens
    return loss, {"nll_sum": nll * tokens, "tokens": tokens, "correct": correct}
