"""Kernels backed by ``jax.nn.dot_product_attention``: ``xla`` and ``cudnn``.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads, H head dim.

``jax.nn`` has no query offset, no separate query/key segment ids, and lets a
query row with no allowed key average over all keys. We pass every structural
piece as one boolean mask and zero the rows that have no allowed key, so the
results match ``reference`` exactly in meaning.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from zoo.attention.spec import Spec


def _zero_empty_rows(out, mask):
    """Zeroes output rows whose mask row is all False. out [B, T, N, H], mask [B|1, N|1, T, S]."""
    if mask is None:
        return out
    has_key = jnp.any(mask, axis=-1)  # [B|1, N|1, T]
    has_key = jnp.swapaxes(has_key, 1, 2)[..., None]  # [B|1, T, N|1, 1]
    return jnp.where(has_key, out, jnp.zeros_like(out))


def xla(q, k, v, spec: Spec):
    """``jax.nn.dot_product_attention(implementation='xla')`` under our semantics."""
    t, s = q.shape[1], k.shape[1]
    mask = spec.full_mask(t, s)  # [B|1, N|1, T, S] or None
    out = jax.nn.dot_product_attention(
        q, k, v, bias=spec.bias, mask=mask, scale=spec.scale, implementation="xla"
    )
    return _zero_empty_rows(out, mask)


_CUDNN_DTYPES = (jnp.float16, jnp.bfloat16)


def cudnn_constraints(q, spec: Spec) -> str | None:
    """Why cuDNN cannot run this call (None if it can)."""
    platform = jax.default_backend()
    if platform != "gpu":
        return f"implementation 'cudnn' needs a CUDA GPU; this array is on {platform!r}"
    if q.dtype not in _CUDNN_DTYPES:
        return f"implementation 'cudnn' needs float16 or bfloat16 inputs, got {q.dtype}"
    h = q.shape[-1]
    if h > 256 or h % 8:
        return f"implementation 'cudnn' needs a head dim H <= 256 divisible by 8, got H={h}"
    return None


def cudnn(q, k, v, spec: Spec):
    """``jax.nn.dot_product_attention(implementation='cudnn')`` under our semantics.

    Plain causal and padding masks go to cuDNN natively (fast path); anything
    else (offsets, segments, dense masks) becomes a dense mask.
    """
    native = (
        spec.static_offset == 0
        and spec.q_segment_ids is None
        and spec.mask is None
        and spec.local_window is None
    )
    if native:
        out = jax.nn.dot_product_attention(
            q, k, v, bias=spec.bias, scale=spec.scale, is_causal=spec.is_causal,
            query_seq_lengths=spec.q_lengths, key_value_seq_lengths=spec.kv_lengths,
            implementation="cudnn",
        )
        mask = None
        if spec.q_lengths is not None or spec.kv_lengths is not None:
            mask = spec.full_mask(q.shape[1], k.shape[1])
        return _zero_empty_rows(out, mask)
    mask = spec.full_mask(q.shape[1], k.shape[1])
    out = jax.nn.dot_product_attention(
        q, k, v, bias=spec.bias, mask=mask, scale=spec.scale, implementation="cudnn"
    )
    return _zero_empty_rows(out, mask)
