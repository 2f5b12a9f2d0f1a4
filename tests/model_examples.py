"""Example inputs for any registry model, and each preset at its smallest sizes.

Shared by the tests that build every model of ``zoo.registry`` (test_registry,
test_nnx): one definition of how each model family is called.
"""

import dataclasses

import jax
import jax.numpy as jnp

from zoo import registry
from zoo.generative import GAN, VAE
from zoo.rnn import Seq2Seq
from zoo.transformer import DecoderLM, EncoderDecoder


def example_inputs(model) -> tuple[tuple, dict]:
    """(args, kwargs) that ``model.init(key, *args, **kwargs)`` and ``apply`` take."""
    b, s, t = 2, 7, 5
    src = jnp.ones((b, s), jnp.int32)  # [B, S]
    tgt = jnp.ones((b, t), jnp.int32)  # [B, T]
    lengths = jnp.array([s, 3])  # [B]

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


def _data_shape(config, factor: int) -> tuple[int, ...]:
    """A small example shape: any for 'mlp'; Y and X divisible by ``factor`` for conv nets."""
    return (4,) if config.architecture == "mlp" else (factor, factor, 1)


TINY_VOCAB = 13  # every tiny model's vocabulary (source and target)

# Module class -> preset config -> overrides that keep the preset's structure (cell,
# attention, norms, architecture) with one layer of each kind, a few units wide.
_TINY = {
    Seq2Seq: lambda c: dict(src_vocab_size=TINY_VOCAB, tgt_vocab_size=TINY_VOCAB, num_layers=1,
                            embed_dim=4, hidden_dim=6,
                            encoder_hidden_dim=None if c.encoder_hidden_dim is None else 6),
    EncoderDecoder: lambda c: dict(vocab_size=TINY_VOCAB, d_model=8, num_heads=2, d_ff=16,
                                   max_len=16, num_kv_heads=c.num_kv_heads and 1,
                                   num_encoder_layers=1, num_decoder_layers=1),
    DecoderLM: lambda c: dict(vocab_size=TINY_VOCAB, d_model=8, num_heads=2, d_ff=16, max_len=16,
                              num_kv_heads=c.num_kv_heads and 1, num_decoder_layers=1),
    VAE: lambda c: dict(latent_dim=2, hidden_dims=(4,) * len(c.hidden_dims),
                        data_shape=_data_shape(c, 2 ** len(c.hidden_dims))),
    GAN: lambda c: dict(latent_dim=2, generator_dims=(4, 4), discriminator_dims=(4, 4),
                        data_shape=_data_shape(c, 4)),
}


def build_tiny(name: str):
    """Preset ``name`` at the smallest sizes of its structure."""
    entry = registry.get(name)
    overrides = _TINY[entry.module](entry.config)
    return entry.module(config=dataclasses.replace(entry.config, **overrides))
