"""The variational autoencoder (Kingma & Welling 2014), with beta weighting (Higgins et al. 2017).

    q(z|x) = N(mean(x), diag(std(x)^2))     encoder, reparameterised sample
    p(z)   = N(0, I)
    p(x|z) = Bernoulli(sigmoid(decoder(z))) or N(decoder(z), sigma^2 I)
    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))   (one-sample estimate, analytic KL)
    loss    = mean over the batch of -(E_q[log p(x|z)] - beta KL)

Glossary: B batch, Z latent size; ``...`` is one example, (Y, X, C) for images
(Y height, X width, C channels). Call other entry points with ``method=``:

    vae = VAE(VAEConfig())
    params = vae.init(key, x, key)
    out = vae.apply(params, x, key)                        # VAEOutput
    post = vae.apply(params, x, method=VAE.encode)         # Normal
    images = vae.apply(params, key, 64, method=VAE.sample) # [64, Y, X, C]
    nll = -iwae_log_likelihood(vae, params, x, key, 1000)  # [B], the IWAE bound
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.generative import distributions as dist
from zoo.generative.config import VAEConfig
from zoo.generative.networks import NETWORKS


class VAEOutput(NamedTuple):
    loss: jax.Array  # [] float32: mean of -(log_likelihood - beta kl)
    elbo: jax.Array  # [B] float32: log_likelihood - kl (beta = 1), a bound on log p(x)
    log_likelihood: jax.Array  # [B] float32: log p(x | z) at the sampled z
    kl: jax.Array  # [B] float32: KL(q(z|x) || N(0, I)), analytic
    decoder_output: jax.Array  # [B, ...]: logits ('bernoulli') or means ('gaussian')
    posterior: dist.Normal  # mean, log_std: [B, Z]
    z: jax.Array  # [B, Z] the reparameterised sample


class VAE(nn.Module):
    config: VAEConfig

    def setup(self):
        encoder, decoder = NETWORKS[self.config.architecture]
        self.encoder = encoder(self.config)
        self.decoder = decoder(self.config)

    def _check(self, x: jax.Array) -> None:
        if tuple(x.shape[1:]) != tuple(self.config.data_shape):
            raise ValueError(f"x must be [B, {', '.join(map(str, self.config.data_shape))}] "
                             f"(config.data_shape), got shape {tuple(x.shape)}")

    def encode(self, x: jax.Array) -> dist.Normal:
        """q(z | x): [B, ...] -> Normal with mean, log_std [B, Z]."""
        self._check(x)
        h = self.encoder(x).astype(jnp.float32)  # [B, 2Z]
        mean, log_std = jnp.split(h, 2, axis=-1)  # [B, Z] each
        return dist.Normal(mean, log_std)

    def decode(self, z: jax.Array) -> jax.Array:
        """The parameters of p(x | z): [B, Z] -> logits or means [B, ...], float32."""
        return self.decoder(z).astype(jnp.float32)

    def decode_mean(self, z: jax.Array) -> jax.Array:
        """E[x | z]: [B, Z] -> [B, ...] (pixel probabilities for 'bernoulli')."""
        return dist.LIKELIHOODS[self.config.likelihood].mean(self.decode(z))

    def __call__(self, x: jax.Array, key: jax.Array) -> VAEOutput:
        """The one-sample ELBO of each example of x [B, ...] and the beta-weighted loss."""
        cfg = self.config
        posterior = self.encode(x)
        z = dist.reparameterize(key, posterior)  # [B, Z]
        out = self.decode(z)  # [B, ...]
        log_likelihood = dist.LIKELIHOODS[cfg.likelihood].log_prob(x, out, cfg.observation_std)
        kl = dist.kl_to_standard_normal(posterior)  # [B]
        loss = -jnp.mean(log_likelihood - cfg.beta * kl)
        return VAEOutput(loss, log_likelihood - kl, log_likelihood, kl, out, posterior, z)

    def log_importance_weights(self, x: jax.Array, key: jax.Array, num: int) -> jax.Array:
        """log w_i = log p(x, z_i) - log q(z_i | x) for ``num`` draws z_i ~ q(z | x): [num, B].

        Their log-mean-exp is the IWAE bound (Burda et al. 2016) on log p(x): it
        rises towards log p(x) as ``num`` grows and equals the ELBO's estimate at
        ``num`` = 1. ``iwae_log_likelihood`` combines chunks of them.
        """
        cfg = self.config
        posterior = self.encode(x)  # mean, log_std [B, Z]
        batch = x.shape[0]
        eps = jax.random.normal(key, (num, *posterior.mean.shape), jnp.float32)  # [num, B, Z]
        z = posterior.mean[None] + jnp.exp(posterior.log_std)[None] * eps  # [num, B, Z]
        flat = z.reshape(num * batch, -1)  # [num B, Z]
        out = self.decode(flat)  # [num B, ...]
        xs = jnp.broadcast_to(x[None], (num, *x.shape)).reshape(num * batch, *x.shape[1:])
        log_lik = dist.LIKELIHOODS[cfg.likelihood].log_prob(xs, out, cfg.observation_std)
        log_prior = dist.normal_log_prob(flat, jnp.zeros_like(flat), 0.0)  # [num B]
        means = jnp.broadcast_to(posterior.mean[None], z.shape).reshape(flat.shape)
        log_stds = jnp.broadcast_to(posterior.log_std[None], z.shape).reshape(flat.shape)
        log_q = dist.normal_log_prob(flat, means, log_stds)  # [num B]
        return (log_lik + log_prior - log_q).reshape(num, batch)  # [num, B]

    def reconstruct(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """E[x | z] at the posterior mean (or at a posterior sample given a key), [B, ...]."""
        posterior = self.encode(x)
        z = posterior.mean if key is None else dist.reparameterize(key, posterior)
        return self.decode_mean(z)

    def sample(self, key: jax.Array, num: int) -> jax.Array:
        """E[x | z] for ``num`` prior draws z ~ N(0, I): [num, ...]."""
        z = jax.random.normal(key, (num, self.config.latent_dim), jnp.float32)  # [num, Z]
        return self.decode_mean(z)

    def interpolate(self, x_a: jax.Array, x_b: jax.Array, num_steps: int) -> jax.Array:
        """Decoded means on the straight line between the posterior means: [B, num_steps, ...]."""
        if not isinstance(num_steps, int) or num_steps < 2:
            raise ValueError(f"num_steps must be an int >= 2, got {num_steps!r}")
        z_a, z_b = self.encode(x_a).mean, self.encode(x_b).mean  # [B, Z] each
        t = jnp.linspace(0.0, 1.0, num_steps)[None, :, None]  # [1, num_steps, 1]
        z = (1 - t) * z_a[:, None] + t * z_b[:, None]  # [B, num_steps, Z]
        batch = z_a.shape[0]
        images = self.decode_mean(z.reshape(batch * num_steps, -1))  # [B num_steps, ...]
        return images.reshape(batch, num_steps, *images.shape[1:])  # [B, num_steps, ...]


def iwae_log_likelihood(vae: VAE, variables, x: jax.Array, key: jax.Array, num: int,
                        chunk: int = 100) -> jax.Array:
    """The IWAE bound log (1/num) sum_i w_i on log p(x) of each example of x [B, ...]: [B].

    The ``num`` importance samples are drawn ``chunk`` at a time (one decoder
    pass over chunk x B latents each), so memory stays bounded for num = 1,000
    and more; the last chunk's surplus draws are left out. Pure: jit it.
    """
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"num (importance samples) must be a positive int, got {num!r}")
    chunk = min(chunk, num)
    chunks = -(-num // chunk)
    keys = jax.random.split(key, chunks)
    weights = jax.lax.map(lambda k: vae.apply(variables, x, k, chunk,
                                              method=VAE.log_importance_weights), keys)
    weights = weights.reshape(chunks * chunk, x.shape[0])  # [chunks chunk, B]
    used = (jnp.arange(chunks * chunk) < num)[:, None]  # [chunks chunk, 1]
    weights = jnp.where(used, weights, -jnp.inf)
    return jax.nn.logsumexp(weights, axis=0) - math.log(num)  # [B]
