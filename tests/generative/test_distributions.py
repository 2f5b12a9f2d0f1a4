"""The analytic KL against Monte Carlo; reparameterised gradients finite and unbiased."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.generative import distributions as dist


def test_analytic_kl_matches_monte_carlo():
    q = dist.Normal(jnp.array([[0.0, 0.0], [1.5, -0.7], [0.3, 2.0]]),
                    jnp.array([[0.0, 0.0], [-1.0, 0.4], [0.8, -2.0]]))  # [B=3, Z=2]
    analytic = dist.kl_to_standard_normal(q)  # [3]
    num = 100_000
    keys = jax.random.split(jax.random.PRNGKey(0), num)
    z = jax.vmap(lambda k: dist.reparameterize(k, q))(keys)  # [num, 3, 2]
    flat = z.reshape(num * 3, 2)  # [num 3, 2]
    mean = jnp.tile(q.mean, (num, 1))
    log_std = jnp.tile(q.log_std, (num, 1))
    log_ratio = (dist.normal_log_prob(flat, mean, log_std)
                 - dist.normal_log_prob(flat, jnp.zeros_like(flat), 0.0)).reshape(num, 3)
    estimate, stderr = log_ratio.mean(0), log_ratio.std(0) / np.sqrt(num)
    assert analytic[0] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_array_less(np.abs(estimate - analytic), 4 * stderr + 1e-4)


def test_log_probs_agree_with_closed_forms():
    x = jnp.array([[0.0, 1.0, 1.0]])
    logits = jnp.array([[2.0, -1.0, 0.5]])
    p = jax.nn.sigmoid(logits)
    expected = jnp.sum(x * jnp.log(p) + (1 - x) * jnp.log1p(-p))
    assert dist.bernoulli_log_prob(x, logits)[0] == pytest.approx(float(expected), rel=1e-5)
    # Large logits stay finite (softplus, not log(sigmoid)).
    assert jnp.isfinite(dist.bernoulli_log_prob(x, 1e4 * logits)).all()
    val = dist.normal_log_prob(jnp.array([[1.0]]), jnp.array([[0.0]]), jnp.log(2.0))
    assert val[0] == pytest.approx(-0.5 * 0.25 - np.log(2.0) - 0.5 * np.log(2 * np.pi), rel=1e-6)


def test_reparameterised_gradients_are_finite_and_unbiased():
    # E_{z ~ N(mu, s^2)}[exp(z)] = exp(mu + s^2 / 2): exact gradients in mu and log s.
    mu, log_s = jnp.array([[0.3, -0.5]]), jnp.array([[-0.4, 0.2]])  # [1, 2]

    def one_sample(params, key):
        return jnp.sum(jnp.exp(dist.reparameterize(key, dist.Normal(*params))))

    num = 50_000
    grads = jax.vmap(jax.grad(one_sample), in_axes=(None, 0))(
        (mu, log_s), jax.random.split(jax.random.PRNGKey(1), num))
    s2 = jnp.exp(2 * log_s)
    exact = (jnp.exp(mu + s2 / 2), s2 * jnp.exp(mu + s2 / 2))
    for g, want in zip(grads, exact, strict=True):  # g: [num, 1, 2]
        assert jnp.isfinite(g).all()
        stderr = g.std(0) / np.sqrt(num)
        np.testing.assert_array_less(np.abs(g.mean(0) - want), 4 * stderr)
