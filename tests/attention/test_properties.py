"""Properties every attention kernel must have, checked with hypothesis.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads, G = N // K, H head dim.

Shapes are fixed (T != S, and neither is a multiple of the 8x8 blocks), and the
masking inputs (lengths, offsets, segment ids, dense mask) are traced
arguments of one jitted function per kernel, so examples never recompile;
only the static options (local window, an int query offset) add a few
compilations.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.attention import blockwise_attention, dot_product_attention, reference_attention

B, T, S, N, K, H = 3, 20, 28, 4, 2, 8
G = N // K
MAX_OFFSET = 12
WINDOWS = [None, (3, 2)]
SETTINGS = settings(max_examples=15, deadline=None)
EXACT = dict(rtol=0, atol=1e-6)  # "no change": equal up to float32 noise

KERNELS = {
    "reference": reference_attention,
    "xla": functools.partial(dot_product_attention, implementation="xla"),
    "blockwise": functools.partial(dot_product_attention, implementation="blockwise"),
    "blockwise_8x8": functools.partial(blockwise_attention, block_q=8, block_k=8),
}


class Masking(NamedTuple):
    """Everything that decides which key a query may see (numpy; batch first)."""

    window: tuple[int, int] | None  # static
    q_offset: np.ndarray  # [B] int32
    q_lengths: np.ndarray  # [B] int32
    kv_lengths: np.ndarray  # [B] int32
    q_seg: np.ndarray  # [B, T] int32
    kv_seg: np.ndarray  # [B, S] int32
    mask: np.ndarray  # [B, N, T, S] bool

    def traced(self):
        return (self.q_offset, self.q_lengths, self.kv_lengths, self.q_seg, self.kv_seg,
                self.mask)

    def permuted(self, perm):
        return self._replace(**{name: getattr(self, name)[perm] for name in self._fields[1:]})


@functools.cache
def _masked_fn(kernel: str, window):
    """jit(q, k, v, *Masking.traced()) -> [B, T, N, H] for one kernel and static window."""
    fn = KERNELS[kernel]

    @jax.jit
    def run(q, k, v, q_offset, q_lengths, kv_lengths, q_seg, kv_seg, mask):
        return fn(q, k, v, mask=mask, local_window=window, q_offset=q_offset,
                  q_lengths=q_lengths, kv_lengths=kv_lengths, segment_ids=(q_seg, kv_seg))

    return run


@functools.cache
def _causal_fn(kernel: str, static_offset: int | None):
    """jit(q, k, v, q_offset [B]) with is_causal; a static int offset replaces the array."""
    fn = KERNELS[kernel]

    @jax.jit
    def run(q, k, v, q_offset):
        offset = q_offset if static_offset is None else static_offset
        return fn(q, k, v, is_causal=True, q_offset=offset)

    return run


def _run_masked(kernel, q, k, v, m: Masking):
    return np.asarray(_masked_fn(kernel, m.window)(q, k, v, *m.traced()))


def _qkv(seed: int, kv_heads: int = K):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, T, N, H)).astype(np.float32)
    k = rng.normal(size=(B, S, kv_heads, H)).astype(np.float32)
    v = rng.normal(size=(B, S, kv_heads, H)).astype(np.float32)
    return q, k, v


def _allowed(m: Masking, is_causal: bool = False) -> np.ndarray:
    """[B, N, T, S] bool, spelled out from the semantics in zoo/attention/masks.py."""
    out = np.zeros((B, N, T, S), bool)
    for b in range(B):
        for i in range(T):
            pos = m.q_offset[b] + i
            for j in range(S):
                ok = i < m.q_lengths[b] and j < m.kv_lengths[b] and m.q_seg[b, i] == m.kv_seg[b, j]
                if is_causal:
                    ok = ok and j <= pos
                if m.window is not None:
                    left, right = m.window
                    ok = ok and pos - left <= j and (is_causal or j <= pos + right)
                out[b, :, i, j] = ok & m.mask[b, :, i, j]
    return out


@st.composite
def maskings(draw) -> Masking:
    """Each mechanism is independently on (random) or off (neutral)."""
    ints = lambda lo, hi: draw(st.lists(st.integers(lo, hi), min_size=B, max_size=B))  # noqa: E731
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q_seg, kv_seg = np.zeros((B, T), np.int32), np.zeros((B, S), np.int32)
    if draw(st.booleans()):
        n_seg = draw(st.integers(2, 4))
        q_seg, kv_seg = rng.integers(0, n_seg, (B, T)), rng.integers(0, n_seg, (B, S))
        if draw(st.booleans()):  # packed sequences: contiguous segments
            q_seg, kv_seg = np.sort(q_seg, axis=1), np.sort(kv_seg, axis=1)
    density = draw(st.sampled_from([1.0, 0.9, 0.5]))
    return Masking(
        window=draw(st.sampled_from(WINDOWS)),
        q_offset=np.array(ints(0, MAX_OFFSET), np.int32),
        q_lengths=np.array(ints(0, T) if draw(st.booleans()) else [T] * B, np.int32),
        kv_lengths=np.array(ints(0, S) if draw(st.booleans()) else [S] * B, np.int32),
        q_seg=q_seg.astype(np.int32),
        kv_seg=kv_seg.astype(np.int32),
        mask=rng.random((B, N, T, S)) < density,
    )


def _affected_rows(changed, allowed):
    """[B, T, N]: rows that may see a changed key/value. changed [B, S, K], allowed [B,N,T,S]."""
    changed_heads = np.repeat(changed, G, axis=2)  # [B, S, N]
    sees = allowed & changed_heads.transpose(0, 2, 1)[:, :, None, :]  # [B, N, T, S]
    return sees.any(-1).transpose(0, 2, 1)


@pytest.mark.parametrize("kernel", list(KERNELS))
@SETTINGS
@given(m=maskings(), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_masked_keys_and_values_change_nothing(kernel, m, seed, data):
    """Keys/values beyond kv_lengths, outside the window, in other segments or masked off
    may be anything: rows that cannot see them do not move."""
    q, k, v = _qkv(seed)
    allowed = _allowed(m)
    # Probe a few query rows per batch element: change every key/value none of them sees.
    rows = data.draw(st.lists(st.integers(0, T - 1), min_size=1, max_size=3), label="rows")
    seen = allowed[:, :, rows].any(2).reshape(B, K, G, S).any(2)  # [B, K, S]
    changed = ~seen.transpose(0, 2, 1)  # [B, S, K]
    rng = np.random.default_rng(seed + 1)
    k2 = np.where(changed[..., None], 5 * rng.normal(size=k.shape), k).astype(np.float32)
    v2 = np.where(changed[..., None], 5 * rng.normal(size=v.shape), v).astype(np.float32)

    out = _run_masked(kernel, q, k, v, m)
    out2 = _run_masked(kernel, q, k2, v2, m)
    unaffected = ~_affected_rows(changed, allowed)  # [B, T, N]
    assert unaffected[:, rows].all()
    np.testing.assert_allclose(out2[unaffected], out[unaffected], **EXACT)


@pytest.mark.parametrize("kernel", list(KERNELS))
@SETTINGS
@given(
    offsets=st.lists(st.integers(0, S), min_size=B, max_size=B),
    static_offset=st.sampled_from([None, 0, 5]),
    row=st.integers(0, T - 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_causal_outputs_ignore_future_keys_and_other_queries(
    kernel, offsets, static_offset, row, seed
):
    q, k, v = _qkv(seed)
    offsets = np.array(offsets if static_offset is None else [static_offset] * B, np.int32)
    run = functools.partial(_causal_fn(kernel, static_offset), q_offset=offsets)
    out = np.asarray(run(q, k, v))
    rng = np.random.default_rng(seed + 1)

    # Keys/values after position offset + row: rows 0..row cannot see them.
    future = np.arange(S)[None, :] > (offsets + row)[:, None]  # [B, S]
    future = future[:, :, None, None]  # [B, S, 1, 1]
    k2 = np.where(future, 5 * rng.normal(size=k.shape), k).astype(np.float32)
    v2 = np.where(future, 5 * rng.normal(size=v.shape), v).astype(np.float32)
    out2 = np.asarray(run(q, k2, v2))
    np.testing.assert_allclose(out2[:, : row + 1], out[:, : row + 1], **EXACT)

    # A different query at `row` moves no other row.
    q3 = q.copy()
    q3[:, row] = 5 * rng.normal(size=q3[:, row].shape)
    out3 = np.asarray(run(q3, k, v))
    others = np.arange(T) != row
    np.testing.assert_allclose(out3[:, others], out[:, others], **EXACT)


@pytest.mark.parametrize("kernel", list(KERNELS))
@SETTINGS
@given(m=maskings(), perm=st.permutations(range(B)), seed=st.integers(0, 2**32 - 1))
def test_permuting_the_batch_permutes_outputs(kernel, m, perm, seed):
    q, k, v = _qkv(seed)
    perm = np.array(perm)
    out = _run_masked(kernel, q, k, v, m)
    out_p = _run_masked(kernel, q[perm], k[perm], v[perm], m.permuted(perm))
    np.testing.assert_allclose(out_p, out[perm], **EXACT)


@pytest.mark.parametrize("kernel", list(KERNELS))
@SETTINGS
@given(m=maskings(), seed=st.integers(0, 2**32 - 1))
def test_outputs_are_convex_combinations_of_allowed_values(kernel, m, seed):
    q, k, v = _qkv(seed)
    out = _run_masked(kernel, q, k, v, m).transpose(0, 2, 1, 3)  # [B, N, T, H]
    allowed = _allowed(m)[..., None]  # [B, N, T, S, 1]
    v_heads = np.repeat(v, G, axis=2).transpose(0, 2, 1, 3)[:, :, None]  # [B, N, 1, S, H]
    lo = np.where(allowed, v_heads, np.inf).min(3)  # [B, N, T, H]
    hi = np.where(allowed, v_heads, -np.inf).max(3)
    empty = ~allowed[..., 0].any(-1)  # [B, N, T]
    assert np.all(out[empty] == 0), "a query with no allowed key must return zeros"
    tol = 1e-5
    assert np.all(out[~empty] >= lo[~empty] - tol)
    assert np.all(out[~empty] <= hi[~empty] + tol)


@pytest.mark.parametrize("kernel", list(KERNELS))
@SETTINGS
@given(m=maskings(), seed=st.integers(0, 2**32 - 1))
def test_gqa_equals_mha_with_repeated_heads(kernel, m, seed):
    q, k, v = _qkv(seed)
    gqa = _run_masked(kernel, q, k, v, m)
    k_rep, v_rep = jnp.repeat(k, G, axis=2), jnp.repeat(v, G, axis=2)  # [B, S, N, H]
    mha = _run_masked(kernel, q, k_rep, v_rep, m)
    np.testing.assert_allclose(gqa, mha, rtol=1e-5, atol=1e-5)
