"""The Bahdanau-style attention decoder: attend with s_{t-1}, feed the context in.

Glossary: B batch, T target length, S source length, E embed_dim, R hidden_dim,
M memory width, V tgt_vocab_size.

Bahdanau, Cho, Bengio. Neural Machine Translation by Jointly Learning to Align
and Translate. ICLR 2015. arXiv:1409.0473. At step t, with the previous state
s_{t-1} (top layer's output; s_0 from the bridge) and encoder states h_i:

    e_t,i   = score(s_{t-1}, h_i)     additive v . tanh(W s + U h) in the paper (eq. 6)
    alpha_t = softmax over the real source positions                       (eq. 6)
    c_t     = sum_i alpha_t,i h_i                                           (eq. 5)
    s_t     = f(s_{t-1}, [E y_{t-1}; c_t])  the context enters the RNN input (eq. 4)
    s~_t    = tanh(W_o [s_t; c_t; E y_{t-1}])   readout, g(y_{t-1}, s_t, c_t) (eq. 4)
    p(y_t)  = softmax(W_y s~_t)

Departures from the paper, kept small on purpose (README, "Where zoo departs
from the papers"): the readout uses tanh rather than maxout (appendix A.2.2);
the GRU (cell='gru', both Bahdanau presets) is flax's reset-after GRUCell,
r * (U s_{t-1} + b), where appendix A.1.1 resets before the matmul,
U [r o s_{t-1}]; any score of zoo.attention.SCORES may replace the additive one
(the presets use additive).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.attention.scores import attend, make_score
from zoo.rnn.cells import Carry, CellStack, hidden_of
from zoo.rnn.config import Seq2SeqConfig
from zoo.rnn.decoder import (
    DecoderCarry,
    DecoderOutput,
    check_tokens,
    embed_target,
    scan_steps,
)
from zoo.rnn.encoder import EncoderOutput
from zoo.rnn.layers import OutputProjection, dense


class BahdanauStep(nn.Module):
    """One step: score with s_{t-1}, context c_t, cells on [E y_{t-1}; c_t], readout."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.score = make_score(cfg.attention, hidden=cfg.score_hidden, dtype=cfg.dtype)
        self.stack = CellStack(cfg.cell, cfg.num_layers, cfg.hidden_dim,
                               dropout_rate=cfg.dropout_rate, dtype=cfg.dtype,
                               param_dtype=cfg.param_dtype)
        self.readout = dense(cfg.hidden_dim, dtype=cfg.dtype, param_dtype=cfg.param_dtype)

    def __call__(self, carry: DecoderCarry, x: jax.Array, memory: EncoderOutput, *,
                 deterministic: bool = True):
        # x [B, E] -> carry, (s~_t [B, R], alpha_t [B, S])
        query = hidden_of(self.config.cell, carry.rnn[-1])  # s_{t-1} [B, R]
        scores = self.score(query[:, None, :], memory.states)  # [B, 1, S]
        context, weights = attend(scores, memory.states, memory.mask[:, None, :])  # [B, 1, M]
        context = context[:, 0].astype(x.dtype)  # [B, M]
        inputs = jnp.concatenate([x, context], axis=-1)  # [B, E + M]
        rnn, s = self.stack(carry.rnn, inputs, deterministic=deterministic)  # [B, R]
        readout = jnp.concatenate([s.astype(x.dtype), context, x], axis=-1)  # [B, R + M + E]
        readout = jnp.tanh(self.readout(readout))  # [B, R]
        return DecoderCarry(rnn, None), (readout, weights[:, 0])


class BahdanauDecoder(nn.Module):
    """Bahdanau attention decoder, stepped through time."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.embed = embed_target(cfg)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.step = BahdanauStep(cfg)
        self.project = OutputProjection(cfg.tgt_vocab_size, dtype=cfg.dtype,
                                        param_dtype=cfg.param_dtype)

    def initial_carry(self, rnn: tuple[Carry, ...]) -> DecoderCarry:
        return DecoderCarry(rnn, None)

    def __call__(self, memory: EncoderOutput, carry: DecoderCarry, tokens: jax.Array, *,
                 deterministic: bool = True) -> tuple[DecoderOutput, DecoderCarry]:
        # tokens [B, T] -> logits [B, T, V], attention [B, T, S]
        check_tokens(tokens)
        x = self.dropout(self.embed(tokens), deterministic=deterministic)  # [B, T, E]
        carry, (readout, weights) = scan_steps(
            self.step, carry, x, memory, deterministic=deterministic)  # [B, T, R], [B, T, S]
        readout = self.dropout(readout, deterministic=deterministic)
        return DecoderOutput(self.project(readout), weights), carry
