"""Positional encodings against independent loops, and rotary's defining properties."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.nn import (
    POSITIONAL,
    LearnedPositionalEmbedding,
    SinusoidalEmbedding,
    apply_rotary,
    sinusoidal_table,
)


def _table_by_loops(length, d, base=10000.0):
    table = np.zeros((length, d))
    for pos in range(length):
        for i in range((d + 1) // 2):
            angle = pos / base ** (2 * i / d)
            table[pos, 2 * i] = math.sin(angle)
            if 2 * i + 1 < d:
                table[pos, 2 * i + 1] = math.cos(angle)
    return table


@pytest.mark.parametrize("length,d", [(50, 16), (7, 5), (3, 1)])
def test_sinusoidal_table_matches_paper_formula(length, d):
    table = sinusoidal_table(length, d)
    assert table.shape == (length, d) and table.dtype == np.float32
    np.testing.assert_allclose(table, _table_by_loops(length, d), atol=1e-6)


def test_sinusoidal_table_rejects_bad_width():
    with pytest.raises(ValueError, match="d must be"):
        sinusoidal_table(4, 0)
    with pytest.raises(ValueError, match="layout must be one of"):
        sinusoidal_table(4, 4, layout="halves")


@pytest.mark.parametrize("d", [8, 5])
def test_concat_layout_is_all_sines_then_all_cosines(d):
    loops = _table_by_loops(12, d)
    table = sinusoidal_table(12, d, layout="concat")
    sines, cosines = (d + 1) // 2, d // 2
    np.testing.assert_allclose(table[:, :sines], loops[:, 0::2], atol=1e-6)
    np.testing.assert_allclose(table[:, sines:], loops[:, 1::2], atol=1e-6)
    assert cosines == table.shape[1] - sines


def test_sinusoidal_embedding_looks_up_table_rows():
    positions = np.array([[0, 1, 2, 9], [3, 3, 0, 5]])  # [B, T]
    module = SinusoidalEmbedding(max_len=10, features=6)
    variables = module.init(jax.random.key(0), positions)
    assert not variables.get("params")
    out = module.apply(variables, positions)  # [B, T, D]
    np.testing.assert_allclose(out, sinusoidal_table(10, 6)[positions], atol=1e-6)
    # Traced positions go through the same path.
    jitted = jax.jit(lambda p: module.apply(variables, p))(jnp.asarray(positions))
    np.testing.assert_allclose(jitted, out, atol=1e-6)


def test_learned_embedding_params_and_lookup():
    positions = np.array([[0, 1, 2], [4, 4, 0]])  # [B, T]
    module = LearnedPositionalEmbedding(max_len=5, features=8, dtype=jnp.bfloat16)
    variables = module.init(jax.random.key(0), positions)
    table = nn.unbox(variables)["params"]["embedding"]
    assert table.shape == (5, 8) and table.dtype == jnp.float32
    assert nn.get_partition_spec(variables)["params"]["embedding"] == jax.P(None, "embed")
    out = module.apply(variables, positions)
    assert out.shape == (2, 3, 8) and out.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        out.astype(jnp.float32), table.astype(jnp.bfloat16).astype(jnp.float32)[positions]
    )


def test_registry_names():
    assert POSITIONAL == {"sinusoidal": SinusoidalEmbedding, "learned": LearnedPositionalEmbedding}


@pytest.mark.parametrize("cls", [SinusoidalEmbedding, LearnedPositionalEmbedding])
def test_positions_are_validated(cls):
    module = cls(max_len=4, features=2)
    good = np.zeros((1, 2), np.int32)
    variables = module.init(jax.random.key(0), good)
    with pytest.raises(ValueError, match=r"positions.*max_len"):
        module.apply(variables, np.array([[0, 4]]))
    with pytest.raises(ValueError, match="positions"):
        module.apply(variables, np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="positions"):
        module.apply(variables, np.array([0, 1]))
    with pytest.raises(TypeError, match="positions"):
        module.apply(variables, np.array([[0.0, 1.0]]))
    # Traced out-of-range positions cannot raise; they must not read a real row.
    out = jax.jit(lambda p: module.apply(variables, p))(jnp.array([[4, -1]]))
    assert np.isnan(out).all()
    with pytest.raises(ValueError, match="max_len"):
        cls(max_len=0, features=2)


def _rotary_inputs(b=2, t=6, n=3, h=8, seed=0):
    kx, kp = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (b, t, n, h))  # [B, T, N, H]
    positions = jax.random.randint(kp, (b, t), 0, 1000)  # [B, T]
    return x, positions


def test_rotary_preserves_norms_and_dtype():
    x, positions = _rotary_inputs()
    out = apply_rotary(x, positions)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_allclose(
        jnp.linalg.norm(out, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5
    )
    assert apply_rotary(x.astype(jnp.bfloat16), positions).dtype == jnp.bfloat16


def test_rotary_position_zero_is_identity():
    x, _ = _rotary_inputs()
    np.testing.assert_allclose(apply_rotary(x, jnp.zeros(x.shape[:2], jnp.int32)), x)


@pytest.mark.parametrize("m,n,c", [(0, 5, 3), (7, 2, 100), (11, 11, 40)])
def test_rotary_scores_depend_only_on_offset(m, n, c):
    x, _ = _rotary_inputs(b=1, t=2, n=1, h=16, seed=1)
    q, k = x[:, :1], x[:, 1:]  # [1, 1, 1, H] each

    def score(pq, pk):
        rq = apply_rotary(q, jnp.full((1, 1), pq))
        rk = apply_rotary(k, jnp.full((1, 1), pk))
        return jnp.einsum("BTNH,BSNH->", rq, rk)

    np.testing.assert_allclose(score(m, n), score(m + c, n + c), rtol=1e-4, atol=1e-4)
    if m != n:  # sanity: the positions do matter
        assert not np.isclose(score(m, n), score(m, m), atol=1e-3)


def test_rotary_rotates_half_pairs():
    # One pair (i, i + H/2) with i = 0 has frequency 1: angle = position.
    x = jnp.zeros((1, 1, 1, 4)).at[..., 0].set(1.0)
    out = apply_rotary(x, jnp.full((1, 1), 0.5))
    np.testing.assert_allclose(out[0, 0, 0], [math.cos(0.5), 0.0, math.sin(0.5), 0.0], atol=1e-6)


def test_rotary_rejects_odd_head_dim_and_bad_positions():
    with pytest.raises(ValueError, match="head dim"):
        apply_rotary(jnp.ones((1, 2, 1, 5)), jnp.zeros((1, 2), jnp.int32))
    with pytest.raises(ValueError, match="positions"):
        apply_rotary(jnp.ones((1, 2, 1, 4)), jnp.zeros((1, 3), jnp.int32))
