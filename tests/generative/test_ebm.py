"""The EBM: Langevin dynamics, the contrastive-divergence loss, the persistent buffer of the
'ebm' family (written every step, kept across resume) and learning the ring of Gaussians."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from run_checks import check_run, final_state, tiny_config

from zoo import registry
from zoo.generative import EBM, EBMConfig, contrastive_divergence_loss, langevin
from zoo.train import config as config_lib
from zoo.train.families import EBMFamily
from zoo.train.families.ebm import chain_starts
from zoo.train.loop import train_and_evaluate
from zoo.train.state import make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import ebm_toy  # noqa: E402

KEY = jax.random.PRNGKey(0)


def _family(**overrides) -> EBMFamily:
    return EBMFamily(config_lib.validate(tiny_config(ebm_toy, **overrides)))


def _state_and_step(family: EBMFamily, model: EBM):
    """The family's state (an optimizer state for the energy only) and its jitted train
    step."""
    state = family.init_state(model, optax.adam(1e-2), jax.random.PRNGKey(7))
    step = jax.jit(make_train_step(family.phases(model), optax.constant_schedule(0.0)))
    return state, step


@pytest.mark.parametrize("noise", [1.0, 0.5])
def test_langevin_samples_a_gaussian_energy(noise):
    """E = |x - mu|^2 / (2 sigma^2): the chains forget their start and settle on mean mu and,
    per coordinate, the variance of unadjusted Langevin with step e and noise scale s,
    s^2 sigma^2 / (1 - e / (4 sigma^2)) (a linear recursion's fixed point)."""
    mu, sigma, eps = jnp.array([[1.0, -2.0]]), 0.5, 0.01  # mu [1, 2]

    def energy(x):  # [B, 2] -> [B]
        return jnp.sum(jnp.square(x - mu), axis=-1) / (2 * sigma**2)

    x0 = jnp.zeros((4000, 2))  # [B, 2], far from mu
    x = langevin(energy, x0, KEY, 600, eps, noise)
    np.testing.assert_allclose(x.mean(axis=0), mu[0], atol=0.03)
    expected = noise**2 * sigma**2 / (1 - eps / (4 * sigma**2))
    np.testing.assert_allclose(x.var(axis=0), [expected, expected], rtol=0.06)


def test_no_gradient_flows_through_the_chain():
    def out(mu):
        energy = lambda x: jnp.sum(jnp.square(x - mu), axis=-1)  # noqa: E731
        return jnp.sum(langevin(energy, jnp.ones((3, 2)) * mu, KEY, 5, 0.1, 1.0))

    np.testing.assert_array_equal(jax.grad(out)(jnp.array([[0.3, -0.2]])), 0.0)  # mu [1, 2]


def test_cd_loss_value_and_the_directions_it_pushes_the_energy():
    e_pos, e_neg = jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0, -1.0, 2.5])
    # mean(e+) - mean(e-) + alpha (mean(e+^2) + mean(e-^2)) = -0.5 - 1.25 + 0.1 (2.5 + 4.125)
    assert contrastive_divergence_loss(e_pos, e_neg, 0.1) == pytest.approx(-1.0875)
    g_pos, g_neg = jax.grad(contrastive_divergence_loss, argnums=(0, 1))(e_pos, e_neg, 0.0)
    np.testing.assert_allclose(g_pos, 1 / 2)  # descent lowers the energy of every data point
    np.testing.assert_allclose(g_neg, -1 / 4)  # and raises that of every negative
    # The penalty pulls energies towards 0: d/de+ = (1 + 2 alpha e+) / B, d/de- = (-1 + ...) / B'.
    g_pos, g_neg = jax.grad(contrastive_divergence_loss, argnums=(0, 1))(e_pos, e_neg, 0.1)
    np.testing.assert_allclose(g_pos, [0.6, 0.3], rtol=1e-6)
    np.testing.assert_allclose(g_neg, [-0.225, -0.1, -0.3, -0.125], rtol=1e-6)

    # Through a network: a small gradient step opens the gap between data and negatives.
    model = registry.build("ebm_tiny")
    data, negatives = jax.random.normal(KEY, (8, 2)), 2 + jax.random.normal(KEY, (8, 2))
    params = model.init(KEY, data)["params"]

    @jax.jit
    def gap_before_and_after(p):
        def gap(p):  # mean E(data) - mean E(negatives)
            return contrastive_divergence_loss(model.apply({"params": p}, data),
                                               model.apply({"params": p}, negatives), 0.0)

        stepped = jax.tree.map(lambda p, g: p - 1e-3 * g, p, jax.grad(gap)(p))
        return gap(p), gap(stepped)

    before, after = gap_before_and_after(params)
    assert after < before


