"""Validation of attention arguments into one normalised :class:`Spec`.

Every kernel receives ``(q, k, v, spec)`` where the arguments have already
been checked here, so kernels only decide *how* to compute, never *what*.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads (K divides N; G = N // K query heads share one key/value head), H head
dim.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from zoo.attention import masks


class Spec(NamedTuple):
    """Normalised attention options (see ``dot_product_attention``)."""

    mask: Any  # [B|1, N|1, T|1, S|1] bool or None
    bias: Any  # [B|1, N|1, T|1, S|1] float or None
    is_causal: bool
    local_window: masks.Window | None
    q_offset: Any  # python int, or [B] int32
    q_lengths: Any  # [B] int32 or None
    kv_lengths: Any  # [B] int32 or None
    q_segment_ids: Any  # [B, T] int32 or None
    kv_segment_ids: Any  # [B, S] int32 or None
    scale: float

    @property
    def static_offset(self) -> int | None:
        """The query offset when it is a Python int, else None."""
        return self.q_offset if isinstance(self.q_offset, int) else None

    def structural(self, q_idx, k_idx, q_seg=None, kv_seg=None):
        """The structural mask for the given row/column indices ([B|1, T', S'] or None)."""
        return masks.structural_mask(
            q_idx,
            k_idx,
            is_causal=self.is_causal,
            local_window=self.local_window,
            q_offset=self.q_offset,
            q_lengths=self.q_lengths,
            kv_lengths=self.kv_lengths,
            q_segment_ids=self.q_segment_ids if q_seg is None else q_seg,
            kv_segment_ids=self.kv_segment_ids if kv_seg is None else kv_seg,
        )

    def full_mask(self, t: int, s: int):
        """Structural mask and dense mask together: [B|1, N|1, T, S] bool, or None."""
        structural = self.structural(jnp.arange(t), jnp.arange(s))
        if structural is not None:
            structural = structural[:, None]  # [B|1, 1, T, S]
        return masks.combine_masks(structural, self.mask)

    @property
    def has_mask(self) -> bool:
        return (
            self.mask is not None
            or self.is_causal
            or self.local_window is not None
            or self.q_lengths is not None
            or self.kv_lengths is not None
            or self.q_segment_ids is not None
        )


def pad_axis(x, axis: int, size: int, value=0):
    """Pads ``x`` at the end of ``axis`` up to ``size`` with ``value``."""
    pad = size - x.shape[axis]
    if pad == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, pad)
    return jnp.pad(x, widths, constant_values=value)


def _shape(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def _check_broadcast(name: str, x, target: tuple[int, ...]):
    shape = _shape(x)
    ok = len(shape) == 4 and all(d in (1, t) for d, t in zip(shape, target, strict=True))
    if not ok:
        raise ValueError(
            f"{name} must broadcast to [B, N, T, S] = {list(target)} (each dim 1 or full), "
            f"got shape {list(shape)}"
        )


def _int_vector(name: str, x, batch: int):
    if x is None:
        return None
    x = jnp.asarray(x)
    if x.shape != (batch,) or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"{name} must be an int array of shape [B] = [{batch}], "
                         f"got {x.dtype}{list(x.shape)}")
    return x.astype(jnp.int32)


def _segments(segment_ids, batch: int, t: int, s: int):
    if segment_ids is None:
        return None, None
    if isinstance(segment_ids, tuple | list):
        if len(segment_ids) != 2:
            raise ValueError("segment_ids must be one [B, T] array (self-attention) or a "
                             f"(q_segment_ids [B, T], kv_segment_ids [B, S]) pair, got "
                             f"{len(segment_ids)} items")
        q_seg, kv_seg = (jnp.asarray(x) for x in segment_ids)
    else:
        q_seg = kv_seg = jnp.asarray(segment_ids).astype(jnp.int32)
        if t != s:
            raise ValueError(f"a single segment_ids array needs T == S (self-attention), got "
                             f"T={t}, S={s}; pass a (q_segment_ids, kv_segment_ids) pair")
    for name, x, length in (("q_segment_ids", q_seg, t), ("kv_segment_ids", kv_seg, s)):
        if x.shape != (batch, length) or not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(f"segment_ids: {name} must be an int array of shape "
                             f"[{batch}, {length}], got {x.dtype}{list(x.shape)}")
    if q_seg is kv_seg:  # keep one array: kernels tell self-attention packing by identity
        return q_seg, kv_seg
    return q_seg.astype(jnp.int32), kv_seg.astype(jnp.int32)


def _offset(q_offset, batch: int):
    if isinstance(q_offset, int | np.integer) and not isinstance(q_offset, bool):
        if q_offset < 0:
            raise ValueError(f"q_offset must be >= 0, got {q_offset}")
        return int(q_offset)
    x = jnp.asarray(q_offset)
    if x.shape == ():
        x = jnp.broadcast_to(x, (batch,))
    if not isinstance(x, jax.core.Tracer) and x.size and int(np.min(np.asarray(x))) < 0:
        raise ValueError(f"q_offset must be >= 0, got {np.asarray(x)}")
    if x.shape != (batch,) or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"q_offset must be an int or an int array of shape [B] = [{batch}], "
                         f"got {x.dtype}{list(x.shape)}")
    return x.astype(jnp.int32)


def check(
    q, k, v, *, mask, bias, is_causal, local_window, q_offset, q_lengths, kv_lengths,
    segment_ids, scale,
) -> Spec:
    """Checks shapes, dtypes and options; returns the normalised :class:`Spec`."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if np.ndim(x) != 4:
            layout = "[B, T, N, H]" if name == "q" else "[B, S, K, H]"
            raise ValueError(f"{name} must have rank 4 {layout}, got shape {list(_shape(x))}")
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise TypeError(f"{name} must be a floating array, got {jnp.result_type(x)}")
    b, t, n, h = _shape(q)
    if _shape(k) != _shape(v):
        raise ValueError(f"k and v must have the same shape [B, S, K, H], got "
                         f"{list(_shape(k))} and {list(_shape(v))}")
    bk, s, kh, hk = _shape(k)
    if bk != b:
        raise ValueError(f"batch size of k/v ({bk}) must equal that of q ({b})")
    if hk != h:
        raise ValueError(f"head dim H of k/v ({hk}) must equal the head dim of q ({h})")
    if kh == 0 or n % kh:
        raise ValueError(f"number of query heads N={n} must be a multiple of the number of "
                         f"key/value heads K={kh}")
    if not (jnp.result_type(q) == jnp.result_type(k) == jnp.result_type(v)):
        raise TypeError(f"q, k, v must share one dtype, got {jnp.result_type(q)}, "
                        f"{jnp.result_type(k)}, {jnp.result_type(v)}")
    if b == 0 or t == 0 or s == 0:
        raise ValueError(f"empty attention: B={b}, T={t}, S={s} must all be positive")
    if h == 0 or n == 0:
        raise ValueError(f"head dim H={h} and number of heads N={n} must be positive")
    target = (b, n, t, s)
    if mask is not None:
        mask = np.asarray(mask) if isinstance(mask, list | tuple) else mask
        _check_broadcast("mask", mask, target)
        if jnp.result_type(mask) != jnp.bool_:
            raise TypeError(f"mask must be boolean (True = attend), got {jnp.result_type(mask)}")
    if bias is not None:
        _check_broadcast("bias", bias, target)
        if not jnp.issubdtype(jnp.result_type(bias), jnp.floating):
            raise TypeError(f"bias must be a floating array, got {jnp.result_type(bias)}")
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {is_causal!r}")
    if scale is None:
        scale = 1.0 / math.sqrt(h)
    elif isinstance(scale, np.generic | np.ndarray) or (
            isinstance(scale, jax.Array) and not isinstance(scale, jax.core.Tracer)):
        scale = float(scale)
    if not isinstance(scale, float | int):
        raise TypeError(f"scale must be a Python number (it is static), got {type(scale)}")
    q_seg, kv_seg = _segments(segment_ids, b, t, s)
    return Spec(
        mask=None if mask is None else jnp.asarray(mask),
        bias=None if bias is None else jnp.asarray(bias),
        is_causal=is_causal,
        local_window=masks.normalize_window(local_window),
        q_offset=_offset(q_offset, b),
        q_lengths=_int_vector("q_lengths", q_lengths, b),
        kv_lengths=_int_vector("kv_lengths", kv_lengths, b),
        q_segment_ids=q_seg,
        kv_segment_ids=kv_seg,
        scale=float(scale),
    )
