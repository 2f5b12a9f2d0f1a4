"""The reference attention: plain einsum + masked softmax. It *defines* the semantics.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads, G = N // K query heads per key/value head, H head dim.

    weights[b, n, t, :] = softmax over the keys that mask allows of
                          scale * q[b, t, n] . k[b, :, n // G] + bias[b, n, t, :]
    out[b, t, n] = sum_s weights[b, n, t, s] * v[b, s, n // G]

A query row with no allowed key gets all-zero weights and a zero output (never
NaN), and its gradients are zero. Logits and softmax are float32 whatever the
input dtype; the weights are cast to v's dtype for the weighted sum, as every
fast kernel does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from zoo.attention.spec import Spec


def masked_softmax(logits, valid=None, axis: int = -1):
    """Float32 softmax over ``axis`` restricted to ``valid``; all-masked rows give zeros.

    The mask is applied before ``exp`` (to ``-inf``), so masked entries
    contribute exactly 0 to both the value and the gradient.
    """
    logits = logits.astype(jnp.float32)
    if valid is not None:
        logits = jnp.where(valid, logits, -jnp.inf)
    row_max = jnp.max(logits, axis=axis, keepdims=True)
    # Rows that are entirely -inf: shift by 0 so exp gives 0s instead of NaNs.
    row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    unnormalized = jnp.exp(logits - row_max)
    total = jnp.sum(unnormalized, axis=axis, keepdims=True)
    return unnormalized / jnp.where(total > 0, total, 1.0)


def _heads_to_groups(x, k_heads: int):
    """[Bx, N|1, Tx, Sx] -> [Bx, K|1, G|1, Tx, Sx] so it lines up with grouped queries."""
    if x is None:
        return None
    bx, nx, tx, sx = x.shape
    if nx == 1:
        return x.reshape(bx, 1, 1, tx, sx)
    return x.reshape(bx, k_heads, nx // k_heads, tx, sx)


def attention(q, k, v, spec: Spec, *, return_weights: bool = False):
    """Reference kernel on [B, T, N, H] / [B, S, K, H]; optionally also the [B, N, T, S] weights."""
    b, t, n, h = q.shape
    _, s, kh, _ = k.shape
    g = n // kh
    qg = q.reshape(b, t, kh, g, h)  # [B, T, K, G, H]
    logits = jnp.einsum("BTKGH,BSKH->BKGTS", qg, k,
                        preferred_element_type=jnp.float32) * spec.scale  # [B, K, G, T, S]
    if spec.bias is not None:
        logits = logits + _heads_to_groups(spec.bias.astype(jnp.float32), kh)
    valid = _heads_to_groups(spec.full_mask(t, s), kh)  # [B|1, K|1, G|1, T, S] or None
    weights = masked_softmax(logits, valid)  # [B, K, G, T, S] float32
    out = jnp.einsum("BKGTS,BSKH->BTKGH", weights.astype(v.dtype), v,
                     preferred_element_type=jnp.float32)  # [B, T, K, G, H]
    out = out.reshape(b, t, n, h).astype(q.dtype)  # [B, T, N, H]
    if return_weights:
        return out, weights.reshape(b, n, t, s)  # [B, N, T, S]
    return out