def test_each_step_writes_fresh_negatives_at_the_front_of_the_buffer():
    """FIFO: a step's B chains go to rows [0, B), every older row moves down by B, the B
    oldest fall out, all written exactly; the buffer has no optimizer state, only the energy
    is the optimizer's."""
    family, model = _family(), registry.build("ebm_tiny")
    cfg, b = model.config, 16
    state, step = _state_and_step(family, model)
    initial, energy = state.params["buffer"]["negatives"], state.params["energy"]  # [N, 2]
    batches = [{"x": jax.random.normal(jax.random.PRNGKey(i), (b, 2))} for i in range(2)]
    state, metrics = step(state, batches[0])
    first = np.asarray(state.params["buffer"]["negatives"])  # [N, 2]
    np.testing.assert_array_equal(first[b:], initial[:cfg.buffer_size - b])
    # The new rows: Langevin chains under the energy before the step, drawn with the buffer
    # phase's key (phase 0 of step 0) from starts picked in the initial buffer.
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, 0), 0)
    starts = chain_starts(model, initial, rng, b)  # [B, 2]
    assert all(np.isclose(initial, row).all(axis=1).any() or np.abs(row).max() <= cfg.init_range
               for row in np.asarray(starts))
    chains = jax.jit(lambda x: langevin(lambda x: model.apply({"params": energy}, x), x,
                                        jax.random.fold_in(rng, 1), cfg.langevin_steps,
                                        cfg.step_size, cfg.noise_scale))(starts)  # [B, 2]
    np.testing.assert_array_equal(first[:b], chains)
    assert not np.allclose(first[:b], starts)
    assert metrics["chain_distance"] > 0 and np.isfinite(metrics["loss"])
    assert not any(name.startswith("buffer_") for name in metrics), sorted(metrics)
    assert set(state.opt_state) == {"energy"}
    assert int(state.opt_state["energy"][0].count) == 1
    state, _ = step(state, batches[1])
    second = np.asarray(state.params["buffer"]["negatives"])  # [N, 2]
    np.testing.assert_array_equal(second[2 * b:], initial[:cfg.buffer_size - 2 * b])
    np.testing.assert_array_equal(second[b:2 * b], first[:b])


@pytest.mark.slow  # two runs and a resume: 15-20 s on 2 cores
def test_a_resumed_ebm_reaches_the_same_parameters_and_buffer(tmp_path):
    """4 steps, then resumed to 8 == 8 straight, bit for bit: the energy, its Adam state and
    the buffer are all in the checkpoint, and the keys fold in the step."""
    steps = {"train.num_train_steps": 8, "train.checkpoint_every": 4, "train.eval_every": 8,
             "train.log_every": 4, "mesh.num_devices": 1}
    train_and_evaluate(tiny_config(ebm_toy, **steps), str(tmp_path / "straight"))
    train_and_evaluate(tiny_config(ebm_toy, **{**steps, "train.num_train_steps": 4}),
                       str(tmp_path / "resumed"))
    train_and_evaluate(tiny_config(ebm_toy, **steps), str(tmp_path / "resumed"))
    step_a, state_a = final_state(tmp_path / "straight")
    step_b, state_b = final_state(tmp_path / "resumed")
    assert step_a == step_b == 8
    assert jax.tree.structure(state_a) == jax.tree.structure(state_b)
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_array_equal(a, b)
    # 8 steps of 16 chains have rewritten all 64 rows since the run's initial draw.
    buffer = np.asarray(state_a["params"]["buffer"]["negatives"])  # [N, 2]
    config = config_lib.validate(tiny_config(ebm_toy))
    initial = EBMFamily(config).init_state(registry.build("ebm_tiny"), optax.adam(1e-3),
                                           jax.random.PRNGKey(config.seed))
    initial = np.asarray(initial.params["buffer"]["negatives"])  # [N, 2]
    assert buffer.shape == initial.shape == (64, 2)
    assert not (buffer[:, None, :] == initial[None, :, :]).all(axis=-1).any()


