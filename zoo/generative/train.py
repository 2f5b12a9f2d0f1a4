"""Pure, jitted train steps for the VAE and the GAN, and their states.

    state = VAEState.create(VAE(config), params, optax.adam(1e-3))
    state, metrics = vae_train_step(state, x, key)      # x [B, ...] float32

    state = GANState.create(GAN(config), params, g_tx=optax.adam(2e-4, b1=0.5),
                            d_tx=optax.adam(2e-4, b1=0.5))
    state, metrics = gan_train_step(state, x, key)

Both steps are jitted with the state donated. ``key`` may be the same every
step: the step folds in ``state.step`` (``fold_in(key, step)``), so a resumed
run draws the keys an uninterrupted run would. The model and optimizers are
static fields of the state (not pytree leaves), so a state is all a step needs.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from zoo.generative.gan import GAN, LOSSES
from zoo.generative.vae import VAE


class VAEState(struct.PyTreeNode):
    step: jax.Array  # [] int32
    params: Any  # the VAE's variables: {'params': ...}
    opt_state: Any
    model: VAE = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, model: VAE, params, tx: optax.GradientTransformation) -> VAEState:
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   model=model, tx=tx)


def _vae_train_step(state: VAEState, batch: jax.Array, key: jax.Array):
    """One step on the beta-weighted negative ELBO of ``batch`` [B, ...]."""
    key = jax.random.fold_in(key, state.step)

    def loss_fn(params):
        out = state.model.apply(params, batch, key)
        return out.loss, out

    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": loss,
        "elbo": jnp.mean(out.elbo),  # nats per example
        "log_likelihood": jnp.mean(out.log_likelihood),
        "kl": jnp.mean(out.kl),
        "grad_norm": optax.tree.norm(grads),
    }
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


vae_train_step = jax.jit(_vae_train_step, donate_argnums=0)


@jax.jit
def vae_eval_step(state: VAEState, batch: jax.Array, key: jax.Array) -> dict:
    """Sums over ``batch`` [B, ...] of the one-sample ELBO and KL (add up, then divide)."""
    out = state.model.apply(state.params, batch, key)
    return {"elbo_sum": jnp.sum(out.elbo), "kl_sum": jnp.sum(out.kl),
            "count": jnp.asarray(batch.shape[0], jnp.float32)}


class GANState(struct.PyTreeNode):
    """Both networks' params in one tree, one optimizer (and optimizer state) for each."""

    step: jax.Array  # [] int32
    params: Any  # {'generator': ..., 'discriminator': ...} (no 'params' wrapper)
    g_opt_state: Any
    d_opt_state: Any
    model: GAN = struct.field(pytree_node=False)
    g_tx: optax.GradientTransformation = struct.field(pytree_node=False)
    d_tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, model: GAN, params, *, g_tx: optax.GradientTransformation,
               d_tx: optax.GradientTransformation) -> GANState:
        params = params.get("params", params)  # accept init's {'params': ...} too
        return cls(step=jnp.zeros((), jnp.int32), params=params,
                   g_opt_state=g_tx.init(params["generator"]),
                   d_opt_state=d_tx.init(params["discriminator"]),
                   model=model, g_tx=g_tx, d_tx=d_tx)


def _apply(state: GANState, generator, discriminator, *args, method):
    variables = {"params": {"generator": generator, "discriminator": discriminator}}
    return state.model.apply(variables, *args, method=method)


def _gan_train_step(state: GANState, batch: jax.Array, key: jax.Array):
    """One discriminator update on ``batch`` [B, ...], then one generator update against it."""
    loss = LOSSES[state.model.config.loss]
    k_d, k_g = jax.random.split(jax.random.fold_in(key, state.step))
    num, latent = batch.shape[0], state.model.config.latent_dim
    g_params, d_params = state.params["generator"], state.params["discriminator"]

    fake = _apply(state, g_params, d_params, jax.random.normal(k_d, (num, latent)),
                  method=GAN.generate)
    fake = jax.lax.stop_gradient(fake)  # [B, ...]

    def d_loss_fn(d):
        real_logits = _apply(state, g_params, d, batch, method=GAN.discriminate)  # [B]
        fake_logits = _apply(state, g_params, d, fake, method=GAN.discriminate)  # [B]
        return loss.discriminator(real_logits, fake_logits), (real_logits, fake_logits)

    (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(d_params)
    d_updates, d_opt_state = state.d_tx.update(d_grads, state.d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, d_updates)

    def g_loss_fn(g):
        z = jax.random.normal(k_g, (num, latent))  # [B, Z]
        fake = _apply(state, g, d_params, z, method=GAN.generate)
        return loss.generator(_apply(state, g, d_params, fake, method=GAN.discriminate))

    g_loss, g_grads = jax.value_and_grad(g_loss_fn)(g_params)
    g_updates, g_opt_state = state.g_tx.update(g_grads, state.g_opt_state, g_params)
    g_params = optax.apply_updates(g_params, g_updates)

    metrics = {
        "d_loss": d_loss,
        "g_loss": g_loss,
        "d_real": jnp.mean(nn.sigmoid(real_logits)),  # D's mean belief that x is real
        "d_fake": jnp.mean(nn.sigmoid(fake_logits)),
        "d_grad_norm": optax.tree.norm(d_grads),
        "g_grad_norm": optax.tree.norm(g_grads),
    }
    new_state = state.replace(step=state.step + 1,
                              params={"generator": g_params, "discriminator": d_params},
                              g_opt_state=g_opt_state, d_opt_state=d_opt_state)
    return new_state, metrics


gan_train_step = jax.jit(_gan_train_step, donate_argnums=0)


@jax.jit
def gan_samples(state: GANState, noise: jax.Array) -> jax.Array:
    """G(noise) for a fixed noise [B, Z]: the same draws at every step show training progress."""
    return _apply(state, state.params["generator"], state.params["discriminator"], noise,
                  method=GAN.generate)
