"""Denoising diffusion (DDPM, Ho et al. 2020) with DDIM sampling (Song et al. 2021).

Timesteps are 0-indexed: t = 0 .. T-1, and x_t is the image after t + 1 noising steps.

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
    q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I),   abar_t = prod_{s <= t} (1 - beta_s)
    loss(x_0)        = mean over pixels of |eps - eps_theta(x_t, t)|^2,
                       x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t ~ U{0 .. T-1}, eps ~ N(0, I)

Sampling walks down a descending subsequence of the timesteps (all T of them for plain
DDPM; "respacing", Nichol & Dhariwal 2021). Between consecutive kept times t > s:

    x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)          (clipped to [-1, 1])
    ancestral: x_s = posterior mean of q(x_s | x_t, x0_hat) + sqrt(beta~) z,
               with beta = 1 - abar_t / abar_s and beta~ = beta (1 - abar_s) / (1 - abar_t)
    ddim:      x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat       (eta = 0: no noise)

Each step is a pure function of a noise predictor ``eps_fn(x_t, t) -> eps``; ``run_sampler``
scans it. Data live in [-1, 1].

Glossary: B batch, S sampling steps, K trajectory frames; ``...`` is one image (Y, X, C).

    ddpm = DDPM(DiffusionConfig())
    params = ddpm.init(key, x, t)
    losses = ddpm.apply(params, x0, key, method=DDPM.loss)                   # [B]
    out = ddpm.apply(params, key, 16, 50, "ddim", frames=8, method=DDPM.sample)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from zoo.generative.config import _dtype, _one_of, _positive_int, _positive_ints
from zoo.generative.unet import UNet

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x_t [B, ...], t [B] int32) -> [B, ...]
COSINE_OFFSET = 0.008  # s of Nichol & Dhariwal: keeps beta_0 from being vanishingly small
MAX_BETA = 0.999  # their clip: the cosine schedule's last betas would otherwise reach 1


# --- noise schedules ------------------------------------------------------------------------

def linear_betas(timesteps: int) -> jax.Array:
    """Ho et al.'s betas, 1e-4 .. 0.02 over 1000 steps (scaled by 1000 / T for other T), [T]."""
    scale = 1000.0 / timesteps
    return jnp.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=jnp.float32)


def cosine_betas(timesteps: int) -> jax.Array:
    """Nichol & Dhariwal's betas: abar(t) follows cos^2 from 1 towards 0, [T]."""
    u = jnp.arange(timesteps + 1, dtype=jnp.float32) / timesteps  # [T + 1] in [0, 1]
    f = jnp.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2  # [T + 1]
    return jnp.minimum(1 - f[1:] / f[:-1], MAX_BETA)  # [T]


SCHEDULES: dict[str, Callable[[int], jax.Array]] = {"linear": linear_betas,
                                                    "cosine": cosine_betas}
SAMPLERS = ("ancestral", "ddim")


def alphas_cumprod(betas: jax.Array) -> jax.Array:
    """abar_t = prod_{s <= t} (1 - beta_s): [T] -> [T], decreasing in (0, 1)."""
    return jnp.cumprod(1.0 - betas)