@pytest.mark.slow
def test_toy_ebm_learns_the_ring_and_draws_it(tmp_path):
    """The tiny config at the toy preset's size, 300 seeded steps of batch 128 through train.py's
    loop: fresh chains end on most modes. This is also test_configs.py's run of ebm_toy's tiny
    variant (its checks included)."""
    config = tiny_config(ebm_toy, **{"model.name": "ebm_mlp_toy", "data.batch_size": 128,
                               "data.num_train": 4096, "optim.learning_rate": 3e-3,
                               "eval.sample_steps": 200, "train.num_train_steps": 300,
                               "train.eval_every": 150, "train.log_every": 150,
                               "train.checkpoint_every": 300, "mesh.num_devices": 1})
    result = train_and_evaluate(config, str(tmp_path))
    check_run(config, tmp_path, result)
    with open(tmp_path / "metrics.jsonl") as f:
        first, last = [r for r in map(json.loads, f) if r["split"] == "eval"]
    assert result["modes_covered"] >= 6, result
    assert last["high_quality"] > max(2 * first["high_quality"], 0.5), (first, last)
    assert result["energy_data"] < result["energy_samples"] + 0.5  # data sits in the wells
    for name in ("energy", "samples"):
        assert (tmp_path / "images" / f"ebm_{name}_step300.png").stat().st_size > 1000, name


def test_sample_points_draw_and_sample_images_refuses():
    family, model = _family(), registry.build("ebm_tiny")
    params = family.init_params(model, {"params": KEY})
    points = family.sample_points(model, params, KEY, 5)
    assert points.shape == (5, 2) and np.isfinite(points).all()
    with pytest.raises(ValueError, match="draws points.*not images"):
        family.sample_images(model, params, KEY, 4)


@pytest.mark.parametrize("overrides,field", [
    (dict(data_shape=()), "data_shape"),
    (dict(hidden_dims=(16, 0)), "hidden_dims"),
    (dict(activation="relu"), "activation"),  # not smooth: Langevin needs good gradients
    (dict(langevin_steps=0), "langevin_steps"),
    (dict(step_size=0.0), "step_size"),
    (dict(noise_scale=-1.0), "noise_scale"),
    (dict(buffer_size=0), "buffer_size"),
    (dict(reinit_prob=1.5), "reinit_prob"),
    (dict(alpha=-0.1), "alpha"),
    (dict(init_range=0), "init_range"),
    (dict(dtype=jnp.float16), "dtype"),
])
def test_bad_configs_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        EBMConfig(**overrides)


def test_wrong_input_shape_and_bad_run_configs_are_named(tmp_path):
    model = registry.build("ebm_tiny")
    with pytest.raises(ValueError, match="data_shape"):
        model.init(KEY, jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="'model.buffer_size' is 64.*data.batch_size = 128"):
        _family(**{"data.batch_size": 128}).phases(model)
    config = ml_collections.ConfigDict(ebm_toy.get_config("tiny").to_dict(), type_safe=False)
    config.model.name = "gan_mlp_toy"
    with pytest.raises(ValueError, match="'model.name'.*'ebm' trains EBM"):
        train_and_evaluate(config, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()
