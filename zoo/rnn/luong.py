"""Luong-style global attention decoders, with and without input feeding.

Glossary: B batch, T target length, S source length, E embed_dim, R hidden_dim,
M memory width, V tgt_vocab_size.

Luong, Pham, Manning. Effective Approaches to Attention-based Neural Machine
Translation. EMNLP 2015. arXiv:1508.04025. At step t, with decoder state s_t
(the top layer's output) and encoder states h_1..h_S:

    score(s_t, h_i)           any of zoo.attention.SCORES          (eq. 8)
    alpha_t = softmax over the real source positions                (eq. 7)
    a_t     = sum_i alpha_t,i h_i                                   (context)
    s~_t    = tanh(W_c [a_t; s_t])                                  (eq. 5)
    p(y_t)  = softmax(W_y s~_t)                                     (eq. 6)

Input feeding (sec. 3.3) concatenates s~_{t-1} to the input at step t, so the
model knows its past alignment; it makes the recurrence depend on attention,
so that decoder steps through time with `scan_steps` while the plain Luong
decoder runs its RNN over the whole chunk first and attends for all T at once.

Departure from the paper (README, "Where zoo departs from the papers"): the
output projection W_y has a bias; eq. 6 has none.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.attention.scores import attend, make_score
from zoo.rnn.cells import Carry, CellStack, RNNStack, zero_carry
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


class LuongAttention(nn.Module):
    """(s_t [B, T, R], memory) -> (s~_t [B, T, R], alpha_t [B, T, S])."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.score = make_score(cfg.attention, hidden=cfg.score_hidden, dtype=cfg.dtype)
        # W_c has no bias in the paper's eq. 5.
        self.combine = dense(cfg.hidden_dim, use_bias=False, dtype=cfg.dtype,
                             param_dtype=cfg.param_dtype)

    def __call__(self, h: jax.Array, memory: EncoderOutput) -> tuple[jax.Array, jax.Array]:
        scores = self.score(h, memory.states)  # [B, T, S] float32
        context, weights = attend(scores, memory.states, memory.mask[:, None, :])  # [B, T, M]
        v = jnp.concatenate([context, h.astype(context.dtype)], axis=-1)  # [B, T, M + R]
        return jnp.tanh(self.combine(v)), weights  # [B, T, R], [B, T, S]


class LuongDecoder(nn.Module):
    """RNN over the chunk, then attention for every position at once."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.embed = embed_target(cfg)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.stack = RNNStack(cfg.cell, cfg.num_layers, cfg.hidden_dim,
                              dropout_rate=cfg.dropout_rate, dtype=cfg.dtype,
                              param_dtype=cfg.param_dtype)
        self.attention = LuongAttention(cfg)
        self.project = OutputProjection(cfg.tgt_vocab_size, dtype=cfg.dtype,
                                        param_dtype=cfg.param_dtype)

    def initial_carry(self, rnn: tuple[Carry, ...]) -> DecoderCarry:
        return DecoderCarry(rnn, None)

    def __call__(self, memory: EncoderOutput, carry: DecoderCarry, tokens: jax.Array, *,
                 deterministic: bool = True) -> tuple[DecoderOutput, DecoderCarry]:
        # tokens [B, T] -> logits [B, T, V], attention [B, T, S]
        check_tokens(tokens)
        x = self.dropout(self.embed(tokens), deterministic=deterministic)  # [B, T, E]
        h, rnn = self.stack(x, carry.rnn, deterministic=deterministic)  # [B, T, R]
        attentional, weights = self.attention(h, memory)  # [B, T, R], [B, T, S]
        attentional = self.dropout(attentional, deterministic=deterministic)
        return DecoderOutput(self.project(attentional), weights), DecoderCarry(rnn, None)


class LuongFeedingStep(nn.Module):
    """One step: x_t = [E y_{t-1}; s~_{t-1}] -> cells -> attention -> s~_t."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.stack = CellStack(cfg.cell, cfg.num_layers, cfg.hidden_dim,
                               dropout_rate=cfg.dropout_rate, dtype=cfg.dtype,
                               param_dtype=cfg.param_dtype)
        self.attention = LuongAttention(cfg)

    def __call__(self, carry: DecoderCarry, x: jax.Array, memory: EncoderOutput, *,
                 deterministic: bool = True):
        # x [B, E] -> carry, (s~_t [B, R], alpha_t [B, S])
        x = jnp.concatenate([x, carry.feed.astype(x.dtype)], axis=-1)  # [B, E + R]
        rnn, h = self.stack(carry.rnn, x, deterministic=deterministic)  # [B, R]
        attentional, weights = self.attention(h[:, None, :], memory)  # [B, 1, R], [B, 1, S]
        attentional = attentional[:, 0]  # [B, R]
        return DecoderCarry(rnn, attentional), (attentional, weights[:, 0])


class LuongFeedingDecoder(nn.Module):
    """Luong attention with input feeding, stepped through time."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.embed = embed_target(cfg)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.step = LuongFeedingStep(cfg)
        self.project = OutputProjection(cfg.tgt_vocab_size, dtype=cfg.dtype,
                                        param_dtype=cfg.param_dtype)

    def initial_carry(self, rnn: tuple[Carry, ...]) -> DecoderCarry:
        batch = jax.tree.leaves(rnn)[0].shape[0]
        # s~_0 = 0: there is no attentional vector before the first step.
        feed = zero_carry("rnn", batch, self.config.hidden_dim, self.config.dtype)  # [B, R]
        return DecoderCarry(rnn, feed)

    def __call__(self, memory: EncoderOutput, carry: DecoderCarry, tokens: jax.Array, *,
                 deterministic: bool = True) -> tuple[DecoderOutput, DecoderCarry]:
        # tokens [B, T] -> logits [B, T, V], attention [B, T, S]
        check_tokens(tokens)
        x = self.dropout(self.embed(tokens), deterministic=deterministic)  # [B, T, E]
        carry, (attentional, weights) = scan_steps(
            self.step, carry, x, memory, deterministic=deterministic)  # [B, T, R], [B, T, S]
        attentional = self.dropout(attentional, deterministic=deterministic)
        return DecoderOutput(self.project(attentional), weights), carry
