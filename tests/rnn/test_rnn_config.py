"""Seq2SeqConfig validation: every bad field raises ValueError naming it; presets are valid."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from zoo import registry
from zoo.rnn import PAPER_CONFIGS, PRESETS, Seq2Seq, Seq2SeqConfig


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(cell="lstmx"), "cell"),
        (dict(cell="LSTM"), "cell"),
        (dict(attention="bilinear"), "attention"),
        (dict(style="vaswani", attention="dot"), "style"),
        (dict(bridge="mean"), "bridge"),
        (dict(num_layers=0), "num_layers"),
        (dict(num_layers=1.5), "num_layers"),
        (dict(num_layers=True), "num_layers"),
        (dict(hidden_dim=0), "hidden_dim"),
        (dict(embed_dim=-1), "embed_dim"),
        (dict(src_vocab_size=0), "src_vocab_size"),
        (dict(tgt_vocab_size=0), "tgt_vocab_size"),
        (dict(encoder_hidden_dim=0), "encoder_hidden_dim"),
        (dict(attention="concat", attention_hidden=0), "attention_hidden"),
        (dict(dropout_rate=1.0), "dropout_rate"),
        (dict(dropout_rate=-0.1), "dropout_rate"),
        (dict(dtype=jnp.int32), "dtype"),
        (dict(param_dtype="float64x"), "param_dtype"),
        (dict(bidirectional=1), "bidirectional"),
        # Width mismatches for the scores that compare states directly.
        (dict(attention="dot", encoder_hidden_dim=32, bridge="dense"), "attention='dot'"),
        (dict(attention="scaled_dot", bidirectional=True, encoder_hidden_dim=64,
              bridge="dense"), "attention='scaled_dot'"),
        # The copy bridge needs the encoder's final state to fit the decoder.
        (dict(encoder_hidden_dim=32), "bridge='copy'"),
        (dict(bidirectional=True, encoder_hidden_dim=64), "bridge='copy'"),
        (dict(bidirectional=True, hidden_dim=63), "hidden_dim"),
        # Input feeding is a Luong-attention option.
        (dict(input_feeding=True), "input_feeding"),
        (dict(input_feeding=True, attention="additive", style="bahdanau"), "input_feeding"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"Seq2SeqConfig.{field}"):
        Seq2SeqConfig(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attention="general", encoder_hidden_dim=32, bridge="dense"),
        dict(attention="concat", bidirectional=True, encoder_hidden_dim=64, bridge="dense"),
        dict(attention="dot", bidirectional=True),  # each direction gets hidden_dim // 2
        dict(attention="additive", style="bahdanau", dtype="bfloat16"),
    ],
)
def test_valid_mixed_widths(overrides):
    Seq2SeqConfig(**overrides)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Seq2SeqConfig().hidden_dim = 3  # type: ignore[misc]


def test_presets_registered_and_buildable():
    assert set(PRESETS) <= set(registry.names())
    model = registry.build("seq2seq_bahdanau_gru", src_vocab_size=11, tgt_vocab_size=13)
    assert isinstance(model, Seq2Seq) and model.config.decoder_kind == "bahdanau"
    assert registry.build("seq2seq_luong_lstm").config.decoder_kind == "luong_feeding"
    assert registry.build("seq2seq_plain_rnn").config.cell == "rnn"
    with pytest.raises(ValueError, match="Seq2SeqConfig.num_layers"):
        registry.build("seq2seq_plain_lstm", num_layers=0)


def _param_count(config):
    src = jnp.zeros((1, 3), jnp.int32)
    shapes = jax.eval_shape(lambda: Seq2Seq(config).init(
        jax.random.key(0), src, src, src_lengths=jnp.ones((1,), jnp.int32)))
    return sum(x.size for x in jax.tree.leaves(shapes))


def test_sutskever_paper_size():
    # "The resulting LSTM has 384M parameters" (Sutskever et al., 2014, sec. 3.4):
    # embeddings 160k*1000 + 80k*1000, 8 LSTM layers of 4*(1000+1000+1)*1000,
    # softmax 1000*80k + 80k bias.
    assert _param_count(PAPER_CONFIGS["sutskever2014"]) == 384_112_000
