"""Encoder and decoder layers of the Transformer.

Glossary: B batch, T target length, S source length, D model width, F feed-forward width.

Encoder layer: self-attention -> FFN. Decoder layer: causal self-attention (with
a KV cache when decoding) -> encoder-decoder attention (skipped by a
decoder-only LM) -> FFN. Each sublayer f is wrapped in a residual connection
with dropout and a norm placed as the config says:

    post (paper, §3.1):  x = norm(x + dropout(f(x)))
    pre (GPT-2, T5):     x = x + dropout(f(norm(x)))

A layer's ``__call__`` is ``(x, context) -> (x, None)``: the (carry, output)
shape that ``nn.scan`` needs, with everything else in one ``LayerContext``
broadcast to every layer. Flags that change the traced program
(``deterministic``, ``decode``) are module attributes, so neither ``nn.scan``
nor ``nn.remat`` has to treat them as static arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax

from zoo.attention import MultiHeadAttention
from zoo.nn import FeedForward, make_norm
from zoo.transformer.config import TransformerConfig

Array = jax.Array

_PLACEMENTS: dict[str, Callable[..., Array]] = {
    "post": lambda x, f, norm, drop: norm(x + drop(f(x))),
    "pre": lambda x, f, norm, drop: x + drop(f(norm(x))),
}


# The name under which a decoder layer sows its cross-attention weights [B, N, T, S] when
# the 'intermediates' collection is mutable.
CROSS_WEIGHTS = "cross_attention_weights"


class LayerContext(NamedTuple):
    """Inputs shared by every layer of a stack (broadcast over ``nn.scan``)."""

    positions: Array  # [B, T] int32, for rotary attention
    self_kv_lengths: Array | None = None  # [B] real keys of self-attention (source padding)
    segment_ids: Array | None = None  # [B, T] packed sequences in self-attention
    memory: Array | None = None  # [B, S, D] encoder output for cross-attention
    memory_lengths: Array | None = None  # [B] real source tokens
    decode_lengths: Array | None = None  # [B] real new tokens per sequence when decoding


class _Layer(nn.Module):
    """Shared parts of both layers: attention and FFN builders, residual sublayers."""

    config: TransformerConfig
    deterministic: bool = True
    decode: bool = False

    def _attention(self, name: str, *, is_causal: bool, rotary: bool) -> MultiHeadAttention:
        c = self.config
        return MultiHeadAttention(
            num_heads=c.num_heads, num_kv_heads=c.num_kv_heads, use_bias=c.use_bias,
            dropout_rate=c.attention_dropout_rate, is_causal=is_causal, rotary=rotary,
            implementation=c.attention_implementation, dtype=c.dtype,
            param_dtype=c.param_dtype, name=name,
        )

    def _ffn(self, x: Array) -> Array:
        """x: [B, T, D] -> [B, T, D]."""
        c = self.config
        ffn = FeedForward(d_ff=c.d_ff, activation=c.activation, dropout_rate=c.ffn_dropout_rate,
                          use_bias=c.use_bias, dtype=c.dtype, param_dtype=c.param_dtype,
                          name="ffn")
        return ffn(x, deterministic=self.deterministic)

    def _residual(self, x: Array, f: Callable[[Array], Array], name: str) -> Array:
        """x: [B, T, D] -> [B, T, D], the sublayer ``f`` wrapped as the config places norms."""
        c = self.config
        norm = make_norm(c.norm, dtype=c.dtype, param_dtype=c.param_dtype,
                         epsilon=c.norm_epsilon, name=f"{name}_norm")
        drop = nn.Dropout(rate=c.dropout_rate)

        def dropped(y: Array) -> Array:
            return drop(y, deterministic=self.deterministic)

        x = _PLACEMENTS[c.norm_placement](x, f, norm, dropped)
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class EncoderLayer(_Layer):
    """Bidirectional self-attention over the source, then the FFN."""

    @nn.compact
    def __call__(self, x: Array, ctx: LayerContext) -> tuple[Array, None]:
        """x: [B, S, D] -> ([B, S, D], None). Keys past ``ctx.self_kv_lengths`` are padding."""
        rotary = self.config.positional == "rotary"
        attention = self._attention("self_attention", is_causal=False, rotary=rotary)
        x = self._residual(x, lambda h: attention(
            h, kv_lengths=ctx.self_kv_lengths, positions=ctx.positions,
            deterministic=self.deterministic), "self_attention")
        return self._residual(x, self._ffn, "ffn"), None


class DecoderLayer(_Layer):
    """Causal self-attention, encoder-decoder attention (if ``cross_attention``), FFN."""

    cross_attention: bool = True

    @nn.compact
    def __call__(self, x: Array, ctx: LayerContext) -> tuple[Array, None]:
        """x: [B, T, D] -> ([B, T, D], None); attends to ``ctx.memory`` [B, S, D]."""
        rotary = self.config.positional == "rotary"
        attention = self._attention("self_attention", is_causal=True, rotary=rotary)
        x = self._residual(x, lambda h: attention(
            h, segment_ids=ctx.segment_ids, positions=ctx.positions,
            lengths=ctx.decode_lengths, deterministic=self.deterministic,
            decode=self.decode), "self_attention")
        if self.cross_attention:
            if ctx.memory is None:
                raise ValueError("a decoder layer with cross_attention=True needs the encoder "
                                 "output (memory [B, S, D])")
            # Rotary positions compare query and key positions of one sequence; source and
            # target positions are unrelated, so cross-attention never rotates.
            cross = self._attention("cross_attention", is_causal=False, rotary=False)

            def attend(h: Array) -> Array:
                # Decoding: the memory's keys and values are projected once per sentence and
                # kept in the cache (MultiHeadAttention's cross-attention cache).
                options = dict(kv_lengths=ctx.memory_lengths, deterministic=self.deterministic,
                               decode=self.decode)
                if not self.is_mutable_collection("intermediates"):
                    return cross(h, ctx.memory, **options)
                # Asked for (EncoderDecoder.cross_attention_weights): keep the alignment.
                y, weights = cross(h, ctx.memory, return_weights=True, **options)
                self.sow("intermediates", CROSS_WEIGHTS, weights)  # [B, N, T, S]
                return y

            x = self._residual(x, attend, "cross_attention")
        return self._residual(x, self._ffn, "ffn"), None

