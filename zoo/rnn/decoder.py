"""The decoder interface, shared pieces, and the plain (Sutskever) decoder.

Glossary: B batch, T target length, S source length, E embed_dim, R hidden_dim,
M memory width, V tgt_vocab_size, L layers.

Every decoder is one function of a chunk of target tokens:

    decoder(memory, carry, tokens [B, T]) -> (DecoderOutput(logits [B, T, V],
                                               attention [B, T, S] | None), carry)

Teacher forcing is one call over the whole shifted target (<bos> y_1 .. y_n);
decoding is the same call with T = 1, feeding back each prediction. Because
both are the same code with a carry threaded through, running a gold prefix
token by token reproduces the teacher-forced logits.

Decoders whose step t needs step t-1's *output* (Luong input feeding,
Bahdanau attention) run a `CellStack` step module under `scan_steps`; the
others run `RNNStack` (one `nn.RNN` per layer) over the chunk.

Plain decoder (Sutskever, Vinyals, Le. Sequence to Sequence Learning with
Neural Networks. NeurIPS 2014. arXiv:1409.3215): the state starts at the
encoder's final state, the input at step t is the embedding of y_{t-1}, and
p(y_t) = softmax(W_y s_t).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.nn.embed import Embed
from zoo.rnn.cells import Carry, RNNStack
from zoo.rnn.config import Seq2SeqConfig
from zoo.rnn.encoder import EncoderOutput
from zoo.rnn.layers import OutputProjection


class DecoderCarry(NamedTuple):
    """The decoder's recurrent state; every leaf has leading dim B."""

    rnn: tuple[Carry, ...]  # one cell carry per layer, leaves [B, R]
    feed: jax.Array | None  # [B, R] Luong's s~_{t-1} with input feeding, else None


class DecoderOutput(NamedTuple):
    logits: jax.Array  # [B, T, V] float32
    attention: jax.Array | None  # [B, T, S] float32 weights, 0 on source padding; None if plain


def scan_steps(
    step: nn.Module,
    carry: DecoderCarry,
    x: jax.Array,
    memory: EncoderOutput,
    *,
    deterministic: bool,
) -> tuple[DecoderCarry, Any]:
    """Runs `step(carry, x_t [B, E], memory) -> (carry, y_t)` over x [B, T, E].

    Parameters are shared across time (broadcast), dropout masks are fresh
    per step, and `memory` is passed whole to every step. Returns the final
    carry and the per-step outputs stacked on axis 1 ([B, T, ...]).
    """

    def body(module, carry, x_t, memory):
        return module(carry, x_t, memory, deterministic=deterministic)

    scan = nn.scan(
        body,
        variable_broadcast="params",
        split_rngs={"params": False, "dropout": True},
        in_axes=(1, nn.broadcast),
        out_axes=1,
    )
    return scan(step, carry, x, memory)


def check_tokens(tokens) -> None:
    if jnp.ndim(tokens) != 2:
        raise ValueError(f"tokens must be 2-D [B, T] target ids, got shape {jnp.shape(tokens)}")


def embed_target(cfg: Seq2SeqConfig) -> Embed:
    return Embed(cfg.tgt_vocab_size, cfg.embed_dim, dtype=cfg.dtype, param_dtype=cfg.param_dtype)


class PlainDecoder(nn.Module):
    """Sutskever et al. (2014): embed y_{t-1} -> L RNN layers -> W_y s_t."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.embed = embed_target(cfg)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.stack = RNNStack(cfg.cell, cfg.num_layers, cfg.hidden_dim,
                              dropout_rate=cfg.dropout_rate, dtype=cfg.dtype,
                              param_dtype=cfg.param_dtype)
        self.project = OutputProjection(cfg.tgt_vocab_size, dtype=cfg.dtype,
                                        param_dtype=cfg.param_dtype)

    def initial_carry(self, rnn: tuple[Carry, ...]) -> DecoderCarry:
        return DecoderCarry(rnn, None)

    def __call__(self, memory: EncoderOutput, carry: DecoderCarry, tokens: jax.Array, *,
                 deterministic: bool = True) -> tuple[DecoderOutput, DecoderCarry]:
        # tokens [B, T] -> logits [B, T, V]
        check_tokens(tokens)
        x = self.dropout(self.embed(tokens), deterministic=deterministic)  # [B, T, E]
        h, rnn = self.stack(x, carry.rnn, deterministic=deterministic)  # [B, T, R]
        h = self.dropout(h, deterministic=deterministic)
        return DecoderOutput(self.project(h), None), DecoderCarry(rnn, None)
