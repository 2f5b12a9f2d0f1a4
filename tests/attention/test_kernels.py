"""Every attention kernel equals the reference, in values and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.attention import blockwise_attention, dot_product_attention, pallas, reference_attention
from zoo.attention.api import _DEFAULTS
from zoo.attention.spec import check

B = 2
# (T, S, N, K): T != S, lengths that no block size divides, MHA / GQA / MQA.
SHAPES = {
    "mha_t_ne_s": (37, 53, 4, 4),
    "gqa": (40, 40, 4, 2),
    "mqa": (33, 33, 4, 1),
}


def _inputs(t, s, n, kh, h=16, dtype=jnp.float32, seed=0):
    ks = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(ks[0], (B, t, n, h), dtype)
    k = jax.random.normal(ks[1], (B, s, kh, h), dtype)
    v = jax.random.normal(ks[2], (B, s, kh, h), dtype)
    return q, k, v


def _case(name, t, s, n):
    """Attention options for case ``name`` at these sizes."""
    rng = np.random.default_rng(1)
    q_seg = np.sort(rng.integers(0, 3, (B, t)), axis=1)
    kv_seg = np.sort(rng.integers(0, 3, (B, s)), axis=1)
    cases = {
        "plain": {},
        "causal": dict(is_causal=True),
        "causal_offset": dict(is_causal=True, q_offset=7),
        "causal_batch_offsets": dict(is_causal=True, q_offset=jnp.array([0, 13])),
        "window": dict(local_window=(5, 3)),
        "causal_window": dict(is_causal=True, local_window=4),
        "lengths": dict(q_lengths=jnp.array([t, 9]), kv_lengths=jnp.array([11, s])),
        "empty_rows": dict(kv_lengths=jnp.array([0, s])),
        "segments": dict(segment_ids=(jnp.asarray(q_seg), jnp.asarray(kv_seg))),
        "bias": dict(bias=jnp.asarray(rng.normal(size=(1, n, t, s)), jnp.float32)),
        "dense_mask": dict(mask=jnp.asarray(rng.random((B, 1, t, s)) < 0.7)),
        "head_mask": dict(mask=jnp.asarray(rng.random((1, n, 1, s)) < 0.7)),
        "everything": dict(
            is_causal=True, q_offset=3, kv_lengths=jnp.array([s - 5, s]),
            segment_ids=(jnp.asarray(q_seg), jnp.asarray(kv_seg)),
            bias=jnp.asarray(rng.normal(size=(B, 1, t, s)), jnp.float32),
            mask=jnp.asarray(rng.random((B, n, t, s)) < 0.9),
        ),
    }
    return cases[name]


CASES = [
    "plain", "causal", "causal_offset", "causal_batch_offsets", "window", "causal_window",
    "lengths", "empty_rows", "segments", "bias", "dense_mask", "head_mask", "everything",
]

KERNELS = {
    "xla": functools.partial(dot_product_attention, implementation="xla"),
    "blockwise": functools.partial(dot_product_attention, implementation="blockwise"),
    "blockwise_small_blocks": functools.partial(blockwise_attention, block_q=8, block_k=16),
    "blockwise_uneven_blocks": functools.partial(blockwise_attention, block_q=16, block_k=7),
}


def _loss(fn, **opts):
    def loss(q, k, v, bias):
        if bias is not None:
            opts["bias"] = bias
        out = fn(q, k, v, **opts).astype(jnp.float32)
        weights = jnp.cos(jnp.arange(out.size, dtype=jnp.float32)).reshape(out.shape)
        return jnp.sum(out * weights)

    return loss


def _value_and_grads(fn, q, k, v, opts):
    """(output, gradients of a weighted sum of it w.r.t. q, k, v and the bias if any),
    compiled as one program per case."""
    opts = dict(opts)
    bias = opts.pop("bias", None)
    argnums = (0, 1, 2) if bias is None else (0, 1, 2, 3)

    @jax.jit
    def run(q, k, v, bias):
        return fn(q, k, v, bias=bias, **opts), jax.grad(_loss(fn, **opts), argnums)(q, k, v, bias)

    return run(q, k, v, bias)


@functools.cache
def _reference(shape, case, dtype):
    """The reference's output and gradients for one (shape, case, dtype), computed once and
    shared by every kernel compared with it."""
    t, s, n, kh = SHAPES[shape]
    q, k, v = _inputs(t, s, n, kh, dtype=dtype)
    return _value_and_grads(reference_attention, q, k, v, _case(case, t, s, n))


def _compare(kernel, q, k, v, opts, atol, grad_atol, want=None):
    """``kernel`` against the reference on q, k, v: values, then gradients. ``want`` is the
    reference's (output, gradients) when already computed."""
    want, g_want = want or _value_and_grads(reference_attention, q, k, v, opts)
    got, g_got = _value_and_grads(kernel, q, k, v, opts)
    assert got.shape == want.shape and got.dtype == q.dtype
    assert not jnp.any(jnp.isnan(got.astype(jnp.float32)))
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               atol=atol, rtol=atol)
    for name, a, b in zip("qkvb", g_got, g_want, strict=False):
        assert a.dtype == b.dtype, name
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                   atol=grad_atol, rtol=grad_atol, err_msg=f"d{name}")


