"""Every registered model builds, initialises (abstractly) and runs; names are unique."""

import jax
import jax.numpy as jnp
import pytest
from model_examples import example_inputs

from zoo import registry


@pytest.mark.parametrize("name", registry.names())
def test_every_model_initialises_and_applies(name):
    model = registry.build(name)
    args, kwargs = example_inputs(model)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *args, **kwargs))
    assert jax.tree.leaves(variables["params"])
    out = jax.eval_shape(lambda v: model.apply(v, *args, **kwargs), variables)
    assert all(jnp.issubdtype(x.dtype, jnp.floating) for x in jax.tree.leaves(out))


def test_duplicate_names_and_unknown_fields_raise():
    name = registry.names()[0]
    entry = registry.get(name)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(name, entry.config, entry.module)
    with pytest.raises(ValueError, match="no_such_field"):
        registry.build(name, no_such_field=1)
    with pytest.raises(ValueError, match="unknown model"):
        registry.get("no_such_model")
