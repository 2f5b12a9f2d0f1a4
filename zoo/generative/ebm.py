"""An energy-based model: an MLP energy E(x) trained by contrastive divergence (Du & Mordatch 2019).

    p(x) ∝ exp(-E(x))          E: x [B, ...] -> energy [B] (low on data)

Glossary: B batch (points or chain count), D hidden width, N buffer size;
``...`` is one example, (2,) for points in the plane.

Training (``contrastive_divergence_loss``) lowers the energy of data and
raises it on *negatives*, samples of the model drawn by a few steps of
Langevin dynamics (``langevin``). The chains start from a persistent replay
buffer of earlier negatives, and a ``reinit_prob`` fraction of them from fresh
uniform noise in [-init_range, init_range] so that new modes keep being found.
A small L2 penalty ``alpha * (E(x+)^2 + E(x-)^2)`` keeps the energies near 0
(without it they drift apart without bound). The buffer itself and how a train
step writes it live in the 'ebm' family (``zoo/train/families/ebm.py``): this
file is the model and its pure functions only.

    ebm = EBM(EBMConfig())
    params = ebm.init(key, x)["params"]
    energy = ebm.apply({"params": params}, x)                        # [B]
    x_neg = langevin(lambda x: ebm.apply({"params": params}, x), x0, key, 60, 0.01, 0.1)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.generative.config import _dtype, _one_of, _positive_int, _positive_ints

# Smooth activations only: Langevin dynamics follows dE/dx, which a ReLU net makes
# piecewise constant (and zero curvature between kinks), so chains drift poorly.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "swish": nn.swish,  # x * sigmoid(x), a.k.a. SiLU
    "softplus": nn.softplus,
    "gelu": nn.gelu,
}


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class EBMConfig:
    """Energy network and sampler hyperparameters.

    Attributes:
      data_shape: one example; (2,) for points in the plane.
      hidden_dims: widths of the MLP's hidden layers.
      activation: a smooth nonlinearity (``ACTIVATIONS``): Langevin follows its gradients.
      langevin_steps: Langevin steps per train step, from the buffer or fresh noise.
      step_size: epsilon of ``langevin``: the drift is -epsilon/2 * dE/dx.
      noise_scale: s of ``langevin``: the noise is s * sqrt(epsilon) * N(0, I); s = 1 is
        Langevin dynamics of exp(-E), s < 1 that of exp(-E / s^2) (a colder sampler).
      buffer_size: N, negatives kept between train steps (the persistent buffer); at
        least the batch size.
      reinit_prob: fraction of the chains started from fresh uniform noise rather than
        from the buffer (5% in Du & Mordatch 2019).
      alpha: weight of the L2 energy penalty.
      init_range: fresh samples are uniform in [-init_range, init_range] per coordinate.
      dtype: compute dtype; params and energies stay float32.
    """

    data_shape: tuple[int, ...] = (2,)
    hidden_dims: tuple[int, ...] = (128, 128)
    activation: str = "swish"
    langevin_steps: int = 40
    step_size: float = 0.01
    noise_scale: float = 0.1
    buffer_size: int = 8192
    reinit_prob: float = 0.05
    alpha: float = 0.1
    init_range: float = 3.0
    dtype: Any = jnp.float32

    def __post_init__(self):
        _positive_ints("data_shape", self.data_shape)
        _positive_ints("hidden_dims", self.hidden_dims)
        _one_of("activation", self.activation, ACTIVATIONS)
        _positive_int("langevin_steps", self.langevin_steps)
        _positive("step_size", self.step_size)
        _positive("noise_scale", self.noise_scale)
        _positive_int("buffer_size", self.buffer_size)
        if isinstance(self.reinit_prob, bool) or not 0 <= self.reinit_prob <= 1:
            raise ValueError(f"reinit_prob must be a probability in [0, 1], "
                             f"got {self.reinit_prob!r}")
        if isinstance(self.alpha, bool) or not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        _positive("init_range", self.init_range)
        _dtype("dtype", self.dtype)


class EBM(nn.Module):
    """E(x): an MLP with a smooth activation and one linear output unit."""

    config: EBMConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, ...] -> [B] float32
        cfg = self.config
        if tuple(x.shape[1:]) != tuple(cfg.data_shape):
            raise ValueError(f"x must be [B, {', '.join(map(str, cfg.data_shape))}] "
                             f"(config.data_shape), got shape {tuple(x.shape)}")
        act = ACTIVATIONS[cfg.activation]
        h = x.reshape(x.shape[0], -1).astype(cfg.dtype)  # [B, prod(...)]
        for width in cfg.hidden_dims:
            h = act(nn.Dense(width, dtype=cfg.dtype)(h))  # [B, D]
        return nn.Dense(1, dtype=cfg.dtype)(h)[:, 0].astype(jnp.float32)  # [B]


def langevin(energy_fn: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array,
             steps: int, step_size: float, noise: float = 1.0) -> jax.Array:
    """``steps`` steps of unadjusted Langevin dynamics from x [B, ...]; returns [B, ...].

        x <- x - step_size / 2 * dE/dx + noise * sqrt(step_size) * N(0, I)

    With ``noise = 1`` the chain's stationary law tends to exp(-E(x)) as
    ``step_size`` -> 0 (no Metropolis correction, so a small bias of order
    step_size remains); with ``noise = s`` it samples exp(-E(x) / s^2). The
    energies of the B chains are summed before the gradient: ``energy_fn`` must
    treat examples independently (an MLP does), so each chain gets its own
    gradient. No gradient flows through the chain: its start and result are
    constants of whatever loss uses them (short-run contrastive divergence).
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    grad = jax.grad(lambda y: jnp.sum(energy_fn(y)))  # [B, ...] -> [B, ...]
    scale = noise * math.sqrt(step_size)

    def step(y, k):
        drift = 0.5 * step_size * grad(y)  # [B, ...]
        return y - drift + scale * jax.random.normal(k, y.shape, y.dtype), None

    x, _ = jax.lax.scan(step, jax.lax.stop_gradient(x), jax.random.split(key, steps))
    return jax.lax.stop_gradient(x)


def contrastive_divergence_loss(e_pos: jax.Array, e_neg: jax.Array, alpha: float) -> jax.Array:
    """mean E(data) - mean E(negatives) + alpha * mean(E(data)^2 + E(negatives)^2).

    e_pos [B] on data, e_neg [B'] on the model's samples. Its gradient lowers the
    energy of data and raises that of negatives: the maximum-likelihood gradient of
    exp(-E) / Z when the negatives are samples of the model.
    """
    cd = jnp.mean(e_pos) - jnp.mean(e_neg)
    return cd + alpha * (jnp.mean(jnp.square(e_pos)) + jnp.mean(jnp.square(e_neg)))


EBM_PRESETS: dict[str, EBMConfig] = {
    # Points in the plane (the ring of Gaussians in zoo.data.ring).
    "ebm_mlp_toy": EBMConfig(),
    "ebm_tiny": EBMConfig(hidden_dims=(16, 16), langevin_steps=5, buffer_size=64),
}