def _float32_grid():
    """(kernel, shape, case) triples: every kernel meets every case and every shape, and
    every (shape, case) pair meets at least one kernel, on a Latin-square grid rather than
    the full cross product (the hypothesis properties in test_properties.py cover random
    combinations of masks, offsets and lengths on every kernel). 'everything', the case
    that combines all the masking options, runs on every shape for every kernel."""
    shapes = list(SHAPES)
    grid = []
    for i, kernel in enumerate(KERNELS):
        for j, case in enumerate(CASES):
            picked = shapes if case == "everything" else [shapes[(i + j) % len(shapes)]]
            grid += [(kernel, shape, case) for shape in picked]
    return grid


@pytest.mark.parametrize("kernel,shape,case", _float32_grid())
def test_kernel_matches_reference_float32(kernel, shape, case):
    t, s, n, kh = SHAPES[shape]
    q, k, v = _inputs(t, s, n, kh)
    _compare(KERNELS[kernel], q, k, v, _case(case, t, s, n), atol=2e-5, grad_atol=1e-4,
             want=_reference(shape, case, jnp.float32))


@pytest.mark.parametrize("case", ["plain", "causal_offset", "lengths", "segments", "everything"])
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_kernel_matches_reference_bfloat16(kernel, case):
    t, s, n, kh = SHAPES["gqa"]
    q, k, v = _inputs(t, s, n, kh, dtype=jnp.bfloat16)
    _compare(KERNELS[kernel], q, k, v, _case(case, t, s, n), atol=3e-2, grad_atol=6e-2,
             want=_reference("gqa", case, jnp.bfloat16))


def test_auto_picks_a_kernel_that_matches_reference():
    t, s, n, kh = SHAPES["gqa"]
    q, k, v = _inputs(t, s, n, kh)
    _compare(dot_product_attention, q, k, v, _case("everything", t, s, n), 2e-5, 1e-4)


def test_fully_masked_rows_are_zero_with_zero_gradients():
    q, k, v = _inputs(9, 12, 2, 2)
    opts = dict(kv_lengths=jnp.array([0, 12]))
    for kernel in KERNELS.values():
        out = kernel(q, k, v, **opts)
        assert jnp.all(out[0] == 0) and jnp.any(out[1] != 0)
        dq = jax.grad(lambda q, kernel=kernel: jnp.sum(kernel(q, k, v, **opts)))(q)
        assert jnp.all(dq[0] == 0) and jnp.all(jnp.isfinite(dq))


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_cache_offsets_equal_full_causal(kernel):
    """Decoding in chunks (query offset t0, keys up to t1) reproduces full causal rows."""
    t, _, n, kh = SHAPES["gqa"]
    q, k, v = _inputs(t, t, n, kh)
    full = reference_attention(q, k, v, is_causal=True)
    for t0, t1 in [(0, 1), (0, 13), (13, 14), (14, 31), (31, t)]:
        chunk = KERNELS[kernel](q[:, t0:t1], k, v, is_causal=True, q_offset=t0,
                                kv_lengths=jnp.full((B,), t1))
        np.testing.assert_allclose(chunk, full[:, t0:t1], atol=2e-5)


