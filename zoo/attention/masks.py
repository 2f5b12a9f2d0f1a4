"""Attention masks: which key each query may attend to.

Glossary: B batch, T query length, S key length, N query heads.
Masks are boolean and True means "may attend". Every kernel combines the
same structural pieces, defined once here by :func:`structural_mask`:

* padding    -- key j is real iff ``j < kv_lengths[b]``; query i is real iff
                ``i < q_lengths[b]`` (a padded query attends to nothing);
* causal     -- with a query offset: query i sits at absolute position
                ``q_offset + i`` and sees keys ``j <= q_offset + i``. A decoding
                step t with a KV cache is a query at offset t;
* local      -- ``local_window=(left, right)``: query at position p sees keys
                ``p - left <= j <= p + right`` (``right`` is moot when causal);
* segments   -- packed sequences: query and key must carry the same segment id.

A dense user mask broadcastable to [B, N, T, S] may be and-ed on top.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

Window = tuple[int, int]


def normalize_window(local_window: int | tuple[int, int] | None) -> Window | None:
    """``w`` -> ``(w, w)``; checks that both sides are non-negative ints."""
    if local_window is None:
        return None
    if isinstance(local_window, int | np.integer) and not isinstance(local_window, bool):
        local_window = (local_window, local_window)
    if (
        not isinstance(local_window, tuple | list)
        or len(local_window) != 2
        or not all(isinstance(w, int | np.integer) and not isinstance(w, bool)
                   for w in local_window)
        or min(local_window) < 0
    ):
        raise ValueError(
            f"local_window must be a non-negative int or a (left, right) pair of them, "
            f"got {local_window!r}"
        )
    return int(local_window[0]), int(local_window[1])


def padding_mask(lengths, max_len: int):
    """[B] lengths -> [B, T] bool (T = max_len), True on the first ``lengths[b]`` positions."""
    return jnp.arange(max_len)[None, :] < jnp.asarray(lengths)[:, None]  # [B, T]


def causal_mask(q_len: int, kv_len: int, q_offset=0):
    """[B or 1, 1, T, S]: query i (at position q_offset + i) sees keys j <= q_offset + i."""
    return structural_mask(jnp.arange(q_len), jnp.arange(kv_len), is_causal=True,
                           q_offset=q_offset)[:, None]


def local_window_mask(q_len: int, kv_len: int, local_window, q_offset=0):
    """[B or 1, 1, T, S] banded mask; see the module docstring."""
    return structural_mask(jnp.arange(q_len), jnp.arange(kv_len),
                           local_window=normalize_window(local_window),
                           q_offset=q_offset)[:, None]


def segment_mask(q_segment_ids, kv_segment_ids):
    """[B, T] x [B, S] segment ids -> [B, 1, T, S]: same segment only."""
    return (q_segment_ids[:, :, None] == kv_segment_ids[:, None, :])[:, None]


def structural_mask(
    q_idx,
    k_idx,
    *,
    is_causal: bool = False,
    local_window: Window | None = None,
    q_offset=0,
    q_lengths=None,
    kv_lengths=None,
    q_segment_ids=None,
    kv_segment_ids=None,
):
    """The combined structural mask for query rows ``q_idx`` and key columns ``k_idx``.

    Args:
      q_idx: [T'] int, query row indices (all rows, or one block of them).
      k_idx: [S'] int, key column indices.
      q_offset: int or [B] int, absolute position of query row 0.
      q_lengths, kv_lengths: [B] int or None.
      q_segment_ids: [B, T'] int or None (already sliced like q_idx).
      kv_segment_ids: [B, S'] int or None (already sliced like k_idx).

    Returns:
      [B or 1, T', S'] bool, or None when nothing is masked.
    """
    mask = None

    def both(m):
        nonlocal mask
        mask = m if mask is None else mask & m

    if is_causal or local_window is not None:
        offset = jnp.asarray(q_offset, jnp.int32).reshape(-1, 1, 1)  # [B or 1, 1, 1]
        q_pos = q_idx[None, :, None] + offset  # [B or 1, T', 1]
        k_pos = k_idx[None, None, :]  # [1, 1, S']
        if is_causal:
            both(k_pos <= q_pos)
        if local_window is not None:
            left, right = local_window
            both(k_pos >= q_pos - left)
            if not is_causal:
                both(k_pos <= q_pos + right)
    if kv_lengths is not None:
        both(k_idx[None, None, :] < kv_lengths[:, None, None])  # [B, 1, S']
    if q_lengths is not None:
        both(q_idx[None, :, None] < q_lengths[:, None, None])  # [B, T', 1]
    if q_segment_ids is not None:
        both(q_segment_ids[:, :, None] == kv_segment_ids[:, None, :])  # [B, T', S']
    if mask is not None:
        # Broadcast to a full [B|1, T', S'] so callers can rely on the shape.
        batch = mask.shape[0]
        mask = jnp.broadcast_to(mask, (batch, q_idx.shape[0], k_idx.shape[0]))
    return mask


def combine_masks(*masks):
    """Logical and of the non-None masks (broadcasting explicitly); None if all are None."""
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        shape = jnp.broadcast_shapes(out.shape, m.shape)
        out = jnp.broadcast_to(out, shape) & jnp.broadcast_to(m, shape)
    return out
