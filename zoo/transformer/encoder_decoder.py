"""The Transformer encoder, decoder and encoder-decoder ("Attention Is All You Need").

Glossary: B batch, S source length, T target length, D model width, V vocabulary.

``EncoderDecoder`` maps source ids [B, S] and (shifted-right) target ids
[B, T] to next-token logits [B, T, V]. Source padding is given by
``src_lengths`` [B] (real tokens first): padded keys are never attended, in
the encoder's self-attention and in every decoder layer's cross-attention, so
outputs at real positions do not depend on the padding. The target side is
causal. For decoding, ``encode`` once, ``init_carry`` creates the KV cache and
``decode_step`` extends it one token at a time (``zoo.seq2seq.generate``).
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.nn import Embed, make_norm
from zoo.seq2seq import Seq2SeqOutput, source_lengths
from zoo.transformer.config import TransformerConfig
from zoo.transformer.embedding import (
    default_positions,
    embed_inputs,
    make_embed,
    positions_from_segments,
)
from zoo.transformer.layers import CROSS_WEIGHTS, DecoderLayer, EncoderLayer, LayerContext
from zoo.transformer.stack import run_layers

Array = jax.Array


def _final_norm(config: TransformerConfig, x: Array) -> Array:
    """The norm after a stack, where the config has one (``has_final_norm``)."""
    if config.has_final_norm:
        x = make_norm(config.norm, dtype=config.dtype, param_dtype=config.param_dtype,
                      epsilon=config.norm_epsilon, name="final_norm")(x)
    return x


class Encoder(nn.Module):
    """Source ids [B, S] -> encoded [B, S, D]."""

    config: TransformerConfig
    embed: Embed

    @nn.compact
    def __call__(self, src: Array, src_lengths: Array | None = None, *,
                 deterministic: bool = True) -> Array:
        """src: [B, S] int; src_lengths: [B] real tokens (None = all) -> [B, S, D]."""
        c = self.config
        positions = default_positions(*src.shape)  # [B, S]
        x = embed_inputs(c, self.embed, src, positions, deterministic=deterministic,
                         name="positional")  # [B, S, D]
        ctx = LayerContext(positions=positions, self_kv_lengths=src_lengths)
        x = run_layers(EncoderLayer, c.num_encoder_layers, c, x, ctx,
                       deterministic=deterministic)
        return _final_norm(c, x)  # [B, S, D]


class Decoder(nn.Module):
    """Target ids [B, T] (+ encoder memory) -> logits [B, T, V] and hidden states.

    Attributes:
      config: hyperparameters (``num_decoder_layers`` layers).
      embed: the target token table; also the output projection when tied.
      cross_attention: attend to an encoder's output (False for a decoder-only LM).
    """

    config: TransformerConfig
    embed: Embed
    cross_attention: bool = True

    @nn.compact
    def __call__(self, tokens: Array, memory: Array | None = None,
                 memory_lengths: Array | None = None, *, positions: Array | None = None,
                 segment_ids: Array | None = None, lengths: Array | None = None,
                 deterministic: bool = True, decode: bool = False) -> tuple[Array, Array]:
        """Runs the decoder stack.

        Args:
          tokens: [B, T] int target ids (shifted right: position t predicts t + 1).
          memory: [B, S, D] encoder output (cross-attention only).
          memory_lengths: [B] real source tokens.
          positions: [B, T] positions (default: 0..T-1, restarting per segment when
            ``segment_ids`` is given, or continuing from the cache when decoding).
          segment_ids: [B, T] packed sequences: tokens attend only within a segment.
          lengths: [B] real new tokens per sequence when decoding (ragged prompts).
          deterministic: no dropout when True.
          decode: use and extend the KV cache.

        Returns:
          (logits [B, T, V] float32, hidden [B, T, D]).
        """
        c = self.config
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be [B, T], got shape {tokens.shape}")
        b, t = tokens.shape
        # Decoding always advances the position counter, even when positions are given.
        cached = self._cached_positions(b, t, lengths) if decode else None
        if positions is None and cached is not None:
            positions = cached  # [B, T]
        elif positions is None and segment_ids is not None:
            positions = positions_from_segments(segment_ids)  # [B, T]
        elif positions is None:
            positions = default_positions(b, t)  # [B, T]
        x = embed_inputs(c, self.embed, tokens, positions, deterministic=deterministic,
                         name="positional")  # [B, T, D]
        ctx = LayerContext(positions=positions, segment_ids=segment_ids, memory=memory,
                           memory_lengths=memory_lengths, decode_lengths=lengths)
        x = run_layers(DecoderLayer, c.num_decoder_layers, c, x, ctx,
                       deterministic=deterministic, decode=decode,
                       cross_attention=self.cross_attention)
        hidden = _final_norm(c, x)  # [B, T, D]
        return self._logits(hidden), hidden

    def _cached_positions(self, b: int, t: int, lengths: Array | None) -> Array:
        """[B, T] positions of new tokens; advances a per-sequence counter in 'cache'.

        It moves in step with the attention caches' write indices, which are
        per layer and (when scanned) stacked, so reading one of them would tie
        this module to the layer layout.
        """
        initialised = self.has_variable("cache", "position")
        counter = self.variable("cache", "position", jnp.zeros, (b,), jnp.int32)
        start = counter.value  # [B]
        if initialised:  # as in MultiHeadAttention, the creating call does not advance
            advance = jnp.full((b,), t, jnp.int32) if lengths is None else lengths
            counter.value = start + advance.astype(jnp.int32)
        return start[:, None] + jnp.arange(t, dtype=jnp.int32)[None, :]  # [B, T]

    def _logits(self, hidden: Array) -> Array:
        """hidden: [B, T, D] -> [B, T, V] float32."""
        c = self.config
        if c.tie_output_embedding:
            return self._add_output_bias(self.embed.attend(hidden))
        kernel = self.param(
            "output_kernel",
            nn.with_logical_partitioning(nn.initializers.xavier_uniform(), ("embed", "vocab")),
            (c.d_model, c.vocab_size),  # [D, V]
            c.param_dtype,
        )
        logits = jnp.einsum("BTD,DV->BTV", hidden.astype(c.dtype), kernel.astype(c.dtype),
                            preferred_element_type=jnp.float32)  # [B, T, V]
        logits = nn.with_logical_constraint(logits, ("batch", "length", "vocab"))
        return self._add_output_bias(logits)

    def _add_output_bias(self, logits: Array) -> Array:
        """logits: [B, T, V] float32 + the learned [V] bias, if the config has one."""
        if not self.config.output_bias:
            return logits
        bias = self.param("output_bias", nn.with_logical_partitioning(
            nn.initializers.zeros_init(), ("vocab",)), (self.config.vocab_size,),
            self.config.param_dtype)  # [V]
        return logits + bias.astype(jnp.float32)[None, None, :]


class EncoderMemory(NamedTuple):
    """What the decoder reads from the encoder; every leaf has leading dim B."""

    states: Array  # [B, S, D] encoder output
    lengths: Array  # [B] real source tokens


class EncoderDecoder(nn.Module):
    """The Transformer for sequence-to-sequence tasks (translation).

    It implements the encoder–decoder interface of ``zoo.seq2seq`` (shared with
    ``zoo.rnn.Seq2Seq``); ``zoo.seq2seq.generate`` decodes it with the KV cache.
    """

    config: TransformerConfig

    @staticmethod
    def vocab_fields(src_size: int, tgt_size: int) -> dict:
        """The config fields a dataset's vocabularies decide (one shared table when equal)."""
        if src_size == tgt_size:
            return {"vocab_size": tgt_size, "src_vocab_size": None}
        return {"vocab_size": tgt_size, "src_vocab_size": src_size, "share_embeddings": False}

    @property
    def max_decode_len(self) -> int | None:
        """Rotary positions have no table; added position tables end at ``max_len``."""
        return None if self.config.positional == "rotary" else self.config.max_len

    def setup(self):
        c = self.config
        if c.num_encoder_layers == 0:
            raise ValueError("EncoderDecoder needs num_encoder_layers >= 1, got 0 (use "
                             "DecoderLM for a decoder-only model)")
        self.embed = make_embed(c, c.vocab_size)
        src_embed = self.embed if c.share_embeddings else make_embed(c, c.source_vocab_size)
        self.src_embed = src_embed
        self.encoder = Encoder(c, embed=src_embed)
        self.decoder = Decoder(c, embed=self.embed, cross_attention=True)

    def encode(self, src: Array, src_lengths: Array | None = None, *,
               deterministic: bool = True) -> EncoderMemory:
        """src: [B, S] int, src_lengths: [B] (None: all real) -> EncoderMemory."""
        lengths = source_lengths(src, src_lengths)  # [B], checked
        return EncoderMemory(self.encoder(src, lengths, deterministic=deterministic), lengths)

    def decode(self, memory: EncoderMemory, tgt: Array, *, lengths: Array | None = None,
               deterministic: bool = True, decode: bool = False) -> Array:
        """tgt: [B, T] int -> logits [B, T, V]; ``decode`` uses and extends the KV cache."""
        logits, _ = self.decoder(tgt, memory.states, memory.lengths, lengths=lengths,
                                 deterministic=deterministic, decode=decode)
        return logits

    def init_carry(self, memory: EncoderMemory, max_len: int) -> None:
        """Creates the KV cache for ``max_len`` decoding steps (in the 'cache' collection;
        apply with ``mutable=['cache']``). The carry itself is empty.

        The self-attention caches start empty (the creating call writes nothing and
        advances nothing); the cross-attention caches hold every decoder layer's
        projection of the encoder output, computed here once per sentence instead of
        at every step. Under jit the rest of the creating forward pass is dead code."""
        tokens = jnp.zeros((memory.states.shape[0], max_len), jnp.int32)  # [B, T]
        self.decoder(tokens, memory.states, memory.lengths, decode=True)

    def decode_step(self, memory: EncoderMemory, carry: None,
                    tokens: Array) -> tuple[Array, None]:
        """One decoding step with the KV cache: tokens [B] -> (logits [B, V] float32, None)."""
        if jnp.ndim(tokens) != 1:
            raise ValueError(f"tokens must be 1-D [B], got shape {jnp.shape(tokens)}")
        logits = self.decode(memory, jnp.asarray(tokens)[:, None], decode=True)  # [B, 1, V]
        return logits[:, 0], carry

    def __call__(self, src: Array, tgt_in: Array, *, src_lengths: Array | None = None,
                 deterministic: bool = True) -> Seq2SeqOutput:
        """Teacher forcing: src [B, S], tgt_in [B, T] (shifted right), src_lengths [B]."""
        memory = self.encode(src, src_lengths, deterministic=deterministic)
        logits = self.decode(memory, tgt_in, deterministic=deterministic)  # [B, T, V]
        return Seq2SeqOutput(logits=logits, attention=None)


def cross_attention_weights(model: EncoderDecoder, params, src: Array, tgt_in: Array, *,
                            src_lengths: Array | None = None) -> Array:
    """Every decoder layer's encoder-decoder attention under teacher forcing.

    src [B, S], tgt_in [B, T] (shifted right), src_lengths [B] -> weights
    [L, B, N, T, S] float32, L decoder layers from the first to the last, N heads; each
    row sums to 1 over the real source positions (padding gets 0). The Transformer's
    counterpart of an RNN's one alignment: it has L x N of them.
    """
    _, state = model.apply({"params": params}, src, tgt_in, src_lengths=src_lengths,
                           mutable=["intermediates"])
    found = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]:
        names = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
        if CROSS_WEIGHTS in names:
            layer = next((int(n.rsplit("_", 1)[1]) for n in names if n.startswith("layers_")),
                         0)
            found.append((layer, leaf if leaf.ndim == 5 else leaf[None]))  # scanned: [L, ...]
    if not found:
        raise ValueError("the model sowed no cross-attention weights (is it an EncoderDecoder?)")
    return jnp.concatenate([w for _, w in sorted(found, key=lambda item: item[0])], axis=0)
