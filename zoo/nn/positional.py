"""Positional encodings: sinusoidal and learned tables, and rotary embeddings.

Glossary: B batch, T length, D model width (features), N query heads, H head dim;
the position tables are [max_len, D].

``SinusoidalEmbedding`` and ``LearnedPositionalEmbedding`` return ``[B, T, D]``
vectors that the caller adds to the token embeddings; ``POSITIONAL`` picks one
by config name. Rotary embeddings (``apply_rotary``) are different in kind:
they rotate queries and keys inside attention instead of being added to the
embeddings, so they are not in ``POSITIONAL``.

Positions are per example (``[B, T]``), not a shared ``arange(T)``, so that
left-padded batches, packed sequences and decoding steps with a KV cache all
use the same code. Concrete out-of-range positions raise; traced ones give NaN
rows (see ``zoo.nn.embed``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from zoo.nn.embed import check_indices, take_rows

Array = jax.Array
Dtype = Any
Initializer = nn.initializers.Initializer


SINUSOID_LAYOUTS = ("interleaved", "concat")


def sinusoidal_table(length: int, d: int, max_timescale: float = 10000.0,
                     layout: str = "interleaved") -> np.ndarray:
    """The [T, D] float32 table (T = length) of "Attention Is All You Need" §3.5.

    PE[pos, 2i] = sin(pos / max_timescale^(2i/d)) and PE[pos, 2i+1] = cos(same
    angle): sin and cos interleaved, as in the paper (``layout='interleaved'``).
    ``layout='concat'`` puts the same columns in another order, all sines first
    and then all cosines, [sin | cos], which is what Hugging Face's Marian (and
    fairseq's variant with these angles) was trained with; a checkpoint only
    reproduces its outputs with its own order. For odd ``d`` the extra column
    is a sin. Computed in float64 with numpy, so under ``jit`` it is a
    compile-time constant.
    """
    if layout not in SINUSOID_LAYOUTS:
        raise ValueError(f"layout must be one of {list(SINUSOID_LAYOUTS)}, got {layout!r}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if d <= 0:
        raise ValueError(f"d must be a positive width, got {d}")
    if max_timescale <= 0:
        raise ValueError(f"max_timescale must be positive, got {max_timescale}")
    pos = np.arange(length, dtype=np.float64)  # [T]
    col = np.arange(d)  # [D]
    two_i = col - col % 2  # [D]: the 2i shared by columns 2i and 2i + 1
    inv_timescale = max_timescale ** (-two_i / d)  # [D]
    angle = pos[:, None] * inv_timescale[None, :]  # [T, D]
    table = np.where(col % 2 == 0, np.sin(angle), np.cos(angle))  # [T, D]
    if layout == "concat":  # columns 0, 2, 4, ... (the sines), then 1, 3, 5, ...
        table = np.concatenate([table[:, 0::2], table[:, 1::2]], axis=1)  # [T, D]
    return table.astype(np.float32)


def _check_positions(positions: Any, max_len: int) -> None:
    if np.ndim(positions) != 2:
        raise ValueError(f"positions must be 2-D [B, T], got shape {np.shape(positions)}")
    check_indices(positions, max_len, name="positions", size_name="max_len")


def _check_sizes(max_len: int, features: int) -> None:
    if max_len <= 0:
        raise ValueError(f"max_len must be a positive table length, got {max_len}")
    if features <= 0:
        raise ValueError(f"features must be a positive width, got {features}")


class SinusoidalEmbedding(nn.Module):
    """Fixed sinusoidal position vectors; no parameters.

    Attributes:
      max_len: number of table rows; positions must lie in [0, max_len).
      features: model width D.
      max_timescale: the 10000 of the paper.
      layout: column order, 'interleaved' (the paper) or 'concat' ([sin | cos]).
      dtype: output dtype.
    """

    max_len: int
    features: int
    max_timescale: float = 10000.0
    layout: str = "interleaved"
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        _check_sizes(self.max_len, self.features)
        if self.layout not in SINUSOID_LAYOUTS:
            raise ValueError(f"layout must be one of {list(SINUSOID_LAYOUTS)}, "
                             f"got {self.layout!r}")
        super().__post_init__()

    def __call__(self, positions: Array) -> Array:
        """positions: [B, T] integer -> [B, T, D]."""
        _check_positions(positions, self.max_len)
        table = sinusoidal_table(self.max_len, self.features, self.max_timescale,
                                 self.layout)  # [max_len, D]
        x = take_rows(jnp.asarray(table, self.dtype), jnp.asarray(positions))  # [B, T, D]
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class LearnedPositionalEmbedding(nn.Module):
    """A learned [max_len, D] table of position vectors (BERT, GPT-2).

    Attributes:
      max_len: number of table rows; positions must lie in [0, max_len).
      features: model width D.
      dtype: output dtype.
      param_dtype: table dtype.
      embedding_init: table initializer; normal(0.02) as in BERT and GPT-2,
        small so the positions start as a mild perturbation of the tokens.
    """

    max_len: int
    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    embedding_init: Initializer = nn.initializers.normal(stddev=0.02)

    def __post_init__(self):
        _check_sizes(self.max_len, self.features)
        super().__post_init__()

    @nn.compact
    def __call__(self, positions: Array) -> Array:
        """positions: [B, T] integer -> [B, T, D]."""
        _check_positions(positions, self.max_len)
        # The length axis is never sharded: every device needs every position.
        table = self.param(
            "embedding",
            nn.with_logical_partitioning(self.embedding_init, (None, "embed")),
            (self.max_len, self.features),  # [max_len, D]
            self.param_dtype,
        )
        x = take_rows(jnp.asarray(table, self.dtype), jnp.asarray(positions))  # [B, T, D]
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


POSITIONAL: dict[str, type[nn.Module]] = {
    "sinusoidal": SinusoidalEmbedding,
    "learned": LearnedPositionalEmbedding,
}


def apply_rotary(x: Array, positions: Array, *, max_wavelength: float = 10000.0) -> Array:
    """Rotary position embedding (Su et al., RoFormer), "rotate half" convention.

    Channel i is paired with channel i + H/2 and the pair is rotated by the
    angle pos / max_wavelength^(2i/H). Rotations preserve norms, and since
    R(m)^T R(n) = R(n - m), q·k after rotation depends only on the positions'
    difference. Computed in float32 (angles of large positions lose too much
    precision in bfloat16) and cast back to ``x.dtype``.

    Args:
      x: [B, T, N, H] queries or keys; H must be even.
      positions: [B, T] positions of each token (integer or float).
      max_wavelength: the 10000 base of the frequencies.

    Returns:
      [B, T, N, H], same dtype as ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D [B, T, N, H], got shape {x.shape}")
    head_dim = x.shape[-1]
    if head_dim % 2:
        raise ValueError(f"head dim H = x.shape[-1] must be even for rotary, got {head_dim}")
    if jnp.ndim(positions) != 2 or jnp.shape(positions) != x.shape[:2]:
        raise ValueError(
            f"positions must be [B, T] = {x.shape[:2]} to match x, got {jnp.shape(positions)}"
        )
    half = head_dim // 2
    inv_freq = max_wavelength ** (-2.0 * np.arange(half) / head_dim)  # [H/2]
    angle = jnp.einsum(
        "BT,h->BTh", jnp.asarray(positions, jnp.float32), jnp.asarray(inv_freq, jnp.float32)
    )  # [B, T, H/2]
    # A size-1 heads axis (same rank, so rank promotion stays strict) shares angles over N.
    sin = jnp.sin(angle)[:, :, None, :]  # [B, T, 1, H/2]
    cos = jnp.cos(angle)[:, :, None, :]  # [B, T, 1, H/2]
    x32 = x.astype(jnp.float32)
    x1, x2 = x32[..., :half], x32[..., half:]  # [B, T, N, H/2] each
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)  # [B, T, N, H]
    return out.astype(x.dtype)
