"""The RNN encoder: source tokens -> every hidden state and the final state.

Glossary: B batch, S source length, E embed_dim, M memory width (the encoder
state width: encoder_hidden_dim x directions), L layers.

The final state of each layer is the state at each row's last real token
(`nn.RNN` with `seq_lengths`), so padding after a sentence changes neither it
nor the states at real positions. It is Sutskever et al.'s fixed-size context
vector and the decoder's starting point (through the bridge); the states at
every position are the memory that attention decoders read.

Source lengths must be >= 1: an empty row has no last token to take the
final state from.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.attention.masks import padding_mask
from zoo.nn.embed import Embed
from zoo.rnn.cells import Carry, RNNStack
from zoo.rnn.config import Seq2SeqConfig
from zoo.seq2seq import source_lengths


class EncoderOutput(NamedTuple):
    """Everything the decoder reads; every leaf has leading dim B (beam search tiles it)."""

    states: jax.Array  # [B, S, M] hidden state at every source position
    final: tuple[Carry, ...]  # one carry per layer, leaves [B, M]
    mask: jax.Array  # [B, S] bool, True on real (non-padding) source tokens


class Encoder(nn.Module):
    """Embedding -> L (bi)directional RNN layers over the padded source."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.embed = Embed(cfg.src_vocab_size, cfg.embed_dim, dtype=cfg.dtype,
                           param_dtype=cfg.param_dtype)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.stack = RNNStack(cfg.cell, cfg.num_layers, cfg.encoder_features,
                              bidirectional=cfg.bidirectional, dropout_rate=cfg.dropout_rate,
                              dtype=cfg.dtype, param_dtype=cfg.param_dtype)

    def __call__(self, src: jax.Array, src_lengths: jax.Array, *,
                 deterministic: bool = True) -> EncoderOutput:
        # src [B, S] int, src_lengths [B] int
        src_lengths = source_lengths(src, src_lengths)  # checked: ints in [1, S]
        x = self.embed(src)  # [B, S, E]
        x = self.dropout(x, deterministic=deterministic)
        states, final = self.stack(x, seq_lengths=src_lengths,
                                   deterministic=deterministic)  # [B, S, M]
        mask = padding_mask(src_lengths, src.shape[1])  # [B, S]
        # Zero the states past each row's end, so no score ever sees run-on values.
        states = jnp.where(mask[:, :, None], states, jnp.zeros((), states.dtype))  # [B, S, M]
        states = nn.with_logical_constraint(states, ("batch", "length", "mlp"))
        return EncoderOutput(states, final, mask)