def test_reference_returns_weights():
    q, k, v = _inputs(5, 7, 4, 2)
    out, weights = reference_attention(q, k, v, is_causal=True, return_weights=True)
    assert weights.shape == (B, 4, 5, 7)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert jnp.all(jnp.triu(weights[0, 0], 1) == 0)
    v_heads = jnp.repeat(v, 2, axis=2)  # [B, S, N, H]
    np.testing.assert_allclose(jnp.einsum("BNTS,BSNH->BTNH", weights, v_heads), out, atol=1e-5)


def test_jit_with_traced_lengths_and_offsets():
    q, k, v = _inputs(20, 20, 2, 2)

    @jax.jit
    def run(kv_len, offset):
        return blockwise_attention(q, k, v, is_causal=True, q_offset=offset, kv_lengths=kv_len,
                                   block_q=8, block_k=8)

    for kv_len, offset in [([20, 5], [0, 0]), ([3, 20], [2, 0])]:
        kv_len, offset = jnp.array(kv_len), jnp.array(offset)
        want = reference_attention(q, k, v, is_causal=True, q_offset=offset, kv_lengths=kv_len)
        np.testing.assert_allclose(run(kv_len, offset), want, atol=2e-5)


# --- Pallas kernels, in interpret mode on CPU ---------------------------------------------

def _spec(q, k, v, **opts):
    return check(q, k, v, **{**_DEFAULTS, **opts})


PALLAS_CASES = {
    "pallas_gpu": (pallas.gpu_attention, ["plain", "causal", "self_segments"]),
    "pallas_tpu": (pallas.tpu_attention, ["plain", "causal", "self_segments", "lengths", "bias"]),
}


@pytest.mark.parametrize(
    "kernel,case", [(k, c) for k, (_, cases) in PALLAS_CASES.items() for c in cases]
)
@pytest.mark.parametrize("shape", [(40, 40, 4, 2), (37, 37, 2, 2)])
def test_pallas_interpret_matches_reference(kernel, case, shape):
    from jax.experimental.pallas import tpu as pltpu

    t, s, n, kh = shape
    q, k, v = _inputs(t, s, n, kh, h=16)
    seg = jnp.asarray(np.repeat(np.arange(3), [t // 3, t // 3, t - 2 * (t // 3)]))[None]
    opts = {
        "plain": {},
        "causal": dict(is_causal=True),
        "self_segments": dict(segment_ids=jnp.broadcast_to(seg, (B, t))),
        "lengths": dict(q_lengths=jnp.array([t, 9]), kv_lengths=jnp.array([11, s])),
        "bias": dict(bias=jax.random.normal(jax.random.key(3), (B, n, t, s))),
    }[case]
    fn = PALLAS_CASES[kernel][0]

    def run(q, k, v):
        return fn(q, k, v, _spec(q, k, v, **opts), interpret=True)

    want = reference_attention(q, k, v, **opts)
    if kernel == "pallas_tpu":
        # TPU interpret mode simulates the chip's memory with host callbacks that share
        # one global state; several of its kernels in flight at once (the backward pass
        # launches two) can deadlock on a loaded CPU, so only the forward is checked
        # here, compiled as one program and waited for.
        with pltpu.force_tpu_interpret_mode():
            got = jax.block_until_ready(jax.jit(run)(q, k, v))
        np.testing.assert_allclose(got, want, atol=2e-5)
        return
    np.testing.assert_allclose(run(q, k, v), want, atol=2e-5)
    g_got = jax.grad(lambda *a: jnp.sum(run(*a) ** 2), (0, 1, 2))(q, k, v)
    g_want = jax.grad(lambda *a: jnp.sum(reference_attention(*a, **opts) ** 2), (0, 1, 2))(q, k, v)
    for a, b in zip(g_got, g_want, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-4, rtol=2e-4)


def test_the_float32_grid_covers_every_kernel_shape_and_case():
    grid = _float32_grid()
    assert {(s, c) for _, s, c in grid} == {(s, c) for s in SHAPES for c in CASES}
    for kernel in KERNELS:
        assert {c for k, _, c in grid if k == kernel} == set(CASES), kernel
        assert {s for k, s, _ in grid if k == kernel} == set(SHAPES), kernel
