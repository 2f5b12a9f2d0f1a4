"""TransformerConfig validation, presets in the registry, transformer_base's parameter count."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import registry
from zoo.transformer import PRESETS, DecoderLM, EncoderDecoder, TransformerConfig


@pytest.mark.parametrize("overrides,field", [
    (dict(d_model=30, num_heads=4), "d_model"),
    (dict(num_heads=4, num_kv_heads=3), "num_kv_heads"),
    (dict(dropout_rate=1.0), "dropout_rate"),
    (dict(attention_dropout_rate=-0.1), "attention_dropout_rate"),
    (dict(positional="alibi"), "positional"),
    (dict(norm_placement="sandwich"), "norm_placement"),
    (dict(norm="batchnorm"), "norm"),
    (dict(activation="tanh"), "activation"),
    (dict(remat="some"), "remat"),
    (dict(attention_implementation="flash9"), "attention_implementation"),
    (dict(src_vocab_size=10, share_embeddings=True), "share_embeddings"),
    (dict(num_encoder_layers=-1), "num_encoder_layers"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(d_model=36, num_heads=4, positional="rotary"), "rotary"),
    (dict(norm_epsilon=0.0), "norm_epsilon"),
    (dict(final_norm="yes"), "final_norm"),
    (dict(sinusoid_layout="halves"), "sinusoid_layout"),
])
def test_invalid_configs_name_the_field(overrides, field):
    base = dict(vocab_size=32, d_model=32, num_heads=4, d_ff=64)
    with pytest.raises(ValueError, match=field):
        TransformerConfig(**{**base, **overrides})


def test_config_is_frozen_and_presets_are_registered():
    config = registry.make_config("transformer_base")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 3
    for name, preset in PRESETS.items():
        entry = registry.get(name)
        assert entry.config == preset
        assert entry.module is (DecoderLM if preset.num_encoder_layers == 0 else EncoderDecoder)
    big = PRESETS["transformer_big"]
    assert (big.d_model, big.num_heads, big.d_ff, big.dropout_rate) == (1024, 16, 4096, 0.3)


def test_encoder_decoder_needs_an_encoder():
    model = EncoderDecoder(PRESETS["lm_tiny"])
    with pytest.raises(ValueError, match="num_encoder_layers"):
        model.init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32), jnp.zeros((1, 3), jnp.int32))


def _count(model, *inputs):
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))  # no allocation
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(shapes["params"])))


def test_transformer_base_parameter_count():
    # Hand count for d=512, F=2048, 6 + 6 layers, one 37,000-token table shared by source,
    # target and (tied) output projection; sinusoidal positions have no parameters:
    #   embeddings          37000 * 512                               = 18,944,000
    #   attention block     4 * (512 * 512 + 512)   (q, k, v, out)    =  1,050,624
    #   FFN                 512 * 2048 + 2048 + 2048 * 512 + 512      =  2,099,712
    #   LayerNorm           2 * 512                 (scale, bias)     =      1,024
    #   encoder layer       attention + FFN + 2 LayerNorms            =  3,152,384
    #   decoder layer       2 attentions + FFN + 3 LayerNorms         =  4,204,032
    #   total               18,944,000 + 6 * 3,152,384 + 6 * 4,204,032 = 63,082,496
    # The paper's Table 3 says 65M for base; ours is 63.1M. Its figure is rounded and
    # the paper does not state what it counted (tensor2tensor's version also has final
    # LayerNorms; a separate output projection would add 18.9M, so it is not that).
    model = registry.build("transformer_base")
    ids = jnp.zeros((1, 8), jnp.int32)
    assert _count(model, ids, ids) == 63_082_496
    # Untying the output projection adds one [D, V] matrix.
    untied = registry.build("transformer_base", tie_output_embedding=False)
    assert _count(untied, ids, ids) == 63_082_496 + 512 * 37000


def test_params_carry_logical_axis_names():
    model = registry.build("transformer_tiny", scan_layers=True)
    ids = jnp.zeros((1, 4), jnp.int32)
    specs = nn.get_partition_spec(jax.eval_shape(
        lambda: model.init(jax.random.key(0), ids, ids)))["params"]
    assert tuple(specs["embed"]["embedding"]) == ("vocab", "embed")
    layer = specs["decoder"]["layers"]
    assert tuple(layer["cross_attention"]["query"]["kernel"]) == (
        "layers", "embed", "heads", "head_dim")
    assert tuple(layer["ffn"]["wi"]) == ("layers", "embed", "mlp")
    assert tuple(layer["ffn_norm"]["scale"]) == ("layers", "embed")


def test_interop_options_add_exactly_their_params():
    """final_norm and output_bias add their params; the defaults keep today's models."""
    base = dict(vocab_size=32, d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1,
                num_decoder_layers=1, max_len=8)
    ids = jnp.zeros((1, 4), jnp.int32)

    def params(**overrides):
        model = EncoderDecoder(TransformerConfig(**base, **overrides))
        return nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), ids, ids)))[
            "params"]

    plain = params()
    assert "final_norm" not in plain["encoder"] and "output_bias" not in plain["decoder"]
    assert "final_norm" in params(norm_placement="pre")["encoder"]
    extra = params(final_norm=True, output_bias=True)
    assert "final_norm" in extra["encoder"] and "final_norm" in extra["decoder"]
    assert extra["decoder"]["output_bias"].shape == (32,)
    assert "final_norm" not in params(norm_placement="pre", final_norm=False)["decoder"]
