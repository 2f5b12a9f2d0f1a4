"""Input embeddings (tokens + positions) and positions for packed or cached sequences.

Glossary: B batch, T length, D model width, V vocabulary.

Tokens are embedded with ``zoo.nn.Embed`` scaled by sqrt(D) as in the paper
(§3.4): with the table's N(0, 1/D) init, scaled vectors have unit entries, the
same scale as the sinusoids added to them. Rotary models add no position
vectors; attention rotates queries and keys instead.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from zoo.nn import Embed, LearnedPositionalEmbedding, SinusoidalEmbedding
from zoo.transformer.config import TransformerConfig

Array = jax.Array

_POSITIONAL: dict[str, Callable[[TransformerConfig, str], nn.Module | None]] = {
    "sinusoidal": lambda c, name: SinusoidalEmbedding(
        max_len=c.max_len, features=c.d_model, layout=c.sinusoid_layout, dtype=c.dtype,
        name=name),
    "learned": lambda c, name: LearnedPositionalEmbedding(
        max_len=c.max_len, features=c.d_model, dtype=c.dtype, param_dtype=c.param_dtype,
        name=name),
    "rotary": lambda c, name: None,
}


def make_embed(config: TransformerConfig, vocab_size: int, name: str | None = None) -> Embed:
    """The [V, D] token table, scaled by sqrt(D) on lookup when ``scale_embedding``."""
    return Embed(num_embeddings=vocab_size, features=config.d_model,
                 scale_by_sqrt_dim=config.scale_embedding,
                 dtype=config.dtype, param_dtype=config.param_dtype, name=name)


def embed_inputs(config: TransformerConfig, embed: Embed, ids: Array, positions: Array, *,
                 deterministic: bool, name: str) -> Array:
    """ids: [B, T] int, positions: [B, T] int -> [B, T] embeddings + positions, dropped out.

    Call inside a compact method; a learned position table is created as child ``name``.
    """
    x = embed(ids)  # [B, T, D]
    positional = _POSITIONAL[config.positional](config, name)
    if positional is not None:
        x = x + positional(positions)  # [B, T, D]
    x = nn.Dropout(rate=config.dropout_rate)(x, deterministic=deterministic)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


def default_positions(batch: int, length: int) -> Array:
    """[B, T] int32: 0 .. T-1 for every sequence."""
    return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32)[None, :], (batch, length))


def positions_from_segments(segment_ids: Array) -> Array:
    """segment_ids: [B, T] -> [B, T] int32 positions restarting at 0 in every segment.

    For packed rows like [1 1 1 2 2 3] -> [0 1 2 0 1 0]: a position is its index
    minus the index where its segment began (a running max of segment starts).
    """
    b, t = segment_ids.shape
    index = default_positions(b, t)  # [B, T]
    previous = jnp.concatenate([segment_ids[:, :1], segment_ids[:, :-1]], axis=1)  # [B, T]
    starts = jnp.where(segment_ids != previous, index, 0)  # [B, T]
    return index - lax.cummax(starts, axis=1)  # [B, T]
