"""The VAE: shapes and dtypes of every variant, the ELBO as a bound on an exact log p(x)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo import registry
from zoo.generative import VAE, VAEConfig, iwae_log_likelihood
from zoo.generative import distributions as dist
from zoo.train import config as config_lib
from zoo.train.families import VAEFamily
from zoo.train.state import TrainState, make_train_step

KEY = jax.random.PRNGKey(0)


def _family() -> VAEFamily:
    config = config_lib.base_config()
    config.family, config.model.name = "vae", "vae_tiny"
    return VAEFamily(config_lib.validate(config))


def _vae_step(vae: VAE, tx):
    """The 'vae' family's jitted train step (the loop's core step) and a fresh state."""
    family = _family()
    state = TrainState.create(family.init_params(vae, {"params": KEY}), tx,
                              jax.random.PRNGKey(7))  # donated with the state
    step = jax.jit(make_train_step(family.phases(vae), optax.constant_schedule(0.0)),
                   donate_argnums=0)
    return state, step


@pytest.mark.parametrize(
    "architecture,likelihood,dtype",
    list(itertools.product(("mlp", "conv"), ("bernoulli", "gaussian"),
                           (jnp.float32, jnp.bfloat16))),
)
def test_every_variant_has_the_documented_shapes_and_dtypes(architecture, likelihood, dtype):
    config = VAEConfig(data_shape=(8, 12, 1), latent_dim=3, architecture=architecture,
                       hidden_dims=(4, 6), likelihood=likelihood, dtype=dtype)
    vae = VAE(config)
    x = jax.random.uniform(KEY, (5, 8, 12, 1))
    params = vae.init(KEY, x, KEY)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    out = vae.apply(params, x, KEY)
    assert out.loss.shape == () and out.loss.dtype == jnp.float32
    for field in (out.elbo, out.log_likelihood, out.kl):
        assert field.shape == (5,) and field.dtype == jnp.float32
    assert out.decoder_output.shape == (5, 8, 12, 1) and out.decoder_output.dtype == jnp.float32
    assert out.posterior.mean.shape == out.posterior.log_std.shape == out.z.shape == (5, 3)
    np.testing.assert_allclose(out.elbo, out.log_likelihood - out.kl, rtol=1e-6)
    assert vae.apply(params, x, method=VAE.encode).mean.shape == (5, 3)
    assert vae.apply(params, x, method=VAE.reconstruct).shape == (5, 8, 12, 1)
    assert vae.apply(params, x, KEY, method=VAE.reconstruct).shape == (5, 8, 12, 1)
    samples = vae.apply(params, KEY, 7, method=VAE.sample)
    assert samples.shape == (7, 8, 12, 1) and samples.dtype == jnp.float32
    if likelihood == "bernoulli":
        assert ((samples >= 0) & (samples <= 1)).all()
    path = vae.apply(params, x[:2], x[2:4], 4, method=VAE.interpolate)
    assert path.shape == (2, 4, 8, 12, 1)
    # The ends of the path are the reconstructions of its ends.
    np.testing.assert_allclose(path[:, 0], vae.apply(params, x[:2], method=VAE.reconstruct),
                               atol=1e-6 if dtype == jnp.float32 else 1e-2)


def test_beta_weights_only_the_kl_term_of_the_loss():
    x = (jax.random.uniform(KEY, (4, 2)) > 0.5).astype(jnp.float32)
    outs = {}
    for beta in (0.0, 1.0, 4.0):
        vae = VAE(VAEConfig(data_shape=(2,), latent_dim=2, architecture="mlp", hidden_dims=(8,),
                            beta=beta))
        params = vae.init(KEY, x, KEY)  # same key: the same params for every beta
        outs[beta] = vae.apply(params, x, KEY)
    for beta, out in outs.items():
        np.testing.assert_allclose(out.elbo, outs[1.0].elbo, rtol=1e-6)
        assert out.loss == pytest.approx(float(-jnp.mean(out.log_likelihood - beta * out.kl)),
                                         rel=1e-5)


@pytest.mark.slow  # 20 s of enumerating every latent code: make test-all
def test_elbo_is_a_lower_bound_of_the_exact_log_likelihood():
    """Two binary pixels, a 1-D latent: log p(x) by numerical integration over z."""
    config = VAEConfig(data_shape=(2,), latent_dim=1, architecture="mlp", hidden_dims=(16,))
    vae = VAE(config)
    patterns = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # [4, 2]
    # Fit a little to correlated data, so q and p(x|z) are far from their initial values.
    data = patterns[jax.random.choice(KEY, 4, (256,), p=jnp.array([0.45, 0.05, 0.05, 0.45]))]
    # Binary data: a Bernoulli family's re-binarisation leaves it as it is.
    state, step = _vae_step(vae, optax.adam(3e-2))
    for _ in range(60):
        state, _ = step(state, {"x": data})
    params = {"params": state.params}

    z = jnp.linspace(-10.0, 10.0, 8001)[:, None]  # [G, 1]
    dz = float(z[1, 0] - z[0, 0])
    logits = vae.apply(params, z, method=VAE.decode)  # [G, 2]
    log_prior = -0.5 * z[:, 0] ** 2 - 0.5 * np.log(2 * np.pi)  # [G]
    post = vae.apply(params, patterns, method=VAE.encode)  # [4, 1]
    log_px = []
    for i in range(4):
        x = jnp.broadcast_to(patterns[i], logits.shape)  # [G, 2]
        log_lik = dist.bernoulli_log_prob(x, logits)  # [G]
        log_px.append(float(jax.nn.logsumexp(log_lik + log_prior) + np.log(dz)))
        # The exact ELBO: E_q[log p(x|z)] by the same quadrature, minus the analytic KL.
        log_q = dist.normal_log_prob(z, jnp.broadcast_to(post.mean[i], z.shape),
                                     jnp.broadcast_to(post.log_std[i], z.shape))  # [G]
        exact_elbo = float(jnp.sum(jnp.exp(log_q) * log_lik) * dz
                           - dist.kl_to_standard_normal(dist.Normal(post.mean[i:i + 1],
                                                                    post.log_std[i:i + 1]))[0])
        # The module's one-sample ELBO averages to the exact one ...
        keys = jax.random.split(jax.random.PRNGKey(i), 4000)
        samples = jax.vmap(lambda k, x=patterns[i:i + 1]: vae.apply(params, x, k).elbo[0])(keys)
        assert float(samples.mean()) == pytest.approx(exact_elbo,
                                                      abs=4 * float(samples.std()) / 63 + 1e-3)
        # ... which is below log p(x); the gap is KL(q(z|x) || p(z|x)) > 0.
        log_posterior = log_lik + log_prior - log_px[i]  # [G] log p(z|x)
        gap = float(jnp.sum(jnp.exp(log_q) * (log_q - log_posterior)) * dz)
        assert exact_elbo < log_px[i]
        assert log_px[i] - exact_elbo == pytest.approx(gap, abs=1e-3)
        # The IWAE bound closes the gap as the importance samples grow (Burda et al. 2016),
        # chunked or not; with one sample it is the one-sample ELBO, draw for draw.
        # (Each estimate is a random draw; the bound holds for its mean over draws.)
        x = patterns[i:i + 1]  # [1, 2]

        def iwae(k, num, x=x):
            return iwae_log_likelihood(vae, params, x, k, num, chunk=min(num, 8))[0]

        one, ten = (jax.vmap(lambda k, n=n: iwae(k, n))(keys[:256]) for n in (1, 10))  # [256]
        assert float(one.mean()) == pytest.approx(exact_elbo, abs=4 * float(one.std()) / 16)
        margin = 4 * float(ten.std()) / 16
        assert exact_elbo < float(ten.mean()) + margin and float(ten.mean()) < log_px[i] + margin
        assert float(iwae(jax.random.PRNGKey(100 + i), 2000)) == pytest.approx(log_px[i],
                                                                              abs=0.02)
    # The four probabilities of a distribution over {0, 1}^2 add up to one.
    assert np.exp(log_px).sum() == pytest.approx(1.0, abs=1e-3)  # float32 quadrature


def test_train_step_lowers_the_loss_and_eval_step_sums():
    vae = registry.build("vae_tiny", data_shape=(4, 4, 1))
    x = (jax.random.uniform(KEY, (16, 4, 4, 1)) > 0.5).astype(jnp.float32)
    state, step = _vae_step(vae, optax.adam(1e-2))
    first = None
    for _ in range(30):
        state, metrics = step(state, {"x": x})
        first = metrics["loss"] if first is None else first
        assert all(jnp.isfinite(v) for v in metrics.values())
    assert int(state.step) == 30 and metrics["loss"] < first
    mask = np.arange(16) < 12  # the last four rows are padding
    sums = jax.jit(_family().eval_step(vae))(state.params, {"x": x, "mask": mask}, KEY)
    assert float(sums["count"]) == 12.0 and jnp.isfinite(sums["elbo"])
    out = vae.apply({"params": state.params}, x, jax.random.split(KEY)[1])
    np.testing.assert_allclose(sums["elbo"], jnp.sum(out.elbo[:12]), rtol=1e-5)


@pytest.mark.parametrize("overrides,field", [
    (dict(latent_dim=0), "latent_dim"),
    (dict(architecture="resnet"), "architecture"),
    (dict(likelihood="poisson"), "likelihood"),
    (dict(beta=-1.0), "beta"),
    (dict(observation_std=0.0), "observation_std"),
    (dict(hidden_dims=(32, 0)), "hidden_dims"),
    (dict(hidden_dims=()), "hidden_dims"),  # conv needs at least one layer
    (dict(data_shape=(30, 30, 1)), "data_shape"),  # 30 is not divisible by 4
    (dict(data_shape=(784,)), "data_shape"),  # conv needs (H, W, C)
    (dict(dtype=jnp.int32), "dtype"),
])
def test_bad_configs_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        VAEConfig(**overrides)


def test_inputs_of_the_wrong_shape_raise():
    vae = registry.build("vae_tiny")
    x = jnp.zeros((2, 28, 28, 1))
    params = vae.init(KEY, x, KEY)
    with pytest.raises(ValueError, match="data_shape"):
        vae.apply(params, jnp.zeros((2, 28, 28)), KEY)
    with pytest.raises(ValueError, match="num_steps"):
        vae.apply(params, x, x, 1, method=VAE.interpolate)
