"""Example inputs for any registry model, and each preset at its smallest sizes.

Shared by the tests that build every model of ``zoo.registry`` (test_registry,
test_nnx): one definition of how each model family is called.
"""

import dataclasses

import jax
import jax.numpy as jnp

from zoo import registry
from zoo.generative import DDPM, EBM, GAN, VAE, Classifier, PixelCNN, RealNVP
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
        EBM: lambda: ((jnp.zeros((b, *model.config.data_shape)),), {}),
        RealNVP: lambda: ((jnp.full((b, *model.config.data_shape), 0.5),), {}),
        Classifier: lambda: ((jnp.zeros((b, *model.config.data_shape)),), {}),
        PixelCNN: lambda: ((jnp.zeros((b, *model.config.data_shape)),), {}),
        DDPM: lambda: ((jnp.zeros((b, *model.config.data_shape)),
                        jnp.array([0, model.config.timesteps - 1])), {}),  # x_t, t [B]
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
    EBM: lambda c: dict(hidden_dims=(4,) * len(c.hidden_dims), buffer_size=4),
    RealNVP: lambda c: dict(data_shape=(4, 4, 1), hidden_channels=4, couplings_per_scale=1,
                            final_couplings=1, num_res_blocks=1),
    Classifier: lambda c: dict(data_shape=(4, 4, 1), channels=(2, 3), feature_dim=4),
    PixelCNN: lambda c: dict(channels=4, num_layers=2, first_kernel_size=3, data_shape=(4, 4, 1)),
    DDPM: lambda c: dict(timesteps=10, base_channels=4, norm_groups=2, num_res_blocks=1,
                         data_shape=(2 ** (len(c.channel_mults) - 1),) * 2 + (1,)),
}


def build_tiny(name: str):
    """Preset ``name`` at the smallest sizes of its structure."""
    entry = registry.get(name)
    overrides = _TINY[entry.module](entry.config)
    return entry.module(config=dataclasses.replace(entry.config, **overrides))
