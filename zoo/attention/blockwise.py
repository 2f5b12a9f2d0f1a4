"""Blockwise (memory-efficient, "flash") attention in pure JAX.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads, G = N // K query heads per key/value head, H head dim; Q and J are the
query- and key-block sizes, nq and nk the numbers of blocks, M = G * Q the rows
of a tile (the G query heads that share a key/value head, times Q queries).

Forward: for every block of Q queries, walk over key blocks of J keys with an
online softmax (running max ``m``, running sum ``l``, unnormalised output
``acc``), so only a [Q, J] tile of logits ever exists: memory is linear in T
and S. Backward (``custom_vjp``): recompute each tile from q, k and the saved
log-sum-exp instead of storing the T x S weights.

Skipping: the key blocks a query block can see are bounded by causality (with
the query offset), the local window and the longest kv length in the batch;
the loops run only over that range (``while`` loops with traced bounds), so
a causal call does about half the work. Blocks where no query and key share a
segment are skipped with ``lax.cond``, and tiles wholly inside the allowed
region skip building the mask. Lengths need not be multiples of the
block sizes: inputs are padded and the padding is masked.

Layout: q, k, v and the output stay in the caller's [B, T, N, H] layout; each
loop step slices its block with ``dynamic_slice`` and transposes only that
block, so no transposed copy of q, k or v is built (a padded one only when a
length is not a multiple of its block size). The scale is applied inside
``exp`` (and to the [M] row maxima) rather than to every logit, unless a bias
has to be added to scaled logits. The backward builds its tiles key-major,
[J, M], which every one of its five products can use without a transpose.

A query row with no allowed key ends with ``l == 0`` and returns zeros, as the
reference does.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from zoo.attention import masks
from zoo.attention.spec import Spec
from zoo.attention.spec import pad_axis as _pad_axis

DEFAULT_BLOCK_Q = 256  # measured on 2 CPU cores: 256 x 512 beat 512 x 512, 128 x 512, 256 x 256
DEFAULT_BLOCK_K = 512


class _Static(NamedTuple):
    scale: float
    is_causal: bool
    window: masks.Window | None
    t: int  # true query length
    s: int  # true key length
    bq: int
    bk: int
    fold: bool  # no bias and scale > 0: the scale rides inside exp, not on every logit


class _Aux(NamedTuple):
    """Non-differentiable inputs (arrays or None)."""

    mask: jax.Array | None  # [Bm, K|1, G|1, Tp|1, Sp|1] bool
    q_seg: jax.Array | None  # [B, Tp]
    kv_seg: jax.Array | None  # [B, Sp]
    q_offset: jax.Array  # [B] or [1] int32
    q_lengths: jax.Array | None  # [B]
    kv_lengths: jax.Array | None  # [B]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _dense_to_groups(x, k_heads: int, tp: int, sp: int, fill):
    """[Bx, N|1, T|1, S|1] -> [Bx, K|1, G|1, Tp|1, Sp|1], padded with ``fill``."""
    if x is None:
        return None
    bx, nx, tx, sx = x.shape
    x = x.reshape(bx, 1, 1, tx, sx) if nx == 1 else x.reshape(bx, k_heads, nx // k_heads, tx, sx)
    if tx > 1:
        x = _pad_axis(x, 3, tp, fill)
    if sx > 1:
        x = _pad_axis(x, 4, sp, fill)
    return x


def _tile(x, row0, col0, bq: int, bk: int):
    """The [.., Q|1, J|1] tile of a [.., Tp|1, Sp|1] array starting at (row0, col0)."""
    if x.shape[-2] > 1:
        x = lax.dynamic_slice_in_dim(x, row0, bq, axis=x.ndim - 2)
    if x.shape[-1] > 1:
        x = lax.dynamic_slice_in_dim(x, col0, bk, axis=x.ndim - 1)
    return x


def _tile_mask(st: _Static, aux: _Aux, qi, kb, q_seg_blk, g: int):
    """Mask of tile (query block qi, key block kb) as rows: [B|1, K|1, M, J] bool.

    Only called for tiles that :func:`_tile_needs_mask` says may hold a masked entry.
    """
    q_idx = qi * st.bq + jnp.arange(st.bq)
    k_idx = kb * st.bk + jnp.arange(st.bk)
    kv_seg = None
    if aux.kv_seg is not None:
        kv_seg = lax.dynamic_slice_in_dim(aux.kv_seg, kb * st.bk, st.bk, axis=1)  # [B, J]
    mask = masks.structural_mask(
        q_idx, k_idx, is_causal=st.is_causal, local_window=st.window, q_offset=aux.q_offset,
        q_lengths=aux.q_lengths, kv_lengths=aux.kv_lengths,
        q_segment_ids=q_seg_blk, kv_segment_ids=kv_seg,
    )  # [B|1, Q, J] or None
    if st.s % st.bk:  # keys padded up to a whole block
        mask = masks.combine_masks(mask, (k_idx < st.s)[None, None, :])
    if mask is not None:
        mask = mask[:, None, None]  # [B|1, 1, 1, Q, J]
    if aux.mask is not None:
        mask = masks.combine_masks(mask, _tile(aux.mask, qi * st.bq, kb * st.bk, st.bq, st.bk))
    return _rows(mask, g, st.bq)


def _rows(x, g: int, bq: int):
    """[X, Y, G|1, Q|1, J|1] mask/bias tile -> [X, Y, M, J|1] with M = G * Q, the rows of a tile.

    Tiles keep the G query heads of a key/value head and the Q queries on one axis: a
    size-1 G (MHA) would otherwise make XLA copy every [Q, J] tile to relayout it.
    """
    x0, x1, _, _, j = x.shape
    return jnp.broadcast_to(x, (x0, x1, g, bq, j)).reshape(x0, x1, g * bq, j)


def _finish_logits(st: _Static, s, bias_rows):
    """Scale and bias raw q.k products, unless the scale rides inside ``exp`` (``st.fold``)."""
    if st.fold:
        return s
    s = s * st.scale
    return s if bias_rows is None else s + bias_rows.astype(jnp.float32)


def _scaled_exp(st: _Static, s, shift):
    """exp(logits - shift) for a tile ``s`` from :func:`_finish_logits`."""
    if st.fold:
        return jnp.exp(s * st.scale - shift)
    return jnp.exp(s - shift)


def _query_rows(x, qi, bq: int, kh: int):
    """Query block ``qi`` of [B, Tp, N, H] as [B, K, M, H] rows (a block-sized copy)."""
    b, _, n, h = x.shape
    x = lax.dynamic_slice_in_dim(x, qi * bq, bq, axis=1).reshape(b, bq, kh, n // kh, h)
    return x.transpose(0, 2, 3, 1, 4).reshape(b, kh, n // kh * bq, h)  # [B, K, M, H]


def _row_stat(x, qi, bq: int, kh: int):
    """Block ``qi`` of a per-row statistic [B, N, Tp] as [B, K, M]."""
    b, n, _ = x.shape
    return lax.dynamic_slice_in_dim(x, qi * bq, bq, axis=2).reshape(b, kh, n // kh * bq)


def _key_block(x, kb, bk: int):
    """Key block ``kb`` of [B, Sp, K, H] as [B, K, J, H] (a block-sized copy)."""
    return lax.dynamic_slice_in_dim(x, kb * bk, bk, axis=1).transpose(0, 2, 1, 3)


def _q_seg_block(st: _Static, aux: _Aux, qi):
    """Segment ids of query block ``qi``: [B, Q], or None."""
    if aux.q_seg is None:
        return None
    return lax.dynamic_slice_in_dim(aux.q_seg, qi * st.bq, st.bq, axis=1)


def _key_block_range(st: _Static, aux: _Aux, qi):
    """[first, first + count) key blocks that query block ``qi`` can see (traced ints)."""
    r0 = qi * st.bq
    r1 = jnp.minimum(r0 + st.bq, st.t) - 1
    if aux.q_lengths is not None:
        r1 = jnp.minimum(r1, jnp.max(aux.q_lengths) - 1)
    pos_lo = jnp.min(aux.q_offset) + r0
    pos_hi = jnp.max(aux.q_offset) + r1
    j_lo = jnp.int32(0)
    j_hi = jnp.int32(st.s - 1)
    if st.is_causal:
        j_hi = jnp.minimum(j_hi, pos_hi)
    if st.window is not None:
        j_lo = jnp.maximum(j_lo, pos_lo - st.window[0])
        if not st.is_causal:
            j_hi = jnp.minimum(j_hi, pos_hi + st.window[1])
    if aux.kv_lengths is not None:
        j_hi = jnp.minimum(j_hi, jnp.max(aux.kv_lengths) - 1)
    empty = (j_hi < j_lo) | (r1 < r0)
    first = j_lo // st.bk
    count = jnp.where(empty, 0, j_hi // st.bk - first + 1)
    return first, count


def _query_block_range(st: _Static, aux: _Aux, kb):
    """[first, first + count) query blocks that can see key block ``kb`` (traced ints)."""
    c0 = kb * st.bk
    c1 = jnp.minimum(c0 + st.bk, st.s) - 1
    r_lo = jnp.int32(0)
    r_hi = jnp.int32(st.t - 1)
    if st.is_causal:
        r_lo = jnp.maximum(r_lo, c0 - jnp.max(aux.q_offset))
    if st.window is not None:
        r_hi = jnp.minimum(r_hi, c1 + st.window[0] - jnp.min(aux.q_offset))
        if not st.is_causal:
            r_lo = jnp.maximum(r_lo, c0 - st.window[1] - jnp.max(aux.q_offset))
    if aux.q_lengths is not None:
        r_hi = jnp.minimum(r_hi, jnp.max(aux.q_lengths) - 1)
    empty = r_hi < r_lo
    if aux.kv_lengths is not None:
        empty = empty | (c0 >= jnp.max(aux.kv_lengths))
    first = r_lo // st.bq
    count = jnp.where(empty, 0, r_hi // st.bq - first + 1)
    return first, count


def _segments_meet(aux: _Aux, q_seg_blk, kv_seg_blk):
    """False only if no query and key of the tile can share a segment (range test)."""
    q_lo, q_hi = jnp.min(q_seg_blk, axis=1), jnp.max(q_seg_blk, axis=1)  # [B]
    k_lo, k_hi = jnp.min(kv_seg_blk, axis=1), jnp.max(kv_seg_blk, axis=1)  # [B]
    return jnp.any((q_lo <= k_hi) & (k_lo <= q_hi))


def _tile_needs_mask(st: _Static, aux: _Aux, qi, kb):
    """Whether tile (qi, kb) can hold a masked entry: None = statically never, else a traced bool.

    Tiles wholly inside the allowed region (below the causal diagonal, inside the
    window, before every length) skip building and applying the mask.
    """
    if aux.mask is not None or aux.kv_seg is not None:
        return True
    c0 = kb * st.bk
    c1 = c0 + st.bk - 1
    r0 = qi * st.bq
    r1 = r0 + st.bq - 1
    lo, hi = jnp.min(aux.q_offset), jnp.max(aux.q_offset)
    need = []
    if st.s % st.bk:
        need.append(c1 >= st.s)
    if st.is_causal:
        need.append(c1 > lo + r0)
    if st.window is not None:
        need.append(c0 < hi + r1 - st.window[0])
        if not st.is_causal:
            need.append(c1 > lo + r0 + st.window[1])
    if aux.kv_lengths is not None:
        need.append(c1 >= jnp.min(aux.kv_lengths))
    if aux.q_lengths is not None:
        need.append(r1 >= jnp.min(aux.q_lengths))
    if not need:
        return None
    out = need[0]
    for n in need[1:]:
        out = out | n
    return out


def _masked_or_not(st: _Static, aux: _Aux, qi, kb, compute, carry):
    """Runs ``compute(carry, masked)``, unmasked where the tile provably needs no mask."""
    need = _tile_needs_mask(st, aux, qi, kb)
    if need is None:
        return compute(carry, False)
    if need is True:
        return compute(carry, True)
    return lax.cond(need, lambda c: compute(c, True), lambda c: compute(c, False), carry)


def _maybe_skip(aux: _Aux, st: _Static, q_seg_blk, kb, body, carry):
    """Runs ``body(carry)`` unless segment ids rule the whole tile out."""
    if aux.kv_seg is None:
        return body(carry)
    kv_seg_blk = lax.dynamic_slice_in_dim(aux.kv_seg, kb * st.bk, st.bk, axis=1)
    return lax.cond(_segments_meet(aux, q_seg_blk, kv_seg_blk), body, lambda c: c, carry)


def _forward(st: _Static, q, k, v, bias, aux: _Aux):
    """q [B, Tp, N, H], k/v [B, Sp, K, H] -> out [B, Tp, N, H], lse [B, N, Tp]."""
    b, tp, n, h = q.shape
    kh = k.shape[2]
    g = n // kh
    m_rows = g * st.bq

    def one_query_block(qi, carry):
        out, lse = carry
        qb = _query_rows(q, qi, st.bq, kh)  # [B, K, M, H]
        q_seg_blk = _q_seg_block(st, aux, qi)  # [B, Q] or None

        def key_step(j, carry):
            kb = first + j

            def compute(carry, masked):
                m, l, acc = carry  # m is in the units of s (raw products when the scale folds)
                kblk = _key_block(k, kb, st.bk)  # [B, K, J, H]
                vblk = _key_block(v, kb, st.bk)  # [B, K, J, H]
                s = jnp.einsum("BKMH,BKJH->BKMJ", qb, kblk, preferred_element_type=jnp.float32)
                bias_rows = None if bias is None else _rows(
                    _tile(bias, qi * st.bq, kb * st.bk, st.bq, st.bk), g, st.bq)
                s = _finish_logits(st, s, bias_rows)  # [B, K, M, J]
                if masked:
                    s = jnp.where(_tile_mask(st, aux, qi, kb, q_seg_blk, g), s, -jnp.inf)
                m_new = jnp.maximum(m, jnp.max(s, axis=-1))  # [B, K, M]
                m_safe = jnp.where(jnp.isneginf(m_new), 0.0, m_new)
                shift = m_safe * st.scale if st.fold else m_safe  # [B, K, M]
                p = _scaled_exp(st, s, shift[..., None])  # [B, K, M, J]
                alpha = _scaled_exp(st, m, shift)  # [B, K, M]
                l = alpha * l + jnp.sum(p, axis=-1)
                pv = jnp.einsum("BKMJ,BKJH->BKMH", p.astype(v.dtype), vblk,
                                preferred_element_type=jnp.float32)
                return m_new, l, acc * alpha[..., None] + pv

            def tile(carry):
                return _masked_or_not(st, aux, qi, kb, compute, carry)

            return _maybe_skip(aux, st, q_seg_blk, kb, tile, carry)

        first, count = _key_block_range(st, aux, qi)
        init = (
            jnp.full((b, kh, m_rows), -jnp.inf, jnp.float32),
            jnp.zeros((b, kh, m_rows), jnp.float32),
            jnp.zeros((b, kh, m_rows, h), jnp.float32),
        )
        m, l, acc = lax.fori_loop(0, count, key_step, init)
        seen = l > 0
        ob = acc / jnp.where(seen, l, 1.0)[..., None]  # [B, K, M, H]
        top = m * st.scale if st.fold else m
        lse_b = jnp.where(seen, top + jnp.log(jnp.where(seen, l, 1.0)), 0.0)  # [B, K, M]
        ob = ob.reshape(b, kh, g, st.bq, h).transpose(0, 3, 1, 2, 4)  # [B, Q, K, G, H]
        ob = ob.reshape(b, st.bq, n, h).astype(out.dtype)  # [B, Q, N, H]
        out = lax.dynamic_update_slice_in_dim(out, ob, qi * st.bq, axis=1)
        lse = lax.dynamic_update_slice_in_dim(lse, lse_b.reshape(b, n, st.bq), qi * st.bq, axis=2)
        return out, lse

    init = (jnp.zeros(q.shape, q.dtype), jnp.zeros((b, n, tp), jnp.float32))
    return lax.fori_loop(0, tp // st.bq, one_query_block, init)


def _backward(st: _Static, res, d_out):
    """Gradients for q [B, Tp, N, H], k/v [B, Sp, K, H] and the bias.

    Tiles are key-major, [B, K, J, M]: every product then contracts a tile over its
    last axis or its rows over J, so no [M, J] tile is ever transposed (those copies
    cost more than the matmuls, and most with GQA, whose tiles have G times more rows).
    """
    q, k, v, bias, aux, out, lse = res
    b, tp, n, h = q.shape
    kh = k.shape[2]
    g = n // kh
    # D_i = sum_h dO_i * O_i: the softmax-Jacobian term, one number per query row.
    delta = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)  # [B, Tp, N]
    delta = delta.transpose(0, 2, 1)  # [B, N, Tp]

    def one_key_block(kb, carry):
        dq, dk, dv, dbias = carry
        kblk = _key_block(k, kb, st.bk)  # [B, K, J, H]
        vblk = _key_block(v, kb, st.bk)  # [B, K, J, H]
        k_hj = kblk.transpose(0, 1, 3, 2)  # [B, K, H, J]

        def query_step(j, inner):
            qi = first + j
            q_seg_blk = _q_seg_block(st, aux, qi)

            def compute(inner, masked):
                dq, dbias, dkb, dvb = inner
                qb = _query_rows(q, qi, st.bq, kh)  # [B, K, M, H]
                dob = _query_rows(d_out, qi, st.bq, kh)  # [B, K, M, H]
                s = jnp.einsum("BKJH,BKMH->BKJM", kblk, qb, preferred_element_type=jnp.float32)
                bias_rows = None if bias is None else _rows(
                    _tile(bias, qi * st.bq, kb * st.bk, st.bq, st.bk), g, st.bq).swapaxes(2, 3)
                s = _finish_logits(st, s, bias_rows)  # [B, K, J, M]
                lse_b = _row_stat(lse, qi, st.bq, kh)[:, :, None]  # [B, K, 1, M]
                p = _scaled_exp(st, s, lse_b)  # [B, K, J, M]
                if masked:
                    valid = _tile_mask(st, aux, qi, kb, q_seg_blk, g).swapaxes(2, 3)
                    p = jnp.where(valid, p, 0.0)
                dvb = dvb + jnp.einsum("BKJM,BKMH->BKJH", p.astype(dob.dtype), dob,
                                       preferred_element_type=jnp.float32)
                dp = jnp.einsum("BKJH,BKMH->BKJM", vblk, dob, preferred_element_type=jnp.float32)
                delta_b = _row_stat(delta, qi, st.bq, kh)[:, :, None]  # [B, K, 1, M]
                ds = p * (dp - delta_b)  # [B, K, J, M] dL/dlogits
                dkb = dkb + jnp.einsum("BKJM,BKMH->BKJH", ds.astype(qb.dtype), qb,
                                       preferred_element_type=jnp.float32)
                dq_blk = jnp.einsum("BKHJ,BKJM->BKHM", k_hj, ds.astype(k.dtype),
                                    preferred_element_type=jnp.float32)
                dq = dq.at[qi].add(dq_blk)
                if dbias is not None:
                    ds_gqj = ds.swapaxes(2, 3).reshape(b, kh, g, st.bq, st.bk)  # [B, K, G, Q, J]
                    dbias = _add_bias_grad(st, dbias, ds_gqj, qi, kb)
                return dq, dbias, dkb, dvb

            def tile(inner):
                return _masked_or_not(st, aux, qi, kb, compute, inner)

            return _maybe_skip(aux, st, q_seg_blk, kb, tile, inner)

        first, count = _query_block_range(st, aux, kb)
        zeros = jnp.zeros((b, kh, st.bk, h), jnp.float32)
        dq, dbias, dkb, dvb = lax.fori_loop(0, count, query_step, (dq, dbias, zeros, zeros))
        dkb = (dkb * st.scale).transpose(0, 2, 1, 3)  # [B, J, K, H]
        dvb = dvb.transpose(0, 2, 1, 3)  # [B, J, K, H]
        dk = lax.dynamic_update_slice_in_dim(dk, dkb.astype(dk.dtype), kb * st.bk, axis=1)
        dv = lax.dynamic_update_slice_in_dim(dv, dvb.astype(dv.dtype), kb * st.bk, axis=1)
        return dq, dk, dv, dbias

    nq = tp // st.bq
    init = (
        jnp.zeros((nq, b, kh, h, g * st.bq), jnp.float32),  # dq, head dim before rows
        jnp.zeros(k.shape, k.dtype),
        jnp.zeros(v.shape, v.dtype),
        None if bias is None else jnp.zeros(bias.shape, jnp.float32),
    )
    dq, dk, dv, dbias = lax.fori_loop(0, k.shape[1] // st.bk, one_key_block, init)
    dq = (dq * st.scale).reshape(nq, b, kh, h, g, st.bq)
    dq = dq.transpose(1, 0, 5, 2, 4, 3).reshape(q.shape)  # [B, Tp, N, H]
    if dbias is not None:
        dbias = dbias.astype(bias.dtype)
    return dq.astype(q.dtype), dk, dv, dbias


def _add_bias_grad(st: _Static, dbias, ds, qi, kb):
    """Adds the tile's dL/dlogits into dbias, summing over the dims the bias broadcasts."""
    axes = tuple(i for i in range(3) if dbias.shape[i] == 1 and ds.shape[i] != 1)
    if dbias.shape[3] == 1:
        axes += (3,)
    if dbias.shape[4] == 1:
        axes += (4,)
    ds = jnp.sum(ds, axis=axes, keepdims=True) if axes else ds
    row0 = qi * st.bq if dbias.shape[3] > 1 else 0
    col0 = kb * st.bk if dbias.shape[4] > 1 else 0
    start = (0, 0, 0, row0, col0)
    current = lax.dynamic_slice(dbias, start, ds.shape)
    return lax.dynamic_update_slice(dbias, current + ds, start)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _attention_blocks(st, q, k, v, bias, aux):
    out, _ = _forward(st, q, k, v, bias, aux)
    return out


