"""`Seq2Seq`: encoder + bridge + decoder, for teacher forcing and step-by-step decoding.

Glossary: B batch, S source length, T target length, M memory width, V tgt_vocab_size.

It implements the encoder–decoder interface of `zoo.seq2seq` (shared with the
Transformer's `EncoderDecoder`):

    model = Seq2Seq(Seq2SeqConfig(attention="general", input_feeding=True))
    params = model.init(key, src, tgt_in, src_lengths=src_lengths)["params"]
    out = model.apply({"params": params}, src, tgt_in, src_lengths=src_lengths)
    out.logits      # [B, T, V]
    out.attention   # [B, T, S] (None for the plain model)

    # Decoding (zoo.seq2seq.generate drives these):
    tokens = zoo.seq2seq.generate(model, params, src, src_lengths, max_len=20).tokens

Training with dropout: `model.apply(..., deterministic=False, rngs={"dropout": key})`.
Decoding is always deterministic.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.rnn.bahdanau import BahdanauDecoder
from zoo.rnn.bridge import BRIDGES
from zoo.rnn.config import Seq2SeqConfig
from zoo.rnn.decoder import DecoderCarry, PlainDecoder
from zoo.rnn.encoder import Encoder, EncoderOutput
from zoo.rnn.luong import LuongDecoder, LuongFeedingDecoder
from zoo.seq2seq import Seq2SeqOutput, source_lengths

# Seq2SeqConfig.decoder_kind -> decoder module.
DECODERS: dict[str, type[nn.Module]] = {
    "plain": PlainDecoder,
    "luong": LuongDecoder,
    "luong_feeding": LuongFeedingDecoder,
    "bahdanau": BahdanauDecoder,
}


class Seq2Seq(nn.Module):
    """An RNN encoder-decoder; which one is decided by `config` (see Seq2SeqConfig)."""

    config: Seq2SeqConfig

    @staticmethod
    def vocab_fields(src_size: int, tgt_size: int) -> dict:
        """The config fields a dataset's vocabularies decide."""
        return {"src_vocab_size": src_size, "tgt_vocab_size": tgt_size}

    @property
    def max_decode_len(self) -> None:
        return None  # a recurrence has no length limit

    def setup(self):
        cfg = self.config
        self.encoder = Encoder(cfg)
        self.bridge = BRIDGES[cfg.bridge](cfg.hidden_dim, dtype=cfg.dtype,
                                          param_dtype=cfg.param_dtype)
        self.decoder = DECODERS[cfg.decoder_kind](cfg)

    def __call__(self, src: jax.Array, tgt_in: jax.Array, *, src_lengths: jax.Array | None = None,
                 deterministic: bool = True) -> Seq2SeqOutput:
        """Teacher forcing: src [B, S], tgt_in [B, T] (<bos> y_1 ..), src_lengths [B]."""
        memory = self.encode(src, src_lengths, deterministic=deterministic)
        carry = self.init_carry(memory)
        output, _ = self.decode(memory, carry, tgt_in, deterministic=deterministic)
        return output

    def encode(self, src: jax.Array, src_lengths: jax.Array | None = None, *,
               deterministic: bool = True) -> EncoderOutput:
        """src [B, S], src_lengths [B] (None: all real) -> states [B, S, M], final carries,
        mask [B, S]."""
        return self.encoder(src, source_lengths(src, src_lengths), deterministic=deterministic)

    def init_carry(self, memory: EncoderOutput, max_len: int | None = None) -> DecoderCarry:
        """The decoder state before its first input (<bos>); ``max_len`` is not needed."""
        del max_len
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
