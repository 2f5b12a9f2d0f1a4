"""Mask builders against explicit loop definitions of the semantics in zoo/attention/masks.py.

Glossary: B batch, T query length, S key length, N query heads.
"""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from zoo.attention import masks

B, T, S = 3, 9, 13
RNG = np.random.default_rng(0)
Q_LENGTHS = np.array([9, 0, 4], np.int32)
KV_LENGTHS = np.array([13, 5, 0], np.int32)
BATCH_OFFSETS = np.array([0, 4, 11], np.int32)
Q_SEG = np.sort(RNG.integers(0, 3, (B, T)), axis=1).astype(np.int32)
KV_SEG = RNG.integers(0, 3, (B, S)).astype(np.int32)  # unsorted on purpose


def _loop_mask(t, s, *, is_causal=False, window=None, q_offset=0, q_lengths=None,
               kv_lengths=None, q_seg=None, kv_seg=None):
    """[B, T, S] bool, one (b, i, j) at a time."""
    out = np.zeros((B, t, s), bool)
    for b in range(B):
        offset = q_offset if isinstance(q_offset, int) else int(q_offset[b])
        for i in range(t):
            pos = offset + i
            for j in range(s):
                ok = True
                if is_causal:
                    ok = ok and j <= pos
                if window is not None:
                    left, right = window
                    ok = ok and j >= pos - left and (is_causal or j <= pos + right)
                if q_lengths is not None:
                    ok = ok and i < q_lengths[b]
                if kv_lengths is not None:
                    ok = ok and j < kv_lengths[b]
                if q_seg is not None:
                    ok = ok and q_seg[b, i] == kv_seg[b, j]
                out[b, i, j] = ok
    return out


def _full(x, shape):
    return np.broadcast_to(np.asarray(x), shape)


# --- padding, causal, local window, segments ------------------------------------------------

def test_padding_mask():
    lengths = np.array([0, 3, 7, 9])
    got = np.asarray(masks.padding_mask(jnp.asarray(lengths), 7))
    want = np.array([[i < n for i in range(7)] for n in lengths])
    assert got.shape == (4, 7) and got.dtype == bool
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("t,s", [(T, S), (S, T), (1, S), (T, T)])
@pytest.mark.parametrize("offset", [0, 3, 20])
def test_causal_mask_int_offset(t, s, offset):
    got = np.asarray(masks.causal_mask(t, s, q_offset=offset))
    assert got.shape == (1, 1, t, s)
    want = [[j <= offset + i for j in range(s)] for i in range(t)]
    np.testing.assert_array_equal(got[0, 0], want)


def test_causal_mask_per_batch_offsets():
    got = np.asarray(masks.causal_mask(T, S, q_offset=jnp.asarray(BATCH_OFFSETS)))
    assert got.shape == (B, 1, T, S)
    np.testing.assert_array_equal(
        got[:, 0], _loop_mask(T, S, is_causal=True, q_offset=BATCH_OFFSETS))


@pytest.mark.parametrize("window,normalized", [(0, (0, 0)), (2, (2, 2)), ((3, 1), (3, 1)),
                                               ((0, 4), (0, 4)), ([1, 0], (1, 0))])
@pytest.mark.parametrize("offset", [0, 5])
def test_local_window_mask_int_offset(window, normalized, offset):
    got = np.asarray(masks.local_window_mask(T, S, window, q_offset=offset))
    assert got.shape == (1, 1, T, S)
    left, right = normalized
    want = [[offset + i - left <= j <= offset + i + right for j in range(S)] for i in range(T)]
    np.testing.assert_array_equal(got[0, 0], want)


@pytest.mark.parametrize("window", [2, (3, 1)])
def test_local_window_mask_per_batch_offsets(window):
    got = np.asarray(masks.local_window_mask(T, S, window, q_offset=jnp.asarray(BATCH_OFFSETS)))
    assert got.shape == (B, 1, T, S)
    np.testing.assert_array_equal(
        got[:, 0],
        _loop_mask(T, S, window=masks.normalize_window(window), q_offset=BATCH_OFFSETS))


def test_segment_mask():
    got = np.asarray(masks.segment_mask(jnp.asarray(Q_SEG), jnp.asarray(KV_SEG)))
    assert got.shape == (B, 1, T, S)
    np.testing.assert_array_equal(got[:, 0], _loop_mask(T, S, q_seg=Q_SEG, kv_seg=KV_SEG))


# --- structural_mask: every combination, whole and in blocks --------------------------------