def _attention_blocks_fwd(st, q, k, v, bias, aux):
    out, lse = _forward(st, q, k, v, bias, aux)
    return out, (q, k, v, bias, aux, out, lse)


def _attention_blocks_bwd(st, res, d_out):
    dq, dk, dv, dbias = _backward(st, res, d_out)
    return dq, dk, dv, dbias, None  # masks, ids and lengths get no gradient


_attention_blocks.defvjp(_attention_blocks_fwd, _attention_blocks_bwd)


def attention(q, k, v, spec: Spec, *, block_q: int = DEFAULT_BLOCK_Q,
              block_k: int = DEFAULT_BLOCK_K):
    """Blockwise kernel on q [B, T, N, H], k/v [B, S, K, H] -> [B, T, N, H]."""
    if block_q <= 0 or block_k <= 0:
        raise ValueError(f"block_q and block_k must be positive, got {block_q}, {block_k}")
    b, t, n, h = q.shape
    _, s, kh, _ = k.shape
    bq, bk = min(block_q, t), min(block_k, s)
    tp, sp = _ceil_div(t, bq) * bq, _ceil_div(s, bk) * bk
    fold = spec.bias is None and spec.scale > 0  # max(scale * s) = scale * max(s) needs scale > 0
    st = _Static(spec.scale, spec.is_causal, spec.local_window, t, s, bq, bk, fold)

    # Tiles are sliced from the caller's layout inside the loops; only ragged lengths pay
    # for a padded copy.
    q_p = _pad_axis(q, 1, tp, 0)  # [B, Tp, N, H]
    k_p = _pad_axis(k, 1, sp, 0)  # [B, Sp, K, H]
    v_p = _pad_axis(v, 1, sp, 0)  # [B, Sp, K, H]
    q_seg = kv_seg = None
    if spec.q_segment_ids is not None:
        q_seg = _pad_axis(spec.q_segment_ids, 1, tp, -1)  # [B, Tp]
        kv_seg = _pad_axis(spec.kv_segment_ids, 1, sp, -2)  # [B, Sp]
    aux = _Aux(
        mask=_dense_to_groups(spec.mask, kh, tp, sp, False),
        q_seg=q_seg,
        kv_seg=kv_seg,
        q_offset=jnp.asarray(spec.q_offset, jnp.int32).reshape(-1),
        q_lengths=spec.q_lengths,
        kv_lengths=spec.kv_lengths,
    )
    bias = _dense_to_groups(spec.bias, kh, tp, sp, 0)
    out = _attention_blocks(st, q_p, k_p, v_p, bias, aux)  # [B, Tp, N, H]
    return out if tp == t else out[:, :t]
