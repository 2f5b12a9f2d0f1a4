"""A GAN (Goodfellow et al. 2014) with DCGAN-style networks (Radford et al. 2016) and an MLP pair.

    G: z ~ N(0, I) [B, Z] -> x [B, ...]          D: x [B, ...] -> logit [B]

DCGAN generator: dense to a 1/4-resolution map, two upsamplings (stride-2
transposed convolutions, or nearest resizing + a convolution), ReLU, tanh
output. Discriminator: two stride-2 convolutions with leaky ReLU, a dense logit,
each optionally spectrally normalised (Miyato et al. 2018). Batch norm is
replaced by layer norm in G and left out of D: batch statistics would make the
step impure (mutable state) and couple real and fake batches in D, for little
gain at this size.

Glossary: B batch, Z latent (noise) size, Y height, X width, C channels, D hidden
width (units or channels).

    gan = GAN(GANConfig())
    params = gan.init(key, z, x)["params"]          # {'generator': ..., 'discriminator': ...}
    fake = gan.apply({"params": params}, z, method=GAN.generate)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.generative.config import Dtype, GANConfig

OUTPUT_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "linear": lambda x: x,
}


def _leaky_relu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, negative_slope=0.2)


class MLPGenerator(nn.Module):
    config: GANConfig

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:  # [B, Z] -> [B, ...]
        cfg = self.config
        h = z.astype(cfg.dtype)
        for width in cfg.generator_dims:
            h = nn.relu(nn.Dense(width, dtype=cfg.dtype)(h))  # [B, D]
        x = nn.Dense(math.prod(cfg.data_shape), dtype=cfg.dtype)(h)  # [B, prod(...)]
        x = OUTPUT_ACTIVATIONS[cfg.output_activation](x.astype(jnp.float32))
        return x.reshape(z.shape[0], *cfg.data_shape)  # [B, ...]


class MLPDiscriminator(nn.Module):
    config: GANConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, ...] -> [B]
        cfg = self.config
        h = x.reshape(x.shape[0], -1).astype(cfg.dtype)  # [B, prod(...)]
        for width in cfg.discriminator_dims:
            h = _leaky_relu(nn.Dense(width, dtype=cfg.dtype)(h))  # [B, D]
        return nn.Dense(1, dtype=cfg.dtype)(h)[:, 0].astype(jnp.float32)  # [B]


class Upsample(nn.Module):
    """Doubles Y and X: a stride-2 4x4 transposed convolution ('transpose', DCGAN's), or
    nearest-neighbour resizing then a 3x3 convolution ('resize'), which cannot draw the
    checkerboard a transposed convolution's uneven kernel overlap makes (Odena et al. 2016)."""

    features: int
    mode: str
    dtype: Dtype

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:  # [B, Y, X, D] -> [B, 2Y, 2X, features]
        if self.mode == "transpose":
            return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), dtype=self.dtype)(h)
        b, y, x, d = h.shape
        h = jax.image.resize(h, (b, 2 * y, 2 * x, d), "nearest")  # [B, 2Y, 2X, D]
        return nn.Conv(self.features, (3, 3), dtype=self.dtype)(h)


def _spectral_normalized(kernel: jax.Array) -> jax.Array:
    """kernel / its largest singular value, with the kernel seen as a [inputs, outputs]
    matrix (Miyato et al. 2018). The exact value (an SVD of a small matrix) rather than a
    power iteration: no iteration state, so the train step stays a pure function."""
    matrix = kernel.reshape(-1, kernel.shape[-1]).astype(jnp.float32)  # [inputs, outputs]
    sigma = jnp.linalg.svd(matrix, compute_uv=False)[0]
    return (kernel / sigma).astype(kernel.dtype)


