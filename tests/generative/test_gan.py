"""The GAN: shapes of every variant, both losses, one jitted step, mode coverage on a 2-D ring."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo import registry
from zoo.data import ring as toy
from zoo.generative import GAN, LOSSES, GANConfig
from zoo.generative import gan as gan_lib
from zoo.train import config as config_lib
from zoo.train.families import GANFamily
from zoo.train.state import TrainState, make_train_step

KEY = jax.random.PRNGKey(0)


def _family() -> GANFamily:
    config = config_lib.base_config()
    config.family, config.model.name = "gan", "gan_mlp_toy"
    return GANFamily(config_lib.validate(config))


def _gan_step(gan: GAN, tx):
    """The 'gan' family's jitted train step (the loop's core step) and a fresh state."""
    family = _family()
    params = family.init_params(gan, {"params": KEY})
    state = TrainState.create(params, tx, jax.random.PRNGKey(7),  # donated with the state
                              groups=family.optimizer_groups)
    step = jax.jit(make_train_step(family.phases(gan), optax.constant_schedule(0.0)),
                   donate_argnums=0)
    return state, step


def _samples(gan: GAN, state, noise):
    return gan.apply({"params": state.params}, noise, method=GAN.generate)


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
def test_one_step_updates_both_networks_with_their_own_optimizer_states(loss):
    gan = registry.build("gan_dcgan_tiny", loss=loss, data_shape=(8, 8, 1))
    state, step = _gan_step(gan, optax.adam(1e-3))
    before = jax.tree.map(np.asarray, state.params)
    # Each network's Adam state has that network's structure (and only it).
    for net in ("generator", "discriminator"):
        assert (jax.tree.structure(state.opt_state[net][0].mu)
                == jax.tree.structure(state.params[net])), net
    batch = {"x": jax.random.uniform(KEY, (4, 8, 8, 1)) * 2 - 1}
    state, metrics = step(state, batch)
    assert int(state.step) == 1 and all(jnp.isfinite(v) for v in metrics.values())
    assert {"d_loss", "g_loss", "d_grad_norm", "g_grad_norm", "d_real", "d_fake"} <= set(metrics)
    for net in ("generator", "discriminator"):
        changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before[net], state.params[net])
        assert any(jax.tree.leaves(changed)), net
        assert int(state.opt_state[net][0].count) == 1, net  # one update each, not two
    noise = jax.random.normal(KEY, (6, 8))
    assert _samples(gan, state, noise).shape == (6, 8, 8, 1)


def test_the_generator_phase_sees_the_updated_discriminator():
    """D first, then G against the D of this step: G's gradient changes when D moved."""
    gan = registry.build("gan_mlp_toy")
    batch = {"x": toy.ring_of_gaussians(KEY, 64)}
    d_phase, g_phase = _family().phases(gan)
    state, step = _gan_step(gan, optax.adam(1e-2))
    after, _ = step(jax.tree.map(jnp.copy, state), batch)  # the step donates its input
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, 0), 1)  # the G phase's key

    def g_grad(d_params):
        params = {"generator": state.params["generator"], "discriminator": d_params}
        return jax.grad(lambda g: g_phase.loss_fn({**params, "generator": g}, batch, rng,
                                                  False)[0])(params["generator"])

    moved = g_grad(after.params["discriminator"])
    updates, _ = state.tx.update(moved, state.opt_state["generator"], state.params["generator"])
    expected = optax.apply_updates(state.params["generator"], updates)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(after.params["generator"]),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_resize_upsampling_and_spectral_norm_keep_the_shapes_and_scale_out_of_d():
    """'resize' G and a spectrally normalised D: same shapes; D cannot be made sharper by
    scaling its kernels (each is divided by its largest singular value)."""
    config = GANConfig(data_shape=(8, 12, 1), latent_dim=5, generator_dims=(8, 4),
                       discriminator_dims=(4, 8), upsample="resize", spectral_norm=True)
    gan = GAN(config)
    z, x = jax.random.normal(KEY, (3, 5)), jax.random.uniform(KEY, (3, 8, 12, 1))
    params = gan.init(KEY, z, x)["params"]
    out = gan.apply({"params": params}, z, x)
    assert out.fake.shape == (3, 8, 12, 1) and out.real_logits.shape == (3,)
    scaled = {**params, "discriminator": jax.tree_util.tree_map_with_path(
        lambda path, p: p * 7.0 if path[-1].key == "kernel" else p, params["discriminator"])}
    for images in (x, out.fake):
        np.testing.assert_allclose(gan.apply({"params": scaled}, images, method=GAN.discriminate),
                                   out.real_logits if images is x else out.fake_logits,
                                   rtol=1e-4, atol=1e-5)
    kernel = jax.random.normal(KEY, (4, 4, 3, 8))
    matrix = np.asarray(gan_lib._spectral_normalized(kernel)).reshape(-1, 8)
    assert np.linalg.norm(matrix, 2) == pytest.approx(1.0, rel=1e-5)


