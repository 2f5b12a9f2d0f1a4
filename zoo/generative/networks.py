"""Encoders and decoders shared by the VAE: an MLP pair and a convolutional pair.

Glossary (images): B batch, Y height, X width, C channels, Z latent size,
D hidden width. An encoder maps [B, ...] to 2Z numbers (posterior mean and log
std); a decoder maps [B, Z] back to [B, ...] distribution parameters.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax

from zoo.generative.config import VAEConfig


class MLPEncoder(nn.Module):
    config: VAEConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, ...] -> [B, 2Z]
        cfg = self.config
        h = x.reshape(x.shape[0], -1).astype(cfg.dtype)  # [B, prod(...)]
        for width in cfg.hidden_dims:
            h = nn.relu(nn.Dense(width, dtype=cfg.dtype)(h))  # [B, D]
        return nn.Dense(2 * cfg.latent_dim, dtype=cfg.dtype)(h)  # [B, 2Z]


class MLPDecoder(nn.Module):
    config: VAEConfig

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:  # [B, Z] -> [B, ...]
        cfg = self.config
        h = z.astype(cfg.dtype)
        for width in reversed(cfg.hidden_dims):
            h = nn.relu(nn.Dense(width, dtype=cfg.dtype)(h))  # [B, D]
        out = nn.Dense(math.prod(cfg.data_shape), dtype=cfg.dtype)(h)  # [B, prod(...)]
        return out.reshape(z.shape[0], *cfg.data_shape)  # [B, ...]


class ConvEncoder(nn.Module):
    """Stride-2 3x3 convolutions, each halving Y and X, then a dense layer to 2Z."""

    config: VAEConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, Y, X, C] -> [B, 2Z]
        cfg = self.config
        h = x.astype(cfg.dtype)
        for channels in cfg.hidden_dims:
            h = nn.relu(nn.Conv(channels, (3, 3), strides=2, dtype=cfg.dtype)(h))  # [B, Y', X', D]
        h = h.reshape(h.shape[0], -1)  # [B, Y' X' D]
        return nn.Dense(2 * cfg.latent_dim, dtype=cfg.dtype)(h)  # [B, 2Z]


class ConvDecoder(nn.Module):
    """The mirror of ``ConvEncoder``: dense to the smallest map, stride-2 transposed convs up."""

    config: VAEConfig

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:  # [B, Z] -> [B, Y, X, C]
        cfg = self.config
        height, width, channels = cfg.data_shape
        factor = 2 ** len(cfg.hidden_dims)
        h0, w0, d0 = height // factor, width // factor, cfg.hidden_dims[-1]
        h = nn.relu(nn.Dense(h0 * w0 * d0, dtype=cfg.dtype)(z.astype(cfg.dtype)))  # [B, h0 w0 D]
        h = h.reshape(z.shape[0], h0, w0, d0)  # [B, h0, w0, D]
        for d in reversed(cfg.hidden_dims[:-1]):
            h = nn.relu(nn.ConvTranspose(d, (4, 4), strides=(2, 2), dtype=cfg.dtype)(h))
        # The last layer is linear: it gives logits or means.
        return nn.ConvTranspose(channels, (4, 4), strides=(2, 2), dtype=cfg.dtype)(h)  # [B,Y,X,C]


# architecture -> (encoder, decoder)
NETWORKS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPEncoder, MLPDecoder),
    "conv": (ConvEncoder, ConvDecoder),
}

__all__ = ["NETWORKS", "ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder"]
