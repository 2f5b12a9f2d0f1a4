"""`auto`'s CPU rule picks the kernel measured fastest.

Each expectation below is read off a measurement, not derived from the rule: the committed
sweep benchmarks/results/attention.md (B=4, N=8, H=64) and, for float32 GQA, an A/B of `xla`
against `blockwise` after blockwise's backward was rebuilt (2026-12-03; times are `xla`'s over
`blockwise`'s, so above 1 means blockwise wins).
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
    # float32 GQA (K=2): fwd+bwd 1.65x (256), 1.02x (512), 1.27x (1024), 1.31x (2048)
    # non-causal; 1.03x (512) and 2.11x (2048) causal; the forward alone 1.4-4.2x
    ((256, 256, 8, 2, F32, {}), "blockwise"),
    ((512, 512, 8, 2, F32, {}), "blockwise"),
    ((2048, 2048, 8, 2, F32, {}), "blockwise"),
    ((512, 512, 8, 2, F32, dict(is_causal=True)), "blockwise"),
    ((2048, 2048, 8, 2, F32, dict(is_causal=True)), "blockwise"),
    # bfloat16 GQA: blockwise ahead in every cell (1.7-7.3x), causal or not
    ((512, 512, 8, 2, BF16, {}), "blockwise"),
    ((2048, 2048, 8, 2, BF16, dict(is_causal=True)), "blockwise"),
    # decoding: one query against cached keys, below the smallest measured cell: xla
    ((1, 2048, 8, 2, F32, dict(is_causal=True, q_offset=2047)), "xla"),
    ((1, 2048, 8, 8, F32, {}), "xla"),
    # and any call under 128 x 128 logits
    ((64, 64, 8, 8, F32, {}), "xla"),
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
