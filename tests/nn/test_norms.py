"""make_norm: flax LayerNorm / RMSNorm with logical axis names, chosen by name."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.nn import make_norm


class _Wrap(nn.Module):
    kind: str
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return make_norm(self.kind, dtype=self.dtype, name="norm")(x)


def _x():
    return 3.0 + 5.0 * jax.random.normal(jax.random.key(0), (2, 4, 16))  # [B, T, D]


def test_layernorm_normalises():
    variables = _Wrap("layernorm").init(jax.random.key(1), _x())
    out = _Wrap("layernorm").apply(variables, _x())
    np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(-1), 1.0, atol=1e-3)
    spec = nn.get_partition_spec(variables)["params"]["norm"]
    assert spec == {"scale": jax.P("embed"), "bias": jax.P("embed")}


def test_rmsnorm_normalises():
    variables = _Wrap("rmsnorm").init(jax.random.key(1), _x())
    out = _Wrap("rmsnorm").apply(variables, _x())
    np.testing.assert_allclose(jnp.sqrt(jnp.mean(out**2, axis=-1)), 1.0, atol=1e-3)
    assert nn.get_partition_spec(variables)["params"]["norm"] == {"scale": jax.P("embed")}


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
def test_dtypes(kind):
    module = _Wrap(kind, dtype=jnp.bfloat16)
    variables = module.init(jax.random.key(1), _x())
    assert module.apply(variables, _x()).dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nn.unbox(variables)))


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match=r"kind.*layernorm.*batchnorm"):
        make_norm("batchnorm", dtype=jnp.float32)
