"""Embed lookup / tied attend against manual computations, and token-id checks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.nn import Embed, check_token_ids

V, D = 11, 8
IDS = np.array([[0, 3, 10, 3], [7, 1, 0, 2]])  # [B, T]


def _init(**kwargs):
    module = Embed(num_embeddings=V, features=D, **kwargs)
    return module, module.init(jax.random.key(0), IDS)


def test_lookup_equals_table_rows():
    module, variables = _init()
    table = np.asarray(nn.unbox(variables)["params"]["embedding"])  # [V, D]
    assert table.shape == (V, D) and table.dtype == np.float32
    np.testing.assert_allclose(module.apply(variables, IDS), table[IDS])


def test_scale_by_sqrt_dim():
    module, variables = _init(scale_by_sqrt_dim=True)
    table = np.asarray(nn.unbox(variables)["params"]["embedding"])
    np.testing.assert_allclose(module.apply(variables, IDS), table[IDS] * np.sqrt(D), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_attend_is_tied_and_float32(dtype):
    module, variables = _init(dtype=dtype)
    x = jax.random.normal(jax.random.key(1), (2, 3, D))  # [B, T, D]
    logits = module.apply(variables, x, method=Embed.attend)  # [B, T, V]
    assert logits.shape == (2, 3, V) and logits.dtype == jnp.float32
    table = np.asarray(nn.unbox(variables)["params"]["embedding"], np.float64)
    tol = 1e-5 if dtype == jnp.float32 else 5e-2
    np.testing.assert_allclose(logits, np.asarray(x, np.float64) @ table.T, rtol=tol, atol=tol)
    # Same table as the lookup: a changed table changes both.
    bumped = jax.tree.map(lambda t: t + 1.0, nn.unbox(variables))
    np.testing.assert_allclose(
        module.apply(bumped, x, method=Embed.attend),
        np.asarray(x, np.float64) @ (table + 1.0).T,
        rtol=tol,
        atol=tol,
    )
    assert set(variables["params"]) == {"embedding"}


def test_init_scale_and_logical_axes():
    variables = Embed(num_embeddings=1000, features=64).init(jax.random.key(0), IDS)
    table = nn.unbox(variables)["params"]["embedding"]
    assert abs(float(jnp.std(table)) - 64**-0.5) < 0.01
    assert nn.get_partition_spec(variables)["params"]["embedding"] == jax.P("vocab", "embed")


def test_bad_ids_raise_naming_ids():
    module, variables = _init()
    with pytest.raises(ValueError, match=r"ids.*vocab_size.*11"):
        module.apply(variables, np.array([[0, V]]))
    with pytest.raises(ValueError, match="ids"):
        module.apply(variables, np.array([[-1, 0]]))
    with pytest.raises(TypeError, match="ids"):
        module.apply(variables, np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="ids"):
        module.apply(variables, np.array([0, 1]))
    # Under jit the values are unknown: out-of-range ids give NaN rows, never a real row.
    out = jax.jit(lambda i: module.apply(variables, i))(jnp.array([[V, -1, 2]]))
    assert np.isnan(out[0, :2]).all() and not np.isnan(out[0, 2]).any()


def test_check_token_ids_helper():
    check_token_ids(np.array([0, 4]), 5)
    check_token_ids(np.zeros((0,), np.int32), 5)
    with pytest.raises(ValueError, match=r"targets.*\[0, 5\)"):
        check_token_ids(np.array([[5]]), 5, name="targets")
    with pytest.raises(TypeError, match="targets"):
        check_token_ids(np.array([True]), 5, name="targets")
    jax.jit(lambda i: check_token_ids(i, 5) or i)(jnp.array([9]))  # traced: dtype only


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="num_embeddings"):
        Embed(num_embeddings=0, features=D)
    with pytest.raises(ValueError, match="features"):
        Embed(num_embeddings=V, features=-1)