OPTIONS = {
    "causal": dict(is_causal=True),
    "window": dict(window=(2, 3)),
    "offset": dict(q_offset=BATCH_OFFSETS),
    "lengths": dict(q_lengths=Q_LENGTHS, kv_lengths=KV_LENGTHS),
    "segments": dict(q_seg=Q_SEG, kv_seg=KV_SEG),
}
COMBOS = [c for r in range(len(OPTIONS) + 1) for c in itertools.combinations(OPTIONS, r)]
# (query rows, key columns) sub-ranges, including ones that are not aligned to anything.
BLOCKS = [(slice(0, T), slice(0, S)), (slice(0, 4), slice(4, 12)), (slice(3, 9), slice(0, 5)),
          (slice(7, 8), slice(12, 13))]


def _structural(q_rows: slice, k_cols: slice, opts):
    """masks.structural_mask on a block, with the loop-definition keywords of ``opts``."""
    q_seg, kv_seg = opts.get("q_seg"), opts.get("kv_seg")
    return masks.structural_mask(
        jnp.arange(T)[q_rows],
        jnp.arange(S)[k_cols],
        is_causal=opts.get("is_causal", False),
        local_window=opts.get("window"),
        q_offset=jnp.asarray(opts.get("q_offset", 0)),
        q_lengths=None if "q_lengths" not in opts else jnp.asarray(opts["q_lengths"]),
        kv_lengths=None if "kv_lengths" not in opts else jnp.asarray(opts["kv_lengths"]),
        q_segment_ids=None if q_seg is None else jnp.asarray(q_seg[:, q_rows]),
        kv_segment_ids=None if kv_seg is None else jnp.asarray(kv_seg[:, k_cols]),
    )


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "+".join(c) or "none")
def test_structural_mask_combinations_and_blocks(combo):
    opts = {key: value for name in combo for key, value in OPTIONS[name].items()}
    want = _loop_mask(T, S, **opts)  # [B, T, S]
    for q_rows, k_cols in BLOCKS:
        got = _structural(q_rows, k_cols, opts)
        if not (set(combo) - {"offset"}):  # nothing that masks: an offset alone is moot
            assert got is None
            continue
        got = np.asarray(got)
        block = want[:, q_rows, k_cols]
        assert got.ndim == 3 and got.shape[0] in (1, B) and got.shape[1:] == block.shape[1:]
        np.testing.assert_array_equal(_full(got, block.shape), block,
                                      err_msg=f"block {q_rows}, {k_cols}")


def test_structural_mask_int_offset_keeps_batch_dim_one():
    got = masks.structural_mask(jnp.arange(T), jnp.arange(S), is_causal=True,
                                local_window=(1, 1), q_offset=4)
    assert got.shape == (1, T, S)
    np.testing.assert_array_equal(_full(got, (B, T, S)),
                                  _loop_mask(T, S, is_causal=True, window=(1, 1), q_offset=4))


# --- combine_masks, normalize_window ------------------------------------------------------------

def test_combine_masks_none_handling():
    m = jnp.asarray(RNG.random((B, 1, T, S)) < 0.5)
    assert masks.combine_masks() is None
    assert masks.combine_masks(None, None) is None
    np.testing.assert_array_equal(masks.combine_masks(None, m, None), m)


@pytest.mark.parametrize("shapes", [
    [(B, 1, T, S), (1, 4, 1, S)],
    [(B, 1, T, S), (T, S)],  # different ranks: leading dims are added
    [(1, 1, T, 1), (B, 4, 1, S), (B, 1, T, S)],
])
def test_combine_masks_broadcasts(shapes):
    parts = [RNG.random(shape) < 0.7 for shape in shapes]
    out_shape = np.broadcast_shapes(*shapes)
    got = masks.combine_masks(*(jnp.asarray(p) for p in parts))
    assert got.shape == out_shape and got.dtype == jnp.bool_
    want = np.ones(out_shape, bool)
    for index in np.ndindex(*out_shape):
        for p in parts:
            sub = index[len(index) - p.ndim:]
            want[index] &= p[tuple(0 if d == 1 else i for i, d in zip(sub, p.shape, strict=True))]
    np.testing.assert_array_equal(got, want)


def test_combine_masks_rejects_incompatible_shapes():
    with pytest.raises(ValueError):
        masks.combine_masks(jnp.ones((2, T, S), bool), jnp.ones((3, T, S), bool))


@pytest.mark.parametrize("window,want", [
    (None, None), (0, (0, 0)), (5, (5, 5)), ((2, 7), (2, 7)), ([3, 0], (3, 0)),
])
def test_normalize_window(window, want):
    got = masks.normalize_window(window)
    assert got == want
    assert got is None or all(type(w) is int for w in got)


@pytest.mark.parametrize("window", [-1, (-1, 2), (2, -1), (1, 2, 3), (1,), 2.0, (1.0, 2),
                                    True, (True, 1), "2"])
def test_normalize_window_rejects(window):
    with pytest.raises(ValueError, match="local_window"):
        masks.normalize_window(window)
