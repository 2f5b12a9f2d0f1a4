"""Multi-head attention (MHA, GQA, MQA) with an autoregressive KV cache.

Glossary: B batch, T query length, S key length (the cache length when decoding), D model
width, N query heads, K key/value heads (K divides N), G = N // K query heads per key/value
head, H head dim.

Parameters carry logical axis names ('embed', 'heads', 'kv_heads',
'head_dim'); activations are constrained to ('batch', 'length', ...) so the
sharding rules decide where everything lives.

KV cache (``decode=True``, self-attention only), in the style of Flax's lm1b:
initialise the module with ``decode=True`` and a [B, S, D] input to create the
'cache' collection (keys/values [B, S, K, H] and a per-sequence write index
[B]); then call it with any number of new tokens at a time -- a whole prompt,
then one token per step. New tokens are written at each sequence's index and
attend causally (query offset = that index) to everything written so far.
``lengths`` lets a batch of right-padded prompts of different lengths advance
each sequence by its own length.

Cross-attention cache (``decode=True`` with ``inputs_kv``): the keys and values
of ``inputs_kv`` (the encoder output, which does not change while decoding)
are projected once, on the call that creates the cache, and stored there as
'cached_cross_key' / 'cached_cross_value' [B, S, K, H]; every later decoding
call reads them instead of projecting ``inputs_kv`` again (which it then
ignores but for its shape), so a decoding step costs the encoder output
nothing but the attention itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax import lax

from zoo.attention.api import dot_product_attention, reference_attention
from zoo.nn.positional import apply_rotary

Dtype = Any


def _partitioned(init, names):
    return nn.with_logical_partitioning(init, names)


class Projection(nn.Module):
    """``x`` contracted over its last ``in_axes`` axes into ``features``, with named axes.

    The maths and initialisation of ``nn.DenseGeneral`` (the kernel is drawn
    flattened to [inputs, outputs], so fan-in/fan-out are the true ones), but
    the logical names are attached to the full-rank kernel. ``DenseGeneral``
    names the flattened draw instead, and its apply-time shape check then
    fails under an active mesh (flax 0.12) -- exactly when sharding matters.
    """

    features: tuple[int, ...]
    in_axes: int
    kernel_names: tuple[str, ...]
    bias_names: tuple[str, ...]
    use_bias: bool = True
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        in_shape = x.shape[x.ndim - self.in_axes:]
        shape = tuple(in_shape) + tuple(self.features)

        def init(rng, shape, dtype):
            flat = (math.prod(in_shape), math.prod(self.features))
            return jnp.reshape(self.kernel_init(rng, flat, dtype), shape)

        kernel = self.param("kernel", _partitioned(init, self.kernel_names), shape,
                            self.param_dtype)
        bias = None
        if self.use_bias:
            bias = self.param("bias", _partitioned(nn.initializers.zeros, self.bias_names),
                              tuple(self.features), self.param_dtype)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        contract = (tuple(range(x.ndim - self.in_axes, x.ndim)), tuple(range(self.in_axes)))
        y = lax.dot_general(x, kernel, (contract, ((), ())))  # [..., *features]
        if bias is None:
            return y
        return y + jnp.reshape(bias, (1,) * (y.ndim - bias.ndim) + bias.shape)


class MultiHeadAttention(nn.Module):
    """Multi-head attention over [B, T, D] queries and [B, S, Dkv] keys/values.

    Attributes:
      num_heads: N, query heads.
      num_kv_heads: K, key/value heads (default N; 1 is MQA). Must divide N.
      head_dim: H (default D // N).
      out_features: output width (default D of the queries).
      use_bias: biases on the projections.
      dropout_rate: dropout on the attention weights while training. Weights only
        exist in the reference kernel, so a training step with dropout > 0 uses it.
      is_causal, local_window: structural masks, see ``dot_product_attention``.
      rotary: apply rotary position embeddings to queries and keys.
      implementation: attention kernel name, or None for the platform's best.
    """

    num_heads: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    out_features: int | None = None
    use_bias: bool = True
    dropout_rate: float = 0.0
    is_causal: bool = False
    local_window: int | tuple[int, int] | None = None
    rotary: bool = False
    rotary_max_wavelength: float = 10000.0
    implementation: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    kernel_init: Any = nn.initializers.xavier_uniform()

    def _sizes(self, d: int) -> tuple[int, int, int]:
        n = self.num_heads
        kh = self.num_kv_heads or n
        if n <= 0 or kh <= 0:
            raise ValueError(f"num_heads ({n}) and num_kv_heads ({kh}) must be positive")
        if n % kh:
            raise ValueError(f"num_heads={n} must be a multiple of num_kv_heads={kh}")
        h = self.head_dim
        if h is None:
            if d % n:
                raise ValueError(f"model width D={d} must be divisible by num_heads={n} "
                                 "when head_dim is not given")
            h = d // n
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        return n, kh, h

    def _dense(self, heads: int, head_dim: int, head_axis: str, name: str):
        return Projection(
            features=(heads, head_dim), in_axes=1, use_bias=self.use_bias, dtype=self.dtype,
            param_dtype=self.param_dtype, name=name, kernel_init=self.kernel_init,
            kernel_names=("embed", head_axis, "head_dim"), bias_names=(head_axis, "head_dim"),
        )

    @nn.compact
    def __call__(
        self,
        inputs_q,
        inputs_kv=None,
        *,
        mask=None,
        bias=None,
        q_lengths=None,
        kv_lengths=None,
        segment_ids=None,
        positions=None,
        lengths=None,
        deterministic: bool = True,
        decode: bool = False,
        return_weights: bool = False,
    ):
        """Attends ``inputs_q`` [B, T, D] to ``inputs_kv`` [B, S, Dkv] (default: itself).

        Args:
          mask, bias, q_lengths, kv_lengths, segment_ids: as in ``dot_product_attention``.
          positions: [B, T] token positions for rotary embeddings (default 0..T-1, or the
            cache index onwards when decoding).
          lengths: [B] number of real new tokens per sequence when decoding (default T).
          deterministic: no dropout when True.
          decode: use and update the KV cache; with ``inputs_kv``, project its keys and
            values on the call that creates the cache and reuse them after.
          return_weights: also return the [B, N, T, S] attention weights.

        Returns:
          [B, T, out_features], or (that, weights [B, N, T, S]) with ``return_weights``.
        """
        if inputs_q.ndim != 3:
            raise ValueError(f"inputs_q must be [B, T, D], got shape {list(inputs_q.shape)}")
        self_attention = inputs_kv is None
        inputs_kv = inputs_q if self_attention else inputs_kv
        if inputs_kv.ndim != 3 or inputs_kv.shape[0] != inputs_q.shape[0]:
            raise ValueError(f"inputs_kv must be [B, S, Dkv] with B={inputs_q.shape[0]}, got "
                             f"shape {list(inputs_kv.shape)}")
        d = inputs_q.shape[-1]
        n, kh, h = self._sizes(d)
        b, t = inputs_q.shape[:2]

        q = self._dense(n, h, "heads", "query")(inputs_q)  # [B, T, N, H]
        q = nn.with_logical_constraint(q, ("batch", "length", "heads", "head_dim"))
        cross_cached = decode and not self_attention and self.has_variable(
            "cache", "cached_cross_key")
        if cross_cached:  # decoding: the encoder's keys and values were projected once
            k = self.get_variable("cache", "cached_cross_key")  # [B, S, K, H]
            v = self.get_variable("cache", "cached_cross_value")
            if k.shape[:2] != inputs_kv.shape[:2]:
                raise ValueError(f"inputs_kv is [B, S] = {list(inputs_kv.shape[:2])}, but the "
                                 f"cross-attention cache was made for {list(k.shape[:2])}: "
                                 "create the cache again for a new batch")
        else:
            k = self._dense(kh, h, "kv_heads", "key")(inputs_kv)  # [B, S, K, H]
            v = self._dense(kh, h, "kv_heads", "value")(inputs_kv)  # [B, S, K, H]
        k = nn.with_logical_constraint(k, ("batch", "length", "kv_heads", "head_dim"))
        v = nn.with_logical_constraint(v, ("batch", "length", "kv_heads", "head_dim"))

        q_offset = 0
        keys_rotated = False  # the cache rotates keys as it stores them
        if decode and self_attention:
            cache = self._cache(k, v)
            if cache is not None:
                k, v, q_offset, kv_lengths = self._update_cache(cache, k, v, lengths)
                keys_rotated = True
        elif decode:  # cross-attention: keys are stored rotated (source positions 0..S-1)
            if not cross_cached:
                if self.rotary:
                    kv_pos = jnp.broadcast_to(jnp.arange(k.shape[1])[None, :], k.shape[:2])
                    k = apply_rotary(k, kv_pos, max_wavelength=self.rotary_max_wavelength)
                self.put_variable("cache", "cached_cross_key", k)
                self.put_variable("cache", "cached_cross_value", v)
            keys_rotated = True
        if self.rotary:
            if positions is None:
                positions = jnp.arange(t)[None, :] + jnp.reshape(q_offset, (-1, 1))  # [B|1, T]
                positions = jnp.broadcast_to(positions, (b, t))
            q = apply_rotary(q, positions, max_wavelength=self.rotary_max_wavelength)
            if not keys_rotated:
                kv_pos = positions if self_attention else jnp.broadcast_to(
                    jnp.arange(k.shape[1])[None, :], k.shape[:2])
                k = apply_rotary(k, kv_pos, max_wavelength=self.rotary_max_wavelength)

        options = dict(
            mask=mask, bias=bias, is_causal=self.is_causal, local_window=self.local_window,
            q_offset=q_offset, q_lengths=q_lengths, kv_lengths=kv_lengths,
            segment_ids=segment_ids,
        )
        dropout = self.dropout_rate > 0.0 and not deterministic
        weights = None
        if dropout or return_weights:
            out, weights = reference_attention(q, k, v, return_weights=True, **options)
            if dropout:
                weights = nn.Dropout(self.dropout_rate)(weights, deterministic=False)
                out = _weighted_values(weights, v).astype(q.dtype)
        else:
            out = dot_product_attention(q, k, v, implementation=self.implementation, **options)
        out = nn.with_logical_constraint(out, ("batch", "length", "heads", "head_dim"))
        y = Projection(
            features=(self.out_features or d,), in_axes=2, use_bias=self.use_bias,
            dtype=self.dtype, param_dtype=self.param_dtype, name="out",
            kernel_init=self.kernel_init, kernel_names=("heads", "head_dim", "embed"),
            bias_names=("embed",),
        )(out)  # [B, T, D]
        y = nn.with_logical_constraint(y, ("batch", "length", "embed"))
        return (y, weights) if return_weights else y

    def _cache(self, k, v):
        """The cache variables, or None on the call that creates them."""
        initialised = self.has_variable("cache", "cached_key")
        b, length, kh, h = k.shape
        cached_k = self.variable("cache", "cached_key", jnp.zeros, (b, length, kh, h), k.dtype)
        cached_v = self.variable("cache", "cached_value", jnp.zeros, (b, length, kh, h), v.dtype)
        index = self.variable("cache", "cache_index", jnp.zeros, (b,), jnp.int32)
        return (cached_k, cached_v, index) if initialised else None

    def _update_cache(self, cache, k, v, lengths):
        cached_k, cached_v, index = cache
        b, t = k.shape[:2]
        max_len = cached_k.value.shape[1]
        if t > max_len:
            raise ValueError(f"{t} new tokens do not fit a KV cache of length {max_len}")
        start = index.value  # [B]
        if self.rotary:
            positions = start[:, None] + jnp.arange(t)[None, :]  # [B, T]
            k = apply_rotary(k, positions, max_wavelength=self.rotary_max_wavelength)

        def write(buffer, new, i):  # [S, K, H], [T, K, H], []
            return lax.dynamic_update_slice_in_dim(buffer, new.astype(buffer.dtype), i, axis=0)

        cached_k.value = jax.vmap(write)(cached_k.value, k, start)
        cached_v.value = jax.vmap(write)(cached_v.value, v, start)
        advance = jnp.full((b,), t, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
        index.value = start + advance
        return cached_k.value, cached_v.value, start, start + t


def _weighted_values(weights, v):
    """weights [B, N, T, S] float32, v [B, S, K, H] -> [B, T, N, H]."""
    b, n, t, s = weights.shape
    kh, h = v.shape[2], v.shape[3]
    w = weights.reshape(b, kh, n // kh, t, s)  # [B, K, G, T, S]
    out = jnp.einsum("BKGTS,BSKH->BTKGH", w.astype(v.dtype), v,
                     preferred_element_type=jnp.float32)
    return out.reshape(b, t, n, h)
