"""Blockwise (memory-efficient, "flash") attention in pure JAX.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads, G = N // K query heads per key/value head, H head dim; Q and J are the
query- and key-block sizes, nq and nk the numbers of blocks.

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


class _Aux(NamedTuple):
    """Non-differentiable inputs (arrays or None)."""

    mask: jax.Array | None  # [Bm, K|1, G|1, Tp|1, Sp|1] bool
    q_seg: jax.Array | None  # [nq, B, Q]
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


def _tile_mask(st: _Static, aux: _Aux, qi, kb, q_seg_blk):
    """Mask of tile (query block qi, key block kb): [B|1, K|1, G|1, Q, J] bool or None."""
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
    return mask


def _logits(st: _Static, qb, kblk, bias, qi, kb):
    """Scaled logits of one tile: [B, K, G, Q, J] float32."""
    s = jnp.einsum("BKGQH,BKJH->BKGQJ", qb, kblk, preferred_element_type=jnp.float32)
    s = s * st.scale
    if bias is not None:
        s = s + _tile(bias, qi * st.bq, kb * st.bk, st.bq, st.bk).astype(jnp.float32)
    return s


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


def _forward(st: _Static, q_blocks, k_t, v_t, bias, aux: _Aux):
    """q_blocks [nq, B, K, G, Q, H], k_t/v_t [B, K, Sp, H] -> out blocks, lse blocks."""
    _, b, kh, g, bq, h = q_blocks.shape

    def one_query_block(args):
        qi, qb, q_seg_blk = args  # qb [B, K, G, Q, H]

        def key_step(j, carry):
            kb = first + j

            def compute(carry, masked):
                m, l, acc = carry
                kblk = lax.dynamic_slice_in_dim(k_t, kb * st.bk, st.bk, axis=2)  # [B, K, J, H]
                vblk = lax.dynamic_slice_in_dim(v_t, kb * st.bk, st.bk, axis=2)  # [B, K, J, H]
                s = _logits(st, qb, kblk, bias, qi, kb)  # [B, K, G, Q, J]
                valid = _tile_mask(st, aux, qi, kb, q_seg_blk) if masked else None
                if valid is not None:
                    s = jnp.where(valid, s, -jnp.inf)
                m_new = jnp.maximum(m, jnp.max(s, axis=-1))  # [B, K, G, Q]
                m_safe = jnp.where(jnp.isneginf(m_new), 0.0, m_new)
                p = jnp.exp(s - m_safe[..., None])  # [B, K, G, Q, J]
                alpha = jnp.exp(m - m_safe)  # [B, K, G, Q]
                l = alpha * l + jnp.sum(p, axis=-1)
                pv = jnp.einsum("BKGQJ,BKJH->BKGQH", p.astype(v_t.dtype), vblk,
                                preferred_element_type=jnp.float32)
                return m_new, l, acc * alpha[..., None] + pv

            def tile(carry):
                return _masked_or_not(st, aux, qi, kb, compute, carry)

            return _maybe_skip(aux, st, q_seg_blk, kb, tile, carry)

        first, count = _key_block_range(st, aux, qi)
        init = (
            jnp.full((b, kh, g, bq), -jnp.inf, jnp.float32),
            jnp.zeros((b, kh, g, bq), jnp.float32),
            jnp.zeros((b, kh, g, bq, h), jnp.float32),
        )
        m, l, acc = lax.fori_loop(0, count, key_step, init)
        seen = l > 0
        out = acc / jnp.where(seen, l, 1.0)[..., None]  # [B, K, G, Q, H]
        lse = jnp.where(seen, m + jnp.log(jnp.where(seen, l, 1.0)), 0.0)  # [B, K, G, Q]
        return out.astype(q_blocks.dtype), lse

    nq = q_blocks.shape[0]
    # Without segments aux.q_seg is None, an empty pytree that lax.map passes through.
    return lax.map(one_query_block, (jnp.arange(nq), q_blocks, aux.q_seg))


def _backward(st: _Static, res, d_out_blocks):
    q_blocks, k_t, v_t, bias, aux, out_blocks, lse = res
    nq, b, kh, g, bq, h = q_blocks.shape
    sp = k_t.shape[2]
    nk = sp // st.bk
    # D_i = sum_h dO_i * O_i: the softmax-Jacobian term, one number per query row.
    delta = jnp.sum(d_out_blocks.astype(jnp.float32) * out_blocks.astype(jnp.float32),
                    axis=-1)  # [nq, B, K, G, Q]

    def one_key_block(carry, kb):
        dq, dbias = carry
        kblk = lax.dynamic_slice_in_dim(k_t, kb * st.bk, st.bk, axis=2)  # [B, K, J, H]
        vblk = lax.dynamic_slice_in_dim(v_t, kb * st.bk, st.bk, axis=2)  # [B, K, J, H]

        def query_step(j, inner):
            qi = first + j
            q_seg_blk = None if aux.q_seg is None else aux.q_seg[qi]

            def compute(inner, masked):
                dq, dbias, dk, dv = inner
                qb = q_blocks[qi]  # [B, K, G, Q, H]
                dob = d_out_blocks[qi]  # [B, K, G, Q, H]
                s = _logits(st, qb, kblk, bias, qi, kb)  # [B, K, G, Q, J]
                p = jnp.exp(s - lse[qi][..., None])
                valid = _tile_mask(st, aux, qi, kb, q_seg_blk) if masked else None
                if valid is not None:
                    p = jnp.where(valid, p, 0.0)
                dv = dv + jnp.einsum("BKGQJ,BKGQH->BKJH", p.astype(dob.dtype), dob,
                                     preferred_element_type=jnp.float32)
                dp = jnp.einsum("BKGQH,BKJH->BKGQJ", dob, vblk,
                                preferred_element_type=jnp.float32)
                ds = p * (dp - delta[qi][..., None])  # [B, K, G, Q, J] dL/dlogits
                dq_blk = jnp.einsum("BKGQJ,BKJH->BKGQH", ds.astype(kblk.dtype), kblk,
                                    preferred_element_type=jnp.float32) * st.scale
                dq = dq.at[qi].add(dq_blk)
                dk = dk + jnp.einsum("BKGQJ,BKGQH->BKJH", ds.astype(qb.dtype), qb,
                                     preferred_element_type=jnp.float32) * st.scale
                if dbias is not None:
                    dbias = _add_bias_grad(st, dbias, ds, qi, kb)
                return dq, dbias, dk, dv

            def tile(inner):
                return _masked_or_not(st, aux, qi, kb, compute, inner)

            return _maybe_skip(aux, st, q_seg_blk, kb, tile, inner)

        first, count = _query_block_range(st, aux, kb)
        zeros = jnp.zeros((b, kh, st.bk, h), jnp.float32)
        dq, dbias, dk, dv = lax.fori_loop(0, count, query_step, (dq, dbias, zeros, zeros))
        return (dq, dbias), (dk, dv)

    dq0 = jnp.zeros(q_blocks.shape, jnp.float32)
    dbias0 = None if bias is None else jnp.zeros(bias.shape, jnp.float32)
    (dq, dbias), (dk, dv) = lax.scan(one_key_block, (dq0, dbias0), jnp.arange(nk))
    # dk, dv: [nk, B, K, J, H] -> [B, K, Sp, H]
    dk = jnp.moveaxis(dk, 0, 2).reshape(b, kh, sp, h)
    dv = jnp.moveaxis(dv, 0, 2).reshape(b, kh, sp, h)
    if dbias is not None:
        dbias = dbias.astype(bias.dtype)
    return dq.astype(q_blocks.dtype), dk.astype(k_t.dtype), dv.astype(v_t.dtype), dbias


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
def _attention_blocks(st, q_blocks, k_t, v_t, bias, aux):
    out, _ = _forward(st, q_blocks, k_t, v_t, bias, aux)
    return out


def _attention_blocks_fwd(st, q_blocks, k_t, v_t, bias, aux):
    out, lse = _forward(st, q_blocks, k_t, v_t, bias, aux)
    return out, (q_blocks, k_t, v_t, bias, aux, out, lse)


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
    g = n // kh
    bq, bk = min(block_q, t), min(block_k, s)
    nq, nk = _ceil_div(t, bq), _ceil_div(s, bk)
    tp, sp = nq * bq, nk * bk
    st = _Static(spec.scale, spec.is_causal, spec.local_window, t, s, bq, bk)

    q_blocks = _pad_axis(q, 1, tp, 0).reshape(b, nq, bq, kh, g, h)
    q_blocks = q_blocks.transpose(1, 0, 3, 4, 2, 5)  # [nq, B, K, G, Q, H]
    k_t = _pad_axis(k, 1, sp, 0).transpose(0, 2, 1, 3)  # [B, K, Sp, H]
    v_t = _pad_axis(v, 1, sp, 0).transpose(0, 2, 1, 3)  # [B, K, Sp, H]
    q_seg = kv_seg = None
    if spec.q_segment_ids is not None:
        q_seg = _pad_axis(spec.q_segment_ids, 1, tp, -1)
        q_seg = q_seg.reshape(b, nq, bq).transpose(1, 0, 2)  # [nq, B, Q]
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
    out = _attention_blocks(st, q_blocks, k_t, v_t, bias, aux)  # [nq, B, K, G, Q, H]
    out = out.transpose(1, 0, 4, 2, 3, 5).reshape(b, tp, n, h)  # [B, Tp, N, H]
    return out[:, :t]