# --- the config -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """DDPM hyperparameters: the forward process and the noise-prediction U-Net.

    Attributes:
      data_shape: one image (Y, X, C); Y and X divisible by 2 ** (len(channel_mults) - 1).
      timesteps: T, the length of the forward process.
      schedule: 'linear' (Ho et al.) or 'cosine' (Nichol & Dhariwal).
      base_channels: feature channels of the first level (and the time-feature width).
      channel_mults: one entry per resolution level: its channels / base_channels.
      num_res_blocks: residual blocks per level on the way down (one more on the way up).
      attention: a self-attention layer in the middle, at the lowest resolution.
      dropout: in every residual block, while training.
      norm_groups: GroupNorm groups; must divide every level's channels.
      dtype: compute dtype; params, losses and sampling arithmetic stay float32.
    """

    data_shape: tuple[int, ...] = (28, 28, 1)
    timesteps: int = 1000
    schedule: str = "cosine"
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention: bool = False
    dropout: float = 0.0
    norm_groups: int = 8
    dtype: Any = jnp.float32

    def __post_init__(self):
        _positive_ints("data_shape", self.data_shape)
        _positive_ints("channel_mults", self.channel_mults)
        factor = 2 ** (len(self.channel_mults) - 1)
        if len(self.data_shape) != 3 or self.data_shape[0] % factor or self.data_shape[1] % factor:
            raise ValueError(f"data_shape must be (Y, X, C) with Y and X divisible by {factor} "
                             f"(one halving per extra entry of channel_mults="
                             f"{self.channel_mults!r}), got {self.data_shape!r}")
        _positive_int("timesteps", self.timesteps)
        if self.timesteps < 2:
            raise ValueError(f"timesteps must be >= 2, got {self.timesteps!r}")
        _one_of("schedule", self.schedule, SCHEDULES)
        for name in ("base_channels", "num_res_blocks", "norm_groups"):
            _positive_int(name, getattr(self, name))
        widths = sorted({self.base_channels * m for m in (1, *self.channel_mults)})
        if any(w % self.norm_groups for w in widths):
            raise ValueError(f"norm_groups must divide every level's channels {widths} "
                             f"(base_channels x channel_mults), got {self.norm_groups!r}")
        if not isinstance(self.attention, bool):
            raise ValueError(f"attention must be a bool, got {self.attention!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        _dtype("dtype", self.dtype)


# --- sampling: pure steps of a noise predictor ----------------------------------------------

def check_sampler(method: Any, steps: Any, timesteps: int, *, names=("method", "steps")) -> None:
    """Raises ValueError naming ``names`` unless method is a sampler and 1 <= steps <= T."""
    if method not in SAMPLERS:
        raise ValueError(f"{names[0]} must be one of {list(SAMPLERS)}, got {method!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= timesteps:
        raise ValueError(f"{names[1]} must be an int in [1, {timesteps}] (the model's "
                         f"timesteps), got {steps!r}")


def respaced_timesteps(timesteps: int, steps: int) -> np.ndarray:
    """``steps`` evenly spaced timesteps from T-1 down to 0 (all of them when steps == T), [S]."""
    return np.round(np.linspace(timesteps - 1, 0, steps)).astype(np.int32)


def _predict_x0(x_t, eps, abar_t, clip: bool):
    x0 = (x_t - jnp.sqrt(1 - abar_t) * eps) / jnp.sqrt(abar_t)  # [B, ...]
    return jnp.clip(x0, -1.0, 1.0) if clip else x0


def ancestral_step(eps_fn: EpsFn, x_t, t, abar_t, abar_prev, noise, *, clip: bool = True):
    """x_s ~ q(x_s | x_t, x0_hat) for the kept time s before t (abar_prev = 1 at the end).

    x_t, noise [B, ...]; t [] int32; abar_t, abar_prev [] float32. noise = 0 gives the mean.
    """
    eps = eps_fn(x_t, jnp.full((x_t.shape[0],), t, jnp.int32))  # [B, ...]
    x0 = _predict_x0(x_t, eps, abar_t, clip)
    alpha = abar_t / abar_prev  # 1 - beta of the respaced chain
    beta = 1 - alpha
    mean = (jnp.sqrt(abar_prev) * beta * x0 + jnp.sqrt(alpha) * (1 - abar_prev) * x_t) / (
        1 - abar_t)
    variance = beta * (1 - abar_prev) / (1 - abar_t)  # beta~: 0 on the last step
    return mean + jnp.sqrt(variance) * noise


def ddim_step(eps_fn: EpsFn, x_t, t, abar_t, abar_prev, noise=None, *, clip: bool = True):
    """The deterministic DDIM update (eta = 0); ``noise`` is ignored (same signature)."""
    del noise
    eps = eps_fn(x_t, jnp.full((x_t.shape[0],), t, jnp.int32))  # [B, ...]
    x0 = _predict_x0(x_t, eps, abar_t, clip)
    if clip:  # the noise that the clipped x0_hat implies, so the two stay consistent
        eps = (x_t - jnp.sqrt(abar_t) * x0) / jnp.sqrt(1 - abar_t)
    return jnp.sqrt(abar_prev) * x0 + jnp.sqrt(1 - abar_prev) * eps


STEPS = {"ancestral": ancestral_step, "ddim": ddim_step}


class Samples(NamedTuple):
    images: jax.Array  # [B, ...] the final x_0, in about [-1, 1]
    trajectory: jax.Array | None  # [B, K, ...]: x_T first, x_0 last; None when frames == 0


def run_sampler(eps_fn: EpsFn, key: jax.Array, x_start: jax.Array, abar: jax.Array, steps: int,
                method: str, *, frames: int = 0, clip: bool = True) -> Samples:
    """Denoises x_start [B, ...] (x at t = T-1) over ``steps`` respaced timesteps.

    abar [T] is the schedule's alphas_cumprod; ``key`` draws the ancestral noise (step i
    uses fold_in(key, i)). ``frames`` > 0 also returns K = frames states, evenly spaced
    over the S + 1 states of the chain. A ``lax.scan``: jit the caller.
    """
    timesteps = abar.shape[0]
    check_sampler(method, steps, timesteps)
    if frames and not 2 <= frames <= steps + 1:
        raise ValueError(f"frames must be 0 or in [2, steps + 1 = {steps + 1}], got {frames!r}")
    times = respaced_timesteps(timesteps, steps)  # [S] descending
    abar_t = abar[times]  # [S]
    abar_prev = jnp.concatenate([abar[times[1:]], jnp.ones((1,), abar.dtype)])  # [S]
    kept = np.round(np.linspace(0, steps, max(frames, 1))).astype(np.int32)  # [K] states kept
    step_fn = STEPS[method]

    def keep(trajectory, state, x):  # writes x into the frames that show chain state `state`
        hit = jnp.asarray(kept) == state  # [K]
        return jnp.where(hit.reshape(-1, *([1] * x.ndim)), x[None], trajectory)  # [K, B, ...]

    def body(carry, xs):
        x, trajectory = carry
        i, t, a_t, a_prev = xs
        noise = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)  # [B, ...]
        x = step_fn(eps_fn, x, t, a_t, a_prev, noise, clip=clip)  # [B, ...]
        if frames:
            trajectory = keep(trajectory, i + 1, x)
        return (x, trajectory), None

    trajectory = keep(jnp.zeros((frames, *x_start.shape), x_start.dtype), 0,
                      x_start) if frames else jnp.zeros(())
    xs = (jnp.arange(steps, dtype=jnp.int32), jnp.asarray(times), abar_t, abar_prev)
    (x, trajectory), _ = jax.lax.scan(body, (x_start, trajectory), xs)
    return Samples(x, jnp.moveaxis(trajectory, 0, 1) if frames else None)


# --- the model ------------------------------------------------------------------------------

class DDPM(nn.Module):
    """A noise-prediction U-Net and the diffusion process around it."""

    config: DiffusionConfig

    def setup(self):
        self.net = UNet(self.config)

    def _check(self, x: jax.Array, name: str) -> None:
        if tuple(x.shape[1:]) != tuple(self.config.data_shape):
            raise ValueError(f"{name} must be [B, {', '.join(map(str, self.config.data_shape))}] "
                             f"(config.data_shape), got shape {tuple(x.shape)}")

    def alphas_cumprod(self) -> jax.Array:  # [T]
        return alphas_cumprod(SCHEDULES[self.config.schedule](self.config.timesteps))

    def __call__(self, x_t: jax.Array, t: jax.Array, deterministic: bool = True) -> jax.Array:
        """eps_theta(x_t, t): x_t [B, ...], t [B] int -> predicted noise [B, ...], float32."""
        self._check(x_t, "x_t")
        return self.net(x_t, t, deterministic)

    def q_sample(self, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise: x0, noise [B, ...], t [B] -> [B, ...]."""
        abar = self.alphas_cumprod()[t].reshape(-1, *([1] * (x0.ndim - 1)))  # [B, 1, 1, 1]
        return jnp.sqrt(abar) * x0 + jnp.sqrt(1 - abar) * noise

    def loss(self, x0: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
        """The eps-MSE of each example, [B] float32, at a uniform t and fresh noise from ``key``
        (dropout, when not deterministic, draws from the 'dropout' rng)."""
        self._check(x0, "x0")
        t_key, noise_key = jax.random.split(key)
        t = jax.random.randint(t_key, (x0.shape[0],), 0, self.config.timesteps)  # [B]
        noise = jax.random.normal(noise_key, x0.shape, jnp.float32)  # [B, ...]
        eps = self(self.q_sample(x0.astype(jnp.float32), t, noise), t, deterministic)
        return jnp.mean(jnp.square(eps - noise).reshape(x0.shape[0], -1), axis=-1)  # [B]

    def sample(self, key: jax.Array, num: int, steps: int, method: str = "ddim", *,
               frames: int = 0, clip: bool = True) -> Samples:
        """``num`` images from x_T ~ N(0, I) by ``method`` over ``steps`` timesteps."""
        _positive_int("num", num)
        net = UNet(self.config, parent=None)  # unbound: applied inside the scan
        variables = {"params": self.variables["params"]["net"]}

        def eps_fn(x, t):
            return net.apply(variables, x, t)

        start_key, noise_key = jax.random.split(key)
        x_start = jax.random.normal(start_key, (num, *self.config.data_shape), jnp.float32)
        return run_sampler(eps_fn, noise_key, x_start, self.alphas_cumprod(), steps, method,
                           frames=frames, clip=clip)


DIFFUSION_PRESETS: dict[str, DiffusionConfig] = {
    # ~0.6M parameters: 24/48/48 channels at 28/14/7, attention at 7x7, 1000 cosine steps.
    "ddpm_fashion_mnist": DiffusionConfig(base_channels=24, channel_mults=(1, 2, 2),
                                          num_res_blocks=1, attention=True),
    "ddpm_tiny": DiffusionConfig(timesteps=50, base_channels=8, channel_mults=(1, 2),
                                 num_res_blocks=1, norm_groups=4),
}
