"""The noise-prediction U-Net of DDPM (Ho et al. 2020), sized for small images.

    t -> sinusoidal features -> MLP -> time embedding E, added inside every residual block
    x -> conv -> [residual blocks, downsample] per level -> middle -> [residual blocks with
         skips, upsample] per level -> GroupNorm, swish, conv -> predicted noise

Each level after the first halves Y and X with a stride-2 convolution (28 -> 14 -> 7 for
``channel_mults`` of length 3); the way up resizes by nearest neighbour and convolves
(no transposed convolutions, which leave checkerboard artefacts). Every activation of
the way down is kept and concatenated, in reverse order, onto the way up.

Glossary: B batch, Y height, X width, C image channels, D feature channels at a level,
E time-embedding width (4 x base_channels), P = Y X positions.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def timestep_features(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Sinusoidal features of (integer or real) times t [B] -> [B, dim], as in the Transformer."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)  # [dim/2]
    angles = t.astype(jnp.float32)[:, None] * freqs[None, :]  # [B, dim/2]
    features = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)  # [B, 2 (dim/2)]
    return jnp.pad(features, ((0, 0), (0, dim - 2 * half)))  # [B, dim] (odd dim: a zero column)


class ResBlock(nn.Module):
    """GroupNorm, swish, conv; + projected time embedding; GroupNorm, swish, dropout, conv;
    plus the input (1x1-projected when the width changes)."""

    channels: int
    groups: int
    dropout: float
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array, deterministic: bool) -> jax.Array:
        # x [B, Y, X, D_in], emb [B, E] -> [B, Y, X, D]
        h = nn.swish(nn.GroupNorm(self.groups, dtype=self.dtype)(x))
        h = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(h)  # [B, Y, X, D]
        h = h + nn.Dense(self.channels, dtype=self.dtype)(nn.swish(emb))[:, None, None, :]
        h = nn.swish(nn.GroupNorm(self.groups, dtype=self.dtype)(h))
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        h = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(h)  # [B, Y, X, D]
        if x.shape[-1] != self.channels:
            x = nn.Conv(self.channels, (1, 1), dtype=self.dtype)(x)  # [B, Y, X, D]
        return x + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the positions of a feature map, with a residual."""

    groups: int
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, Y, X, D] -> [B, Y, X, D]
        b, y, w, d = x.shape
        h = nn.GroupNorm(self.groups, dtype=self.dtype)(x).reshape(b, y * w, d)  # [B, P, D]
        h = nn.MultiHeadDotProductAttention(num_heads=1, dtype=self.dtype)(h)  # [B, P, D]
        return x + h.reshape(b, y, w, d)


class Downsample(nn.Module):
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, Y, X, D] -> [B, Y/2, X/2, D]
        return nn.Conv(x.shape[-1], (3, 3), strides=2, dtype=self.dtype)(x)


class Upsample(nn.Module):
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, Y, X, D] -> [B, 2Y, 2X, D]
        b, y, w, d = x.shape
        x = jax.image.resize(x, (b, 2 * y, 2 * w, d), method="nearest")  # [B, 2Y, 2X, D]
        return nn.Conv(d, (3, 3), dtype=self.dtype)(x)


class UNet(nn.Module):
    """eps_theta(x_t, t): x_t [B, Y, X, C], timesteps t [B] -> predicted noise [B, Y, X, C]."""

    # A zoo.generative.diffusion.DiffusionConfig: it lives beside the DDPM, which imports
    # this file, so naming its type here would make an import cycle.
    config: Any

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, deterministic: bool = True) -> jax.Array:
        cfg = self.config
        dtype, groups, base = cfg.dtype, cfg.norm_groups, cfg.base_channels

        def block(channels):
            return ResBlock(channels, groups, cfg.dropout, dtype)

        emb = timestep_features(t, base)  # [B, base]
        emb = nn.Dense(4 * base, dtype=dtype)(emb)  # [B, E]
        emb = nn.Dense(4 * base, dtype=dtype)(nn.swish(emb))  # [B, E]

        h = nn.Conv(base, (3, 3), dtype=dtype)(x.astype(dtype))  # [B, Y, X, base]
        skips = [h]
        last = len(cfg.channel_mults) - 1
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                h = block(base * mult)(h, emb, deterministic)  # [B, Y', X', D]
                skips.append(h)
            if level != last:
                h = Downsample(dtype)(h)  # [B, Y'/2, X'/2, D]
                skips.append(h)

        h = block(h.shape[-1])(h, emb, deterministic)  # [B, Y_min, X_min, D]
        if cfg.attention:
            h = SelfAttention(groups, dtype)(h)
        h = block(h.shape[-1])(h, emb, deterministic)

        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):  # one more: the downsample's skip too
                h = jnp.concatenate([h, skips.pop()], axis=-1)  # [B, Y', X', D + D_skip]
                h = block(base * mult)(h, emb, deterministic)  # [B, Y', X', D]
            if level != 0:
                h = Upsample(dtype)(h)  # [B, 2Y', 2X', D]

        h = nn.swish(nn.GroupNorm(groups, dtype=dtype)(h))
        out = nn.Conv(x.shape[-1], (3, 3), dtype=dtype)(h)  # [B, Y, X, C]
        return out.astype(jnp.float32)