def test_ttur_scales_only_the_discriminators_update():
    """optim.d_lr_ratio = r: D's first Adam update is r times the ratio-1 update; G's is
    unchanged (its phase sees the moved D, so compare G with the ratio-1 step's G only
    through D)."""
    gan = registry.build("gan_mlp_toy")
    batch = {"x": toy.ring_of_gaussians(KEY, 64)}
    moved = {}
    for ratio in (1.0, 4.0):
        config = config_lib.base_config()
        config.family, config.model.name = "gan", "gan_mlp_toy"
        config.optim.d_lr_ratio = ratio
        family = GANFamily(config_lib.validate(config))
        params = family.init_params(gan, {"params": KEY})
        state = TrainState.create(params, optax.adam(1e-3), jax.random.PRNGKey(7),
                                  groups=family.optimizer_groups)
        step = jax.jit(make_train_step(family.phases(gan), optax.constant_schedule(0.0)))
        after, _ = step(state, batch)
        moved[ratio] = jax.tree.map(lambda a, b: a - b, after.params["discriminator"],
                                    params["discriminator"])
    for one, four in zip(jax.tree.leaves(moved[1.0]), jax.tree.leaves(moved[4.0]), strict=True):
        np.testing.assert_allclose(four, 4.0 * one, rtol=1e-4, atol=1e-8)
    config = config_lib.base_config()
    config.family, config.model.name = "gan", "gan_mlp_toy"
    config.optim.d_lr_ratio = 0.0
    with pytest.raises(ValueError, match="d_lr_ratio"):
        GANFamily(config_lib.validate(config)).phases(gan)


@pytest.mark.parametrize("overrides,field", [
    (dict(upsample="bilinear"), "upsample"),
    (dict(spectral_norm=1), "spectral_norm"),
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
    """2500 seeded steps, run as one compiled scan: every one of 8 modes gets samples."""
    std, steps, batch = 0.1, 2500, 256
    gan = registry.build("gan_mlp_toy")
    state, _ = _gan_step(gan, optax.adam(1e-3, b1=0.5))
    train_step = make_train_step(_family().phases(gan), optax.constant_schedule(0.0))
    data = toy.ring_of_gaussians(jax.random.PRNGKey(1), steps * batch, std=std)
    data = data.reshape(steps, batch, 2)  # [steps, B, 2]

    @jax.jit
    def train(state, data):
        return jax.lax.scan(lambda s, x: (train_step(s, {"x": x})[0], None), state, data)[0]

    state = train(state, data)
    samples = _samples(gan, state, jax.random.normal(jax.random.PRNGKey(2), (2000, 8)))
    cover = toy.mode_coverage(samples, toy.mode_centers(), threshold=3 * std, min_count=10)
    assert cover.modes_covered == 8, cover.counts
    assert cover.high_quality > 0.6, cover  # most samples land on a mode, not between