class _Layer(nn.Module):
    """A convolution or dense layer whose kernel is spectrally normalised when asked."""

    features: int
    kernel_size: tuple[int, ...] | None  # None: dense
    strides: int
    spectral_norm: bool
    dtype: Dtype

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        in_features = h.shape[-1]
        shape = (*(self.kernel_size or ()), in_features, self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        if self.spectral_norm:
            kernel = _spectral_normalized(kernel)
        kernel, h = kernel.astype(self.dtype), h.astype(self.dtype)
        if self.kernel_size is None:
            out = h @ kernel  # [B, features]
        else:
            out = jax.lax.conv_general_dilated(  # [B, Y', X', features]
                h, kernel, (self.strides,) * len(self.kernel_size), "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return out + bias.astype(self.dtype).reshape((1,) * (out.ndim - 1) + (-1,))


class DCGANGenerator(nn.Module):
    config: GANConfig

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:  # [B, Z] -> [B, Y, X, C]
        cfg = self.config
        height, width, channels = cfg.data_shape
        d_quarter, d_half = cfg.generator_dims
        h = nn.Dense((height // 4) * (width // 4) * d_quarter, dtype=cfg.dtype)(
            z.astype(cfg.dtype))  # [B, Y/4 X/4 D]
        h = h.reshape(z.shape[0], height // 4, width // 4, d_quarter)  # [B, Y/4, X/4, D]
        h = nn.relu(nn.LayerNorm(dtype=cfg.dtype)(h))
        h = Upsample(d_half, cfg.upsample, cfg.dtype)(h)  # [B, Y/2, X/2, D]
        h = nn.relu(nn.LayerNorm(dtype=cfg.dtype)(h))
        x = Upsample(channels, cfg.upsample, cfg.dtype)(h)  # [B, Y, X, C]
        return OUTPUT_ACTIVATIONS[cfg.output_activation](x.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
    config: GANConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, Y, X, C] -> [B]
        cfg = self.config
        h = x.astype(cfg.dtype)
        for channels in cfg.discriminator_dims:  # each halves Y and X
            h = _leaky_relu(_Layer(channels, (4, 4), 2, cfg.spectral_norm, cfg.dtype)(h))
        h = h.reshape(h.shape[0], -1)  # [B, Y/4 X/4 D]
        return _Layer(1, None, 1, cfg.spectral_norm, cfg.dtype)(h)[:, 0].astype(jnp.float32)


# architecture -> (generator, discriminator)
NETWORKS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
}


class GANOutput(NamedTuple):
    fake: jax.Array  # [B, ...] G(z)
    real_logits: jax.Array  # [B] float32 D(x)
    fake_logits: jax.Array  # [B] float32 D(G(z))


class GAN(nn.Module):
    """G and D under one parameter tree: params['generator'] and params['discriminator']."""

    config: GANConfig

    def setup(self):
        generator, discriminator = NETWORKS[self.config.architecture]
        self.generator = generator(self.config)
        self.discriminator = discriminator(self.config)

    def generate(self, z: jax.Array) -> jax.Array:  # [B, Z] -> [B, ...]
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z must be [B, {self.config.latent_dim}] (config.latent_dim), "
                             f"got shape {tuple(z.shape)}")
        return self.generator(z)

    def discriminate(self, x: jax.Array) -> jax.Array:  # [B, ...] -> [B] logits
        if tuple(x.shape[1:]) != tuple(self.config.data_shape):
            raise ValueError(f"x must be [B, {', '.join(map(str, self.config.data_shape))}] "
                             f"(config.data_shape), got shape {tuple(x.shape)}")
        return self.discriminator(x)

    def __call__(self, z: jax.Array, x: jax.Array) -> GANOutput:
        fake = self.generate(z)
        return GANOutput(fake, self.discriminate(x), self.discriminate(fake))


# ---------------------------------------------------------------------------- losses


class GANLoss(NamedTuple):
    discriminator: Callable[[jax.Array, jax.Array], jax.Array]  # (real [B], fake [B]) -> []
    generator: Callable[[jax.Array], jax.Array]  # fake logits [B] -> []


LOSSES: dict[str, GANLoss] = {
    # D: -log D(x) - log(1 - D(G(z))); G: -log D(G(z)), which keeps gradients alive
    # while D still wins easily (Goodfellow et al. 2014, section 3).
    "non_saturating": GANLoss(
        lambda real, fake: jnp.mean(jax.nn.softplus(-real) + jax.nn.softplus(fake)),
        lambda fake: jnp.mean(jax.nn.softplus(-fake)),
    ),
    # Lim & Ye 2017; Miyato et al. 2018.
    "hinge": GANLoss(
        lambda real, fake: jnp.mean(jax.nn.relu(1 - real) + jax.nn.relu(1 + fake)),
        lambda fake: -jnp.mean(fake),
    ),
}
