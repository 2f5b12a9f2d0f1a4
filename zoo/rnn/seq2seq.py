"""`Seq2Seq`: encoder + bridge + decoder, for teacher forcing and step-by-step decoding.

Glossary: B batch, S source length, T target length, V tgt_vocab_size.

    model = Seq2Seq(Seq2SeqConfig(attention="general", input_feeding=True))
    params = model.init(key, src, src_lengths, tgt_in)
    out = model.apply(params, src, src_lengths, tgt_in)  # out.logits [B, T, V]

    # Decoding, one token at a time (what zoo.rnn.generate drives):
    memory = model.apply(params, src, src_lengths, method=Seq2Seq.encode)
    carry = model.apply(params, memory, method=Seq2Seq.init_decoder_carry)
    logits, carry = model.apply(params, memory, carry, tokens, method=Seq2Seq.decode_step)

Training with dropout: `model.apply(params, ..., deterministic=False,
rngs={"dropout": key})`. Decoding is always deterministic.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.rnn.bahdanau import BahdanauDecoder
from zoo.rnn.bridge import BRIDGES
from zoo.rnn.config import Seq2SeqConfig
from zoo.rnn.decoder import DecoderCarry, PlainDecoder
from zoo.rnn.encoder import Encoder, EncoderOutput
from zoo.rnn.luong import LuongDecoder, LuongFeedingDecoder

# Seq2SeqConfig.decoder_kind -> decoder module.
DECODERS: dict[str, type[nn.Module]] = {
    "plain": PlainDecoder,
    "luong": LuongDecoder,
    "luong_feeding": LuongFeedingDecoder,
    "bahdanau": BahdanauDecoder,
}


class Seq2SeqOutput(NamedTuple):
    logits: jax.Array  # [B, T, V] float32
    attention: jax.Array | None  # [B, T, S] float32 (0 on source padding), None if plain


class Seq2Seq(nn.Module):
    """An RNN encoder-decoder; which one is decided by `config` (see Seq2SeqConfig)."""

    config: Seq2SeqConfig

    def setup(self):
        cfg = self.config
        self.encoder = Encoder(cfg)
        self.bridge = BRIDGES[cfg.bridge](cfg.hidden_dim, dtype=cfg.dtype,
                                          param_dtype=cfg.param_dtype)
        self.decoder = DECODERS[cfg.decoder_kind](cfg)

    def __call__(self, src: jax.Array, src_lengths: jax.Array, tgt_in: jax.Array, *,
                 deterministic: bool = True) -> Seq2SeqOutput:
        """Teacher forcing: src [B, S], src_lengths [B], tgt_in [B, T] (<bos> y_1 ..)."""
        memory = self.encode(src, src_lengths, deterministic=deterministic)
        carry = self.init_decoder_carry(memory)
        output, _ = self.decode(memory, carry, tgt_in, deterministic=deterministic)
        return output

    def encode(self, src: jax.Array, src_lengths: jax.Array, *,
               deterministic: bool = True) -> EncoderOutput:
        """src [B, S], src_lengths [B] -> states [B, S, M], final carries, mask [B, S]."""
        return self.encoder(src, src_lengths, deterministic=deterministic)

    def init_decoder_carry(self, memory: EncoderOutput) -> DecoderCarry:
        """The decoder state before its first input (<bos>)."""
        return self.decoder.initial_carry(self.bridge(memory.final))

    def decode(self, memory: EncoderOutput, carry: DecoderCarry, tokens: jax.Array, *,
               deterministic: bool = True) -> tuple[Seq2SeqOutput, DecoderCarry]:
        """A chunk of decoder inputs tokens [B, T] -> (logits [B, T, V], attention), carry."""
        output, carry = self.decoder(memory, carry, tokens, deterministic=deterministic)
        return Seq2SeqOutput(output.logits, output.attention), carry

    def decode_step(self, memory: EncoderOutput, carry: DecoderCarry,
                    tokens: jax.Array) -> tuple[jax.Array, DecoderCarry]:
        """One decoding step: tokens [B] -> (logits [B, V] float32, carry)."""
        if jnp.ndim(tokens) != 1:
            raise ValueError(f"tokens must be 1-D [B], got shape {jnp.shape(tokens)}")
        tokens = jnp.asarray(tokens)
        output, carry = self.decode(memory, carry, tokens[:, None])  # logits [B, 1, V]
        return output.logits[:, 0], carry  # [B, V]
