"""The few distributions a VAE needs: diagonal Gaussians, Bernoulli pixels, the analytic KL.

Every log-density sums over all axes but the batch axis, so each returns [B]
in float32. Glossary: B batch, Z latent size; ``...`` is one example's shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2 * math.pi)


class Normal(NamedTuple):
    """A diagonal Gaussian N(mean, exp(log_std)**2)."""

    mean: jax.Array  # [B, Z]
    log_std: jax.Array  # [B, Z]


def _sum_example(x: jax.Array) -> jax.Array:
    """[B, ...] -> [B]: sum over everything but the batch axis, in float32."""
    return jnp.sum(x.astype(jnp.float32).reshape(x.shape[0], -1), axis=-1)


def reparameterize(key: jax.Array, dist: Normal) -> jax.Array:
    """z = mean + std * eps, eps ~ N(0, I): a sample whose gradient flows to mean and log_std."""
    eps = jax.random.normal(key, dist.mean.shape, jnp.float32)  # [B, Z]
    return dist.mean + jnp.exp(dist.log_std) * eps  # [B, Z]


def kl_to_standard_normal(dist: Normal) -> jax.Array:
    """KL(N(mean, std^2) || N(0, I)) = 1/2 sum(mean^2 + std^2 - 1 - 2 log std), [B]."""
    mean, log_std = dist.mean.astype(jnp.float32), dist.log_std.astype(jnp.float32)
    return 0.5 * _sum_example(mean**2 + jnp.exp(2 * log_std) - 1 - 2 * log_std)


def normal_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log N(x; mean, exp(log_std)^2) summed over each example, [B]."""
    x, mean = x.astype(jnp.float32), mean.astype(jnp.float32)
    log_std = jnp.broadcast_to(jnp.asarray(log_std, jnp.float32), x.shape)
    z = (x - mean) * jnp.exp(-log_std)
    return _sum_example(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI)


def bernoulli_log_prob(x: jax.Array, logits: jax.Array) -> jax.Array:
    """log Bernoulli(x; sigmoid(logits)) summed over each example, [B]; stable for any logits."""
    x, logits = x.astype(jnp.float32), logits.astype(jnp.float32)
    return _sum_example(x * logits - jax.nn.softplus(logits))


class Likelihood(NamedTuple):
    """p(x | z) given the decoder output: its log-density [B] and its mean [B, ...]."""

    log_prob: Callable[[jax.Array, jax.Array, float], jax.Array]  # (x, out, std) -> [B]
    mean: Callable[[jax.Array], jax.Array]  # out -> E[x | z]


LIKELIHOODS: dict[str, Likelihood] = {
    # The decoder gives logits; the mean image is sigmoid(logits).
    "bernoulli": Likelihood(lambda x, out, std: bernoulli_log_prob(x, out), jax.nn.sigmoid),
    # The decoder gives the mean; sigma is fixed by the config.
    "gaussian": Likelihood(lambda x, out, std: normal_log_prob(x, out, math.log(std)),
                           lambda out: out.astype(jnp.float32)),
}
