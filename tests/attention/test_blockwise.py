"""The blockwise kernel on lengths that are, and are not, multiples of its block sizes.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads, H head dim.

Block-multiple lengths take the path that slices tiles straight from the
caller's [B, T, N, H] arrays; ragged lengths pad them first. Both must equal the
reference in values and gradients, with several blocks along each axis.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.attention import blockwise_attention, reference_attention

B, N, H = 2, 4, 8
BLOCK_Q, BLOCK_K = 8, 16
LENGTHS = {"multiple": (32, 48), "ragged": (30, 45)}  # (T, S): 4 x 3 blocks either way
TOL = {jnp.float32: (2e-5, 1e-4), jnp.bfloat16: (3e-2, 6e-2)}  # (values, gradients)


def _options(case, t, s):
    rng = np.random.default_rng(2)
    q_seg = np.sort(rng.integers(0, 3, (B, t)), axis=1)
    kv_seg = np.sort(rng.integers(0, 3, (B, s)), axis=1)
    return {
        "causal_segments": dict(is_causal=True, q_offset=s - t,
                                segment_ids=(jnp.asarray(q_seg), jnp.asarray(kv_seg))),
        "mask_bias_lengths": dict(
            mask=jnp.asarray(rng.random((B, 1, t, s)) < 0.8),
            bias=jnp.asarray(rng.normal(size=(1, N, t, s)), jnp.float32),
            kv_lengths=jnp.array([s - 9, s]),
        ),
    }[case]


def _run(fn, q, k, v, opts):
    """(output, gradients w.r.t. q, k, v) of a fixed weighted sum of the output."""
    def loss(q, k, v):
        out = fn(q, k, v, **opts).astype(jnp.float32)
        return jnp.sum(out * jnp.cos(jnp.arange(out.size, dtype=jnp.float32)).reshape(out.shape))

    return jax.jit(lambda q, k, v: (fn(q, k, v, **opts), jax.grad(loss, (0, 1, 2))(q, k, v)))(
        q, k, v)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("kv_heads", [2, 1], ids=["gqa", "mqa"])
@pytest.mark.parametrize("case", ["causal_segments", "mask_bias_lengths"])
@pytest.mark.parametrize("lengths", list(LENGTHS))
def test_blockwise_matches_reference_on_multiple_and_ragged_lengths(lengths, case, kv_heads,
                                                                    dtype):
    t, s = LENGTHS[lengths]
    ks = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(ks[0], (B, t, N, H), dtype)
    k = jax.random.normal(ks[1], (B, s, kv_heads, H), dtype)
    v = jax.random.normal(ks[2], (B, s, kv_heads, H), dtype)
    opts = _options(case, t, s)

    def kernel(q, k, v, **o):
        return blockwise_attention(q, k, v, block_q=BLOCK_Q, block_k=BLOCK_K, **o)

    got, g_got = _run(kernel, q, k, v, opts)
    want, g_want = _run(reference_attention, q, k, v, opts)
    atol, grad_atol = TOL[dtype]
    assert got.dtype == dtype
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               atol=atol, rtol=atol)
    for name, a, b in zip("qkv", g_got, g_want, strict=True):
        assert a.dtype == dtype, name
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                   atol=grad_atol, rtol=grad_atol, err_msg=f"d{name}")


def test_block_multiple_lengths_make_no_copy_of_q_k_v():
    """With T and S multiples of the blocks, the forward's scratch memory is a few tiles,
    well under a quarter of q (a transposed or padded copy of q, k or v would exceed it)."""
    t = s = 2048
    q = jnp.zeros((1, t, N, 64), jnp.float32)  # [B, T, N, H]
    kv = jnp.zeros((1, s, 2, 64), jnp.float32)  # [B, S, K, H]
    f = jax.jit(lambda q, k, v: blockwise_attention(q, k, v, block_q=32, block_k=64))
    temp = f.lower(q, kv, kv).compile().memory_analysis().temp_size_in_bytes
    assert temp < q.nbytes / 4, (temp, q.nbytes)
