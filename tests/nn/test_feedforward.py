"""FeedForward against a numpy computation from its own params; dtypes, dropout, errors."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.nn import ACTIVATIONS, FeedForward

B, T, D, F = 2, 5, 8, 16


def _x(dtype=jnp.float32):
    return jax.random.normal(jax.random.key(0), (B, T, D)).astype(dtype)  # [B, T, D]


def _gelu(z):
    return 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


_NP_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "gelu": _gelu,
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "gelu_tanh": lambda z: 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi)
                                                    * (z + 0.044715 * z**3))),
}
_NP_ACTIVATIONS["swiglu"] = _NP_ACTIVATIONS["silu"]
_NP_ACTIVATIONS["geglu"] = _gelu


def _reference(p, x, activation):
    """The FFN in float64 numpy, from the module's own params."""
    x = np.asarray(x, np.float64)
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    h = _NP_ACTIVATIONS[activation](x @ p["wi"] + p["bi"])  # [B, T, F]
    if activation in ("swiglu", "geglu"):
        h = h * (x @ p["wi_lin"] + p["bi_lin"])  # [B, T, F]
    return h @ p["wo"] + p["bo"]  # [B, T, D]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_matches_manual_computation(activation):
    module = FeedForward(d_ff=F, activation=activation)
    x = _x()
    variables = module.init(jax.random.key(1), x)
    # Non-zero biases so they are checked too.
    params = jax.tree.map(lambda v: v + 0.1, nn.unbox(variables)["params"])
    out = module.apply({"params": params}, x)
    np.testing.assert_allclose(out, _reference(params, x, activation), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_shapes_dtypes_and_param_dtype(activation, dtype):
    module = FeedForward(d_ff=F, activation=activation, dtype=dtype)
    variables = module.init(jax.random.key(1), _x(dtype))
    out = module.apply(variables, _x(dtype))
    assert out.shape == (B, T, D) and out.dtype == dtype
    params = nn.unbox(variables)["params"]
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    gated = {"wi_lin", "bi_lin"} <= set(params)
    assert gated == ACTIVATIONS[activation].gated


def test_logical_axis_names():
    variables = FeedForward(d_ff=F, activation="geglu").init(jax.random.key(1), _x())
    spec = nn.get_partition_spec(variables)["params"]
    assert spec["wi"] == spec["wi_lin"] == jax.P("embed", "mlp")
    assert spec["wo"] == jax.P("mlp", "embed")
    assert spec["bi"] == jax.P("mlp") and spec["bo"] == jax.P("embed")


def test_no_bias():
    variables = FeedForward(d_ff=F, use_bias=False).init(jax.random.key(1), _x())
    assert set(variables["params"]) == {"wi", "wo"}


def test_dropout_only_when_not_deterministic():
    module = FeedForward(d_ff=F, dropout_rate=0.5)
    x = _x()
    variables = module.init(jax.random.key(1), x)
    plain = module.apply(variables, x)
    np.testing.assert_array_equal(module.apply(variables, x, deterministic=True), plain)
    rngs = {"dropout": jax.random.key(2)}
    dropped = module.apply(variables, x, deterministic=False, rngs=rngs)
    assert not np.allclose(dropped, plain)
    with pytest.raises(Exception, match="dropout"):  # flax: no 'dropout' rng given
        module.apply(variables, x, deterministic=False)


def test_bad_config_raises():
    with pytest.raises(ValueError, match=r"activation.*relu"):
        FeedForward(d_ff=F, activation="tanh")
    with pytest.raises(ValueError, match="d_ff"):
        FeedForward(d_ff=0)
    with pytest.raises(ValueError, match="dropout_rate"):
        FeedForward(d_ff=F, dropout_rate=1.0)
    with pytest.raises(ValueError, match="x must be"):
        FeedForward(d_ff=F).init(jax.random.key(0), jnp.ones((B, D)))
