"""The GAN: shapes of every variant, both losses, one jitted step, mode coverage on a 2-D ring."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo import registry
from zoo.generative import GAN, LOSSES, GANConfig, GANState, gan_samples, gan_train_step, toy

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("architecture,dtype", list(itertools.product(
    ("mlp", "dcgan"), (jnp.float32, jnp.bfloat16))))
def test_every_variant_has_the_documented_shapes_and_dtypes(architecture, dtype):
    config = GANConfig(data_shape=(8, 12, 3), latent_dim=5, architecture=architecture,
                       generator_dims=(8, 4), discriminator_dims=(4, 8), dtype=dtype)
    gan = GAN(config)
    z, x = jax.random.normal(KEY, (3, 5)), jax.random.uniform(KEY, (3, 8, 12, 3))
    variables = gan.init(KEY, z, x)
    assert set(variables["params"]) == {"generator", "discriminator"}
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
    out = gan.apply(variables, z, x)
    assert out.fake.shape == (3, 8, 12, 3) and out.fake.dtype == jnp.float32
    assert ((out.fake >= -1) & (out.fake <= 1)).all()  # tanh
    for logits in (out.real_logits, out.fake_logits):
        assert logits.shape == (3,) and logits.dtype == jnp.float32
    with pytest.raises(ValueError, match="latent_dim"):
        gan.apply(variables, jnp.zeros((3, 4)), method=GAN.generate)
    with pytest.raises(ValueError, match="data_shape"):
        gan.apply(variables, jnp.zeros((3, 8, 8, 3)), method=GAN.discriminate)


def test_losses_have_their_textbook_values():
    real, fake = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
    ns, hinge = LOSSES["non_saturating"], LOSSES["hinge"]
    sig = jax.nn.sigmoid
    d = -jnp.mean(jnp.log(sig(real)) + jnp.log(1 - sig(fake)))
    assert ns.discriminator(real, fake) == pytest.approx(float(d), rel=1e-5)
    assert ns.generator(fake) == pytest.approx(float(-jnp.mean(jnp.log(sig(fake)))), rel=1e-5)
    assert hinge.discriminator(real, fake) == pytest.approx((0 + 2 + 1.5 + 0) / 2)
    assert hinge.generator(fake) == pytest.approx(1.25)


@pytest.mark.parametrize("loss", ["non_saturating", "hinge"])
def test_one_step_updates_both_networks_with_their_own_optimizers(loss):
    gan = registry.build("gan_dcgan_tiny", loss=loss, data_shape=(8, 8, 1))
    params = gan.init(KEY, jnp.zeros((2, 8)), jnp.zeros((2, 8, 8, 1)))
    before = jax.tree.map(np.asarray, params["params"])
    # SGD for G, Adam for D: each optimizer state has its own network's structure.
    state = GANState.create(gan, params, g_tx=optax.sgd(1e-2), d_tx=optax.adam(1e-3))
    state, metrics = gan_train_step(state, jax.random.uniform(KEY, (4, 8, 8, 1)) * 2 - 1, KEY)
    assert int(state.step) == 1 and all(jnp.isfinite(v) for v in metrics.values())
    for net in ("generator", "discriminator"):
        changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before[net], state.params[net])
        assert any(jax.tree.leaves(changed)), net
    noise = jax.random.normal(KEY, (6, 8))
    assert gan_samples(state, noise).shape == (6, 8, 8, 1)


@pytest.mark.parametrize("overrides,field", [
    (dict(latent_dim=-2), "latent_dim"),
    (dict(architecture="stylegan"), "architecture"),
    (dict(loss="wasserstein"), "loss"),
    (dict(output_activation="sigmoid"), "output_activation"),
    (dict(generator_dims=(64, 32, 16)), "generator_dims"),  # dcgan has two stride-2 layers
    (dict(discriminator_dims=()), "discriminator_dims"),
    (dict(data_shape=(30, 30, 1)), "data_shape"),
    (dict(dtype=jnp.float16), "dtype"),
])
def test_bad_configs_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        GANConfig(**overrides)


def test_ring_of_gaussians_and_coverage():
    centers = toy.mode_centers(8, 2.0)
    np.testing.assert_allclose(np.linalg.norm(centers, axis=-1), 2.0, rtol=1e-6)
    x = toy.ring_of_gaussians(KEY, 4000, std=0.1)
    cover = toy.mode_coverage(x, centers, threshold=0.3, min_count=300)
    assert cover.modes_covered == 8 and cover.high_quality > 0.98
    collapsed = jnp.broadcast_to(centers[0], (100, 2))
    assert toy.mode_coverage(collapsed, centers, threshold=0.3).modes_covered == 1


@pytest.mark.slow
def test_gan_covers_every_mode_of_a_ring_of_gaussians():
    """2500 seeded steps (~15 s on one core): every one of 8 modes gets samples."""
    std, steps = 0.1, 2500
    gan = registry.build("gan_mlp_toy")
    params = gan.init(KEY, jnp.zeros((2, 8)), jnp.zeros((2, 2)))
    tx = optax.adam(1e-3, b1=0.5)
    state = GANState.create(gan, params, g_tx=tx, d_tx=tx)
    data_key = jax.random.PRNGKey(1)
    for i in range(steps):
        batch = toy.ring_of_gaussians(jax.random.fold_in(data_key, i), 256, std=std)
        state, _ = gan_train_step(state, batch, KEY)
    samples = gan_samples(state, jax.random.normal(jax.random.PRNGKey(2), (2000, 8)))
    cover = toy.mode_coverage(samples, toy.mode_centers(), threshold=3 * std, min_count=10)
    assert cover.modes_covered == 8, cover.counts
    assert cover.high_quality > 0.6, cover  # most samples land on a mode, not between
