"""A RealNVP-style normalizing flow (Dinh et al. 2017), with Glow's invertible 1x1
convolutions as an option (Kingma & Dhariwal 2018): an exact log-likelihood.

    x_cont = (pixel + u) / L,  u ~ U[0, 1)^D          uniform dequantisation, L = 256 levels
    h = logit(alpha + (1 - 2 alpha) x_cont)           LogitTransform, exact logdet
    per scale: [ActNorm, (1x1 conv), checkerboard coupling] x K, squeeze (2x2 -> channels),
               [ActNorm, (1x1 conv), channel coupling] x K, half the channels -> z_i
    last: [ActNorm, (1x1 conv), checkerboard coupling] x K_final -> z_last
    log p(x_cont) = sum_i log N(z_i; 0, I) + sum of the layers' logdets
    bits/dim = (-log p(x_cont) + D log L) / (D ln 2)

``-log p(x_cont) + D log L`` is -log of the density of the 8-bit data scaled back to
the [0, L) grid, and its expectation over u bounds -log P(pixels) from above
(Theis et al. 2016): the reported bits/dim are an upper bound, estimated with one
draw of u per image. With a 28x28 image at most two squeezes fit (7 is odd).

Glossary: B batch, Y height, X width, C channels; D = Y X C dimensions per image.

    flow = RealNVP(FlowConfig())
    params = flow.init(key, x_cont)                                   # x_cont [B, Y, X, C]
    zs, logdet = flow.apply(params, x_cont)                           # list of z, [B]
    log_p = flow.apply(params, x_cont, method=RealNVP.log_prob)       # [B] nats
    bpd = flow.apply(params, pixels, key, method=RealNVP.bits_per_dim)  # [B]
    images = flow.apply(params, key, 64, 0.7, method=RealNVP.sample)  # [64, Y, X, C] in [0, 1]
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.generative import flow_layers as fl
from zoo.generative.config import Dtype, _positive_int, _positive_ints

LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """RealNVP hyperparameters.

    Attributes:
      data_shape: one image, ``(Y, X, C)``, Y and X divisible by 2**num_scales.
      num_scales: squeezes, each followed by factoring half the channels out to the prior.
      couplings_per_scale: K, checkerboard couplings before each squeeze and channel
        couplings after it.
      final_couplings: checkerboard couplings at the coarsest scale.
      hidden_channels: F, width of the couplings' s/t networks.
      num_res_blocks: residual blocks (two 3x3 convolutions each) of those networks.
      num_levels: L, grey levels of the data (256 for 8 bits).
      alpha: the logit preprocessing's margin, in (0, 0.5).
      invertible_conv: a learned 1x1 convolution before every coupling (Glow).
      dtype: compute dtype of the s/t networks: float32 or bfloat16 (params, logdets and
        losses stay float32), or float64 under ``jax.enable_x64`` with float64 inputs and
        params, for exact checks of the log-determinants (tests/generative/test_flow.py).
    """

    data_shape: tuple[int, ...] = (28, 28, 1)
    num_scales: int = 2
    couplings_per_scale: int = 3
    final_couplings: int = 4
    hidden_channels: int = 64
    num_res_blocks: int = 2
    num_levels: int = 256
    alpha: float = 0.05
    invertible_conv: bool = False
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        _positive_ints("data_shape", self.data_shape)
        _positive_int("num_scales", self.num_scales)
        factor = 2**self.num_scales
        if len(self.data_shape) != 3 or self.data_shape[0] % factor or self.data_shape[1] % factor:
            raise ValueError(f"data_shape must be (Y, X, C) with Y and X divisible by {factor} "
                             f"(num_scales={self.num_scales} squeezes halve them), got "
                             f"{self.data_shape!r}")
        _positive_int("couplings_per_scale", self.couplings_per_scale)
        _positive_int("final_couplings", self.final_couplings)
        _positive_int("hidden_channels", self.hidden_channels)
        if not isinstance(self.num_res_blocks, int) or self.num_res_blocks < 0:
            raise ValueError(f"num_res_blocks must be an int >= 0, got {self.num_res_blocks!r}")
        if not isinstance(self.num_levels, int) or self.num_levels < 2:
            raise ValueError(f"num_levels must be an int >= 2, got {self.num_levels!r}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha!r}")
        if not isinstance(self.invertible_conv, bool):
            raise ValueError(f"invertible_conv must be a bool, got {self.invertible_conv!r}")
        if jnp.dtype(self.dtype) not in (jnp.dtype("float32"), jnp.dtype("bfloat16"),
                                         jnp.dtype("float64")):
            raise ValueError(f"dtype must be float32, bfloat16 or float64, got {self.dtype!r}")

    @property
    def num_dims(self) -> int:
        """D: dimensions per image."""
        return math.prod(self.data_shape)

    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """The shape of each z the flow outputs (one per scale, then the last), no batch axis."""
        y, x, c = self.data_shape
        shapes = []
        for _ in range(self.num_scales):
            y, x, c = y // 2, x // 2, 4 * c  # the squeeze
            shapes.append((y, x, c // 2))  # half of it is factored out
            c //= 2
        return [*shapes, (y, x, c)]


def dequantize(pixels: jax.Array, key: jax.Array, num_levels: int) -> jax.Array:
    """Integer grey levels [B, ...] in {0 .. L-1} -> x_cont = (pixel + u) / L in [0, 1],
    u ~ U[0, 1) drawn from ``key``."""
    u = jax.random.uniform(key, pixels.shape, jnp.float32)
    return (pixels.astype(jnp.float32) + u) / num_levels


def bits_per_dim(log_prob: jax.Array, num_dims: int, num_levels: int) -> jax.Array:
    """log p(x_cont) in nats [B] -> bits per dimension of the L-level data [B]:
    (-log p(x_cont) + D log L) / (D ln 2)."""
    return (-log_prob + num_dims * math.log(num_levels)) / (num_dims * math.log(2))


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
    """log N(z; 0, I) of each example, [B, ...] -> [B]."""
    return -0.5 * jnp.sum((z**2 + LOG_2PI).reshape(z.shape[0], -1), axis=-1)


class RealNVP(nn.Module):
    config: FlowConfig

    def setup(self):
        cfg = self.config

        def step(channels: int, mask: str, parity: int) -> list[nn.Module]:
            layers = [fl.ActNorm(channels)]
            if cfg.invertible_conv:
                layers.append(fl.InvertibleConv1x1(channels))
            return [*layers, fl.AffineCoupling(channels, mask, parity, cfg.hidden_channels,
                                               cfg.num_res_blocks, cfg.dtype)]

        channels = cfg.data_shape[-1]
        blocks = []  # one list of layers per scale, then the last; z_i is split off after each
        for _ in range(cfg.num_scales):
            layers = [m for k in range(cfg.couplings_per_scale)
                      for m in step(channels, "checkerboard", k % 2)]
            layers.append(fl.Squeeze())
            channels *= 4
            layers += [m for k in range(cfg.couplings_per_scale)
                       for m in step(channels, "channel", k % 2)]
            blocks.append(layers)
            channels //= 2
        blocks.append([m for k in range(cfg.final_couplings)
                       for m in step(channels, "checkerboard", k % 2)])
        self.preprocess = fl.LogitTransform(cfg.alpha)
        self.blocks = blocks

    def _check(self, x: jax.Array) -> None:
        if tuple(x.shape[1:]) != tuple(self.config.data_shape):
            raise ValueError(f"x must be [B, {', '.join(map(str, self.config.data_shape))}] "
                             f"(config.data_shape), got shape {tuple(x.shape)}")

    def __call__(self, x_cont: jax.Array) -> tuple[list[jax.Array], jax.Array]:
        """x_cont [B, Y, X, C] in [0, 1] -> (z per scale and the last, ``latent_shapes``
        with the batch axis; the summed logdet of every layer [B])."""
        self._check(x_cont)
        if not jnp.issubdtype(x_cont.dtype, jnp.floating):
            x_cont = x_cont.astype(jnp.float32)
        h, logdet = self.preprocess.forward(x_cont)  # [B, Y, X, C], [B]
        zs = []
        for i, block in enumerate(self.blocks):
            for layer in block:
                h, layer_logdet = layer.forward(h)
                logdet = logdet + layer_logdet
            if i < len(self.blocks) - 1:  # factor out half the channels to the prior
                z, h = jnp.split(h, 2, axis=-1)  # [B, Y', X', C'/2] each
                zs.append(z)
        return [*zs, h], logdet

    def inverse(self, zs: list[jax.Array]) -> jax.Array:
        """The latents (as ``__call__`` gives them) -> x_cont [B, Y, X, C], unclipped."""
        h = zs[-1]
        for i in reversed(range(len(self.blocks))):
            if i < len(self.blocks) - 1:
                h = jnp.concatenate([zs[i], h], axis=-1)  # [B, Y', X', C']
            for layer in reversed(self.blocks[i]):
                h = layer.inverse(h)
        return self.preprocess.inverse(h)

    def log_prob(self, x_cont: jax.Array) -> jax.Array:
        """log p(x_cont) in nats [B], a density on [0, 1]^D."""
        zs, logdet = self(x_cont)
        return sum(standard_normal_log_prob(z) for z in zs) + logdet

    def bits_per_dim(self, pixels: jax.Array, key: jax.Array) -> jax.Array:
        """Grey levels [B, Y, X, C] in {0 .. L-1} -> bits/dim [B], dequantised with ``key``."""
        cfg = self.config
        return bits_per_dim(self.log_prob(dequantize(pixels, key, cfg.num_levels)),
                            cfg.num_dims, cfg.num_levels)

    def sample(self, key: jax.Array, num: int, temperature: float = 1.0) -> jax.Array:
        """``num`` images [num, Y, X, C] in [0, 1]: z ~ N(0, temperature^2 I) through the
        inverse flow (temperature < 1 trades diversity for cleaner images)."""
        keys = jax.random.split(key, self.config.num_scales + 1)
        zs = [temperature * jax.random.normal(k, (num, *shape), jnp.float32)
              for k, shape in zip(keys, self.config.latent_shapes(), strict=True)]
        return jnp.clip(self.inverse(zs), 0.0, 1.0)


FLOW_PRESETS: dict[str, FlowConfig] = {
    # 28x28x1 -> 14x14x4 (2 to the prior) -> 7x7x8 (4 to the prior) -> 7x7x4 last.
    # Sized for about 20 minutes of 2 CPU cores (configs/flow_fashion_mnist.py); the
    # RealNVP paper's networks are far wider (e.g. hidden_channels=64, num_res_blocks=8).
    "flow_realnvp_fashion_mnist": FlowConfig(num_scales=2, couplings_per_scale=2,
                                             final_couplings=2, hidden_channels=32,
                                             num_res_blocks=1, invertible_conv=True),
    "flow_tiny": FlowConfig(num_scales=2, couplings_per_scale=1, final_couplings=1,
                            hidden_channels=8, num_res_blocks=1, invertible_conv=True),
}
