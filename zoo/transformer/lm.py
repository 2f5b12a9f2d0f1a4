"""A decoder-only Transformer language model.

Glossary: B batch, T length, D model width, V vocabulary.

The decoder stack of ``EncoderDecoder`` without cross-attention: ids [B, T] ->
next-token logits [B, T, V]. Training rows may pack several sequences; pass
``segment_ids`` [B, T] and no token attends across a segment boundary, and
positions restart at each segment. Decoding uses the KV cache (``decode=True``):
prefill a right-padded batch of prompts with ``lengths``, then step.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax

from zoo.transformer.config import TransformerConfig
from zoo.transformer.embedding import make_embed
from zoo.transformer.encoder_decoder import Decoder

Array = jax.Array


class LMOutput(NamedTuple):
    logits: Array  # [B, T, V] float32
    hidden: Array  # [B, T, D] last hidden states (after the final norm)


class DecoderLM(nn.Module):
    """Decoder-only LM; uses ``num_decoder_layers`` and ignores the encoder fields."""

    config: TransformerConfig

    def setup(self):
        self.embed = make_embed(self.config, self.config.vocab_size)
        self.decoder = Decoder(self.config, embed=self.embed, cross_attention=False)

    def __call__(self, tokens: Array, *, segment_ids: Array | None = None,
                 positions: Array | None = None, lengths: Array | None = None,
                 deterministic: bool = True, decode: bool = False) -> LMOutput:
        """tokens: [B, T] int -> LMOutput(logits [B, T, V], hidden [B, T, D]).

        Args:
          segment_ids: [B, T] packed-sequence ids (training).
          positions: [B, T] explicit positions (default from segments / the cache).
          lengths: [B] real new tokens per sequence when decoding a ragged prompt batch.
          deterministic: no dropout when True (a 'dropout' rng is needed otherwise).
          decode: read and extend the KV cache in the 'cache' collection.
        """
        logits, hidden = self.decoder(tokens, positions=positions, segment_ids=segment_ids,
                                      lengths=lengths, deterministic=deterministic,
                                      decode=decode)
        return LMOutput(logits=logits, hidden=hidden)

