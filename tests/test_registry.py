"""Every registered model builds, initialises (abstractly) and runs; names are unique."""

import jax
import jax.numpy as jnp
import pytest

from zoo import registry


def _inputs(model):
    from zoo.generative import GAN, VAE
    from zoo.rnn import Seq2Seq
    from zoo.transformer import DecoderLM, EncoderDecoder

    b, s, t = 2, 7, 5
    src = jnp.ones((b, s), jnp.int32)
    tgt = jnp.ones((b, t), jnp.int32)
    lengths = jnp.array([s, 3])

    def seq2seq():  # the one encoder-decoder interface (zoo.seq2seq)
        return (src, tgt), {"src_lengths": lengths}

    makers = {
        Seq2Seq: seq2seq,
        EncoderDecoder: seq2seq,
        DecoderLM: lambda: ((tgt,), {}),
        VAE: lambda: ((jnp.zeros((b, *model.config.data_shape)), jax.random.key(0)), {}),
        GAN: lambda: ((jnp.zeros((b, model.config.latent_dim)),
                       jnp.zeros((b, *model.config.data_shape))), {}),
    }
    return makers[type(model)]()


@pytest.mark.parametrize("name", registry.names())
def test_every_model_initialises_and_applies(name):
    model = registry.build(name)
    args, kwargs = _inputs(model)
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
