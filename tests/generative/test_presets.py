"""Every generative preset is registered, builds from its config alone, and inits."""

import jax
import jax.numpy as jnp
import pytest

import zoo.generative  # noqa: F401  (registers the presets)
from zoo import registry
from zoo.generative import GAN, GAN_PRESETS, VAE, VAE_PRESETS

KEY = jax.random.PRNGKey(0)


def test_presets_are_registered_with_their_module():
    for name in VAE_PRESETS:
        assert registry.get(name).module is VAE
    for name in GAN_PRESETS:
        assert registry.get(name).module is GAN


@pytest.mark.parametrize("name", sorted(VAE_PRESETS))
def test_vae_presets_init_and_apply(name):
    vae = registry.build(name)
    x = jnp.zeros((2, *vae.config.data_shape))
    out = vae.apply(vae.init(KEY, x, KEY), x, KEY)
    assert out.elbo.shape == (2,) and jnp.isfinite(out.loss)


@pytest.mark.parametrize("name", sorted(GAN_PRESETS))
def test_gan_presets_init_and_apply(name):
    gan = registry.build(name)
    z, x = jnp.zeros((2, gan.config.latent_dim)), jnp.zeros((2, *gan.config.data_shape))
    out = gan.apply(gan.init(KEY, z, x), z, x)
    assert out.fake.shape == x.shape and out.real_logits.shape == (2,)
