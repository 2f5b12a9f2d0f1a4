"""`auto`'s CPU rule picks the kernel the committed sweep measured fastest.

Each expectation below is read off benchmarks/results/attention.md (2026-11-27; B=4, N=8,
H=64; ratios are the loser's time over the winner's), not derived from the rule; a training
step (forward+backward) decides where forward and forward+backward disagree.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.attention import dot_product_attention, reference_attention, resolve_implementation
from zoo.attention.api import _DEFAULTS
from zoo.attention.spec import check

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU rule")

F32, BF16 = jnp.float32, jnp.bfloat16

# (T, S, N, K, dtype, options) -> kernel, with the measurement that decides it
EXPECTED = [
    # MHA below 512 x 512 logits: blockwise 1.24x (fwd) and 1.33x (fwd+bwd) ahead, causal T=128
    ((128, 128, 8, 8, F32, dict(is_causal=True)), "blockwise"),
    # 1.16x ahead in fwd+bwd, level (1%) in fwd, non-causal T=256
    ((256, 256, 8, 8, F32, {}), "blockwise"),
    # 2-4.4x ahead at T=S=2048, both ways
    ((2048, 2048, 8, 8, F32, {}), "blockwise"),
    ((2048, 2048, 8, 8, F32, dict(is_causal=True)), "blockwise"),
    # float32 GQA fwd+bwd: xla 1.49x ahead at 512 and 1.28x at 2048 non-causal, 1.31x causal 512
    ((512, 512, 8, 2, F32, {}), "xla"),
    ((2048, 2048, 8, 2, F32, {}), "xla"),
    ((512, 512, 8, 2, F32, dict(is_causal=True)), "xla"),
    # ... but blockwise 1.48x ahead causal at 2048 (and 1.40x at 1024, re-timed 2026-12-03)
    ((2048, 2048, 8, 2, F32, dict(is_causal=True)), "blockwise"),
    ((1024, 1024, 8, 2, F32, dict(is_causal=True)), "blockwise"),
    # bfloat16 GQA: blockwise ahead in every cell (1.7-7.3x), causal or not
    ((512, 512, 8, 2, BF16, {}), "blockwise"),
    ((2048, 2048, 8, 2, BF16, dict(is_causal=True)), "blockwise"),
    # MQA is grouped attention too (K=1 < N)
    ((512, 512, 8, 1, F32, {}), "xla"),
    # past the largest measured float32 GQA cell, xla's T x S logits only grow: blockwise
    ((4096, 4096, 8, 2, F32, {}), "blockwise"),
    # decoding: one query against cached keys, below the smallest measured cell: xla
    ((1, 2048, 8, 2, F32, dict(is_causal=True, q_offset=2047)), "xla"),
    ((1, 2048, 8, 8, F32, {}), "xla"),
]


def _shapes(t, s, n, kh, dtype, h=64, b=4):
    q = jax.ShapeDtypeStruct((b, t, n, h), dtype)  # [B, T, N, H]
    kv = jax.ShapeDtypeStruct((b, s, kh, h), dtype)  # [B, S, K, H]
    return q, kv


@pytest.mark.parametrize(("case", "want"), EXPECTED, ids=lambda x: str(x)[:60])
def test_cpu_rule_picks_the_measured_winner(case, want):
    *shape, dtype, options = case
    q, kv = _shapes(*shape, dtype)
    spec = check(q, kv, kv, **{**_DEFAULTS, **options})
    assert resolve_implementation(None, q, kv, spec) == want
    assert resolve_implementation("auto", q, kv, spec) == want


def test_local_window_counts_as_causal():
    """A window skips key blocks in blockwise as causal does (float32 GQA, T=S=1024)."""
    q, kv = _shapes(1024, 1024, 8, 2, F32)
    full = check(q, kv, kv, **_DEFAULTS)
    windowed = check(q, kv, kv, **{**_DEFAULTS, "local_window": 128})
    assert resolve_implementation(None, q, kv, full) == "xla"
    assert resolve_implementation(None, q, kv, windowed) == "blockwise"


def test_auto_on_the_blockwise_side_matches_reference():
    """Causal MHA at T=S=128 now runs blockwise: values and gradients equal the reference's."""
    ks = jax.random.split(jax.random.key(3), 4)
    q = jax.random.normal(ks[0], (1, 128, 2, 8))  # [B, T, N, H]
    k = jax.random.normal(ks[1], (1, 128, 2, 8))  # [B, S, K, H]
    v = jax.random.normal(ks[2], (1, 128, 2, 8))  # [B, S, K, H]
    cot = jax.random.normal(ks[3], q.shape)  # [B, T, N, H]
    spec = check(q, k, v, **{**_DEFAULTS, "is_causal": True})
    assert resolve_implementation(None, q, k, spec) == "blockwise"

    def value_and_grads(fn):
        def loss(q, k, v):
            out = fn(q, k, v, is_causal=True)  # [B, T, N, H]
            return jnp.sum(out * cot), out
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(q, k, v)

    (_, got), got_grads = value_and_grads(dot_product_attention)
    (_, want), want_grads = value_and_grads(reference_attention)
    np.testing.assert_allclose(got, want, atol=2e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)
