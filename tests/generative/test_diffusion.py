"""DDPM: the closed-form forward marginal, the schedules, the U-Net, both samplers' steps
against their formulas, the parameter EMA (a written parameter group), clear errors, and
tiny runs of train.py: learning, and a resumed run that restores the EMA."""

import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from debian_data import needs_fashion_mnist, prepare
from run_checks import check_run, final_state, tiny_config

from zoo.generative import DDPM, DiffusionConfig
from zoo.generative import diffusion as diff
from zoo.train import config as config_lib
from zoo.train.families import DiffusionFamily
from zoo.train.families import diffusion as diffusion_family
from zoo.train.loop import train_and_evaluate
from zoo.train.sample import load_config, restore_for_inference
from zoo.train.state import TrainState, make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import diffusion_fashion_mnist  # noqa: E402

KEY = jax.random.PRNGKey(0)
TINY = DiffusionConfig(data_shape=(8, 8, 1), timesteps=20, base_channels=8,
                       channel_mults=(1, 2), num_res_blocks=1, norm_groups=4)


def _abar64(schedule: str, timesteps: int) -> np.ndarray:
    """alphas_cumprod recomputed in float64 from the schedule's betas."""
    return np.cumprod(1.0 - np.asarray(diff.SCHEDULES[schedule](timesteps), np.float64))


# --- the forward process ---------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_closed_form_marginal_matches_iterated_one_step_noising(schedule):
    """x_t = sqrt(1 - b_t) x_{t-1} + sqrt(b_t) e_t, iterated with per-step keys from a fixed
    key, equals q_sample(x0, t, e_bar) with e_bar the one noise those e_t's add up to."""
    timesteps = 1000
    betas = np.asarray(diff.SCHEDULES[schedule](timesteps), np.float64)  # [T]
    x0 = np.asarray(jax.random.uniform(KEY, (2, 6, 6, 1), minval=-1, maxval=1))
    eps = np.asarray(jax.vmap(lambda s: jax.random.normal(
        jax.random.fold_in(jax.random.PRNGKey(42), s), x0.shape))(jnp.arange(timesteps)))
    ddpm = DDPM(DiffusionConfig(data_shape=(6, 6, 1), timesteps=timesteps, schedule=schedule,
                                channel_mults=(1, 2)))
    checked = {0, 1, 9, 99, 500, 998, 999}
    x = x0.astype(np.float32)
    for t in range(timesteps):
        x = (np.sqrt(1 - betas[t]) * x + np.sqrt(betas[t]) * eps[t]).astype(np.float32)
        if t not in checked:
            continue
        # The coefficient of e_s in x_t: sqrt(b_s) prod_{s < r <= t} sqrt(1 - b_r).
        coef = np.sqrt(betas[:t + 1]) * np.sqrt(np.append(np.cumprod(
            (1 - betas[1:t + 1])[::-1])[::-1], 1.0))  # [t + 1]
        noise_sum = np.tensordot(coef, eps[:t + 1].astype(np.float64), axes=1)  # [2, 6, 6, 1]
        eps_bar = noise_sum / np.sqrt(np.sum(coef**2))  # unit variance: the equivalent noise
        closed = ddpm.apply({}, jnp.asarray(x0), jnp.full((2,), t),
                            jnp.asarray(eps_bar, jnp.float32), method=DDPM.q_sample)
        np.testing.assert_allclose(closed, x, atol=1e-5, err_msg=f"t = {t}")
        # and sum coef^2 = 1 - abar_t: the closed form's noise scale
        np.testing.assert_allclose(np.sum(coef**2), 1 - np.prod(1 - betas[:t + 1]), rtol=1e-9)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_alphas_cumprod_decreases_inside_zero_one(schedule):
    abar = np.asarray(diff.alphas_cumprod(diff.SCHEDULES[schedule](1000)))
    assert abar.shape == (1000,) and abar.dtype == np.float32
    assert np.all(np.diff(abar) < 0) and abar[0] < 1 and abar[-1] > 0


def test_linear_schedule_is_ho_et_al():
    betas = np.asarray(diff.linear_betas(1000))
    np.testing.assert_allclose([betas[0], betas[-1]], [1e-4, 0.02], rtol=1e-6)


def test_cosine_schedule_follows_cos_squared_and_clips_its_last_beta():
    timesteps, s = 1000, 0.008
    f = np.cos((np.arange(timesteps + 1) / timesteps + s) / (1 + s) * np.pi / 2) ** 2
    abar = np.asarray(diff.alphas_cumprod(diff.cosine_betas(timesteps)), np.float64)
    np.testing.assert_allclose(abar[:-1], f[1:-1] / f[0], rtol=2e-4, atol=1e-7)
    # abs=1e-6: abar is computed in float32 (its eps is 1.2e-7 near 1); the formula in float64.
    assert abar[0] == pytest.approx(f[1] / f[0], abs=1e-6) and abar[0] > 0.9999
    assert diff.cosine_betas(timesteps)[-1] == pytest.approx(0.999)  # 1 before the clip
    assert 0 < abar[-1] < 1e-6


# --- the network and the loss ------------------------------------------------------------------

@pytest.mark.parametrize("attention,dtype", [(False, jnp.float32), (True, jnp.bfloat16)])
def test_unet_keeps_the_shape_and_depends_on_t(attention, dtype):

    cfg = dataclasses.replace(TINY, attention=attention, dtype=dtype)
    ddpm = DDPM(cfg)
    x = jax.random.normal(KEY, (3, 8, 8, 1))
    params = jax.jit(ddpm.init)(KEY, x, jnp.zeros((3,), jnp.int32))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    apply = jax.jit(ddpm.apply)
    early, late = (apply(params, x, jnp.full((3,), t)) for t in (0, 19))
    assert early.shape == (3, 8, 8, 1) and early.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(early - late))) > 1e-3
    losses = jax.jit(lambda p: ddpm.apply(p, x, KEY, method=DDPM.loss))(params)
    assert losses.shape == (3,) and bool(jnp.all(jnp.isfinite(losses)))
    with pytest.raises(ValueError, match=r"x_t must be \[B, 8, 8, 1\]"):
        ddpm.apply(params, x[:, :4], jnp.zeros((3,), jnp.int32))


# --- the samplers --------------------------------------------------------------------------------

def _oracle(x0, abar):
    """The noise predictor that knows x0: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
    def eps_fn(x_t, t):
        a = abar[t].reshape(-1, 1, 1, 1)  # [B, 1, 1, 1]
        return (x_t - jnp.sqrt(a) * x0) / jnp.sqrt(1 - a)
    return eps_fn


@pytest.mark.parametrize("schedule,steps,clip", [("cosine", 100, False), ("linear", 100, True),
                                                  ("cosine", 7, True)])
def test_ddim_with_an_oracle_recovers_x0(schedule, steps, clip):
    abar = diff.alphas_cumprod(diff.SCHEDULES[schedule](100))
    x0 = jax.random.uniform(KEY, (4, 5, 5, 1), minval=-1, maxval=1)
    x_start = jax.random.normal(jax.random.PRNGKey(3), x0.shape)
    out = jax.jit(lambda k, x: diff.run_sampler(_oracle(x0, abar), k, x, abar, steps, "ddim",
                                                 frames=4, clip=clip))(KEY, x_start)
    np.testing.assert_allclose(out.images, x0, atol=1e-5)
    assert out.trajectory.shape == (4, 4, 5, 5, 1)
    np.testing.assert_array_equal(out.trajectory[:, 0], x_start)
    np.testing.assert_array_equal(out.trajectory[:, -1], out.images)


def test_all_steps_walk_every_timestep_and_respacing_keeps_both_ends():
    np.testing.assert_array_equal(diff.respaced_timesteps(50, 50), np.arange(50)[::-1])
    times = diff.respaced_timesteps(1000, 10)
    assert times[0] == 999 and times[-1] == 0 and np.all(np.diff(times) < 0)
    assert list(diff.respaced_timesteps(1000, 1)) == [999]


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ancestral_step_is_ddpm_posterior_mean_plus_posterior_noise(schedule):
    """Ho et al. eq. 11: mu = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(1 - beta_t), and
    variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)."""
    timesteps = 100
    betas = np.asarray(diff.SCHEDULES[schedule](timesteps), np.float64)
    abar64 = _abar64(schedule, timesteps)
    abar = diff.alphas_cumprod(diff.SCHEDULES[schedule](timesteps))
    x_t = np.asarray(jax.random.normal(KEY, (3, 4, 4, 1)))
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(5), x_t.shape))

    def eps_fn(x, t):  # any predictor will do: a fixed function of x_t and t
        return 0.3 * x + jnp.sin(t.astype(jnp.float32)).reshape(-1, 1, 1, 1)

    for t in (0, 1, 40, 99):
        prev = abar64[t - 1] if t else 1.0
        eps = 0.3 * x_t + np.sin(t)
        mean = (x_t - betas[t] / np.sqrt(1 - abar64[t]) * eps) / np.sqrt(1 - betas[t])
        var = betas[t] * (1 - prev) / (1 - abar64[t])
        a_prev = abar[t - 1] if t else jnp.float32(1.0)
        got_mean = diff.ancestral_step(eps_fn, jnp.asarray(x_t), t, abar[t], a_prev,
                                       jnp.zeros_like(x_t), clip=False)
        got = diff.ancestral_step(eps_fn, jnp.asarray(x_t), t, abar[t], a_prev, jnp.asarray(z),
                                  clip=False)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-4, atol=1e-4, err_msg=f"t = {t}")
        np.testing.assert_allclose(got, mean + np.sqrt(var) * z, rtol=1e-4, atol=1e-4)


def _tiny_family(**overrides) -> DiffusionFamily:
    """The family of the tiny config, its model resized to TINY (8x8 images, 20 timesteps)."""
    config = _family_config(**overrides)
    config.model.update({"data_shape": (8, 8, 1), "timesteps": 20, "base_channels": 8,
                         "norm_groups": 4})
    return DiffusionFamily(config_lib.validate(config))


def _nan_like(tree):
    return jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), tree)


def test_ddpm_samples_have_the_data_shape_and_family_draws_from_the_average():
    ddpm = DDPM(TINY)
    params = jax.jit(ddpm.init)(KEY, jnp.zeros((2, 8, 8, 1)), jnp.zeros((2,), jnp.int32))
    for sampler in diff.SAMPLERS:
        out = jax.jit(lambda p, s=sampler: ddpm.apply(p, KEY, 3, 4, s, frames=3,
                                                      method=DDPM.sample))(params)
        assert out.images.shape == (3, 8, 8, 1) and out.trajectory.shape == (3, 3, 8, 8, 1)
        assert bool(jnp.all(jnp.abs(out.images) <= 1.0))  # the last step returns x0_hat, clipped
    family = _tiny_family(**{"eval.sampler": "ancestral", "eval.sample_steps": 5})
    # The whole tree, as a checkpoint restores it: NaN raw weights would make NaN images.
    tree = {"model": _nan_like(params["params"]),
            "ema": {"average": params["params"], "count": jnp.array(7, jnp.int32)}}
    images = family.sample_images(ddpm, tree, KEY, 5)
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.float32
    assert np.all(np.isfinite(images)) and images.min() >= 0 and images.max() <= 1


def test_ema_decay_warms_up_to_its_cap():
    np.testing.assert_allclose(diffusion_family.ema_decay(jnp.array([1, 2, 90, 8990, 10**6])),
                               [2 / 11, 3 / 12, 91 / 100, 0.999, 0.999], rtol=1e-6)


@pytest.mark.slow  # compiles a U-Net train step: 20 s on 2 cores
def test_train_step_writes_the_moving_average_of_the_new_weights():
    """Five steps of the family's phases: the 'model' group takes Adam steps; the 'ema' group
    (no optimizer state) is the warming average of the weights after each step, by hand."""
    family = _tiny_family()
    ddpm = DDPM(TINY)
    params = family.init_params(ddpm, {"params": KEY})
    assert set(params) == {"model", "ema"} and int(params["ema"]["count"]) == 0
    state = TrainState.create(params, optax.adam(1e-2), KEY, groups=family.optimizer_groups)
    assert set(state.opt_state) == {"model"}
    step = jax.jit(make_train_step(family.phases(ddpm), lambda n: 1e-2))
    batch = {"x": jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 1), minval=-1, maxval=1)}
    average = jax.tree.map(lambda p: np.asarray(p, np.float64), params["model"])
    for n in range(1, 6):
        state, metrics = step(state, batch)
        decay = min(0.999, (1 + n) / (10 + n))
        average = jax.tree.map(lambda e, p, d=decay: d * e + (1 - d) * np.asarray(p, np.float64),
                               average, state.params["model"])
        assert float(metrics["ema_decay"]) == pytest.approx(decay, rel=1e-6)
        assert int(state.params["ema"]["count"]) == n
        assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    assert jax.tree.structure(state.params["ema"]["average"]) == jax.tree.structure(average)
    for got, want in zip(jax.tree.leaves(state.params["ema"]["average"]),
                         jax.tree.leaves(average), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    moved = [not np.allclose(a, r) for a, r in zip(jax.tree.leaves(average),
                                                   jax.tree.leaves(state.params["model"]),
                                                   strict=True)]
    assert sum(moved) > len(moved) // 2  # the average lags the weights


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,match", [
    ("schedule", "quadratic", "schedule must be one of"),
    ("data_shape", (27, 28, 1), "data_shape .* divisible by 4"),
    ("norm_groups", 5, "norm_groups must divide"),
    ("dropout", 1.0, "dropout"),
    ("timesteps", 1, "timesteps must be >= 2"),
    ("channel_mults", (), "channel_mults"),
    ("attention", 1, "attention must be a bool"),
])
def test_bad_config_values_name_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        DiffusionConfig(**{field: value})


def test_bad_sampler_arguments_name_the_argument():
    abar = diff.alphas_cumprod(diff.cosine_betas(10))
    x = jnp.zeros((1, 2, 2, 1))
    for kwargs, match in [({"method": "euler"}, "method must be one of"),
                          ({"steps": 11}, r"steps must be an int in \[1, 10\]"),
                          ({"steps": 0}, "steps"), ({"frames": 1}, "frames")]:
        args = {"steps": 5, "method": "ddim", **kwargs}
        frames = args.pop("frames", 0)
        with pytest.raises(ValueError, match=match):
            diff.run_sampler(lambda x, t: x, KEY, x, abar, args["steps"], args["method"],
                             frames=frames)


def _family_config(**overrides):
    config = ml_collections.ConfigDict(diffusion_fashion_mnist.get_config("tiny").to_dict(),
                                       type_safe=False)
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


@pytest.mark.parametrize("key,value,match", [
    ("eval.sampler", "euler", r"'eval.sampler' must be one of \['ancestral', 'ddim'\]"),
    ("eval.sample_steps", 51, r"'eval.sample_steps' must be an int in \[1, 50\]"),
    ("eval.sample_steps", 0, "'eval.sample_steps'"),
    ("eval.num_samples", 0, "'eval.num_samples'"),
    ("model.name", "vae_tiny", "'model.name'.*'diffusion' trains DDPM"),
    ("model.schedule", "quadratic", "schedule"),
])
def test_bad_run_config_fails_before_training(tmp_path, key, value, match):
    with pytest.raises(ValueError, match=match):
        train_and_evaluate(_family_config(**{key: value}), str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


# --- end to end ----------------------------------------------------------------------------------

@pytest.mark.slow
@needs_fashion_mnist
def test_tiny_ddpm_learns_on_fashion_mnist_and_draws(tmp_path, shared_data_dir):
    """Also test_configs.py's run of the config's tiny variant (its checks included)."""
    config = tiny_config(diffusion_fashion_mnist, **{
        "train.num_train_steps": 40, "train.eval_every": 20, "train.log_every": 20,
        "train.checkpoint_every": 40, "eval.sampler": "ancestral"})
    prepare(config, shared_data_dir)
    result = train_and_evaluate(config, str(tmp_path))
    check_run(config, tmp_path, result)
    with open(tmp_path / "metrics.jsonl") as f:
        first, last = [r for r in map(json.loads, f) if r["split"] == "eval"]
    assert last["eps_mse_raw"] < first["eps_mse_raw"], (first, last)
    assert result["eps_mse_raw"] < 0.8  # predicting no noise scores 1
    assert np.isfinite(result["eps_mse"]) and result["sample_seconds_per_image"] > 0
    for name in ("samples", "trajectory"):
        assert (tmp_path / "images" / f"diffusion_{name}_step40.png").stat().st_size > 500
    # What the cross-model benchmark does: restore the whole tree, sample from the average.
    restored = restore_for_inference(str(tmp_path), load_config(str(tmp_path)))
    params = restored.params
    assert restored.step == 40 and int(params["ema"]["count"]) == 40
    drawn = restored.family.sample_images(restored.model, params, KEY, 4)  # [4, Y, X, 1]
    np.testing.assert_array_equal(drawn, restored.family.sample_images(
        restored.model, {**params, "model": _nan_like(params["model"])}, KEY, 4))
    assert drawn.shape == (4, 28, 28, 1) and np.all(np.isfinite(drawn))


@pytest.mark.slow
@needs_fashion_mnist
def test_a_resumed_run_restores_the_average(tmp_path, shared_data_dir):
    """4 steps, then resumed to 8 == 8 straight, bit for bit: the weights, their Adam state
    and the moving average with its count are all in the checkpoint. (A constant learning
    rate: the tiny config's cosine decays over num_train_steps, which the first run halves.)"""
    steps = {"train.num_train_steps": 8, "train.checkpoint_every": 4, "train.eval_every": 8,
             "train.log_every": 4, "mesh.num_devices": 1, "optim.schedule": "constant",
             "eval.num_samples": 4, "eval.sample_steps": 2}

    def run(workdir, **overrides):
        config = tiny_config(diffusion_fashion_mnist, **{**steps, **overrides})
        prepare(config, shared_data_dir)
        train_and_evaluate(config, str(tmp_path / workdir))

    run("straight")
    run("resumed", **{"train.num_train_steps": 4})
    run("resumed")
    step_a, state_a = final_state(tmp_path / "straight")
    step_b, state_b = final_state(tmp_path / "resumed")
    assert step_a == step_b == 8 and int(state_b["params"]["ema"]["count"]) == 8
    assert jax.tree.structure(state_a) == jax.tree.structure(state_b)
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(jax.tree.leaves(state_b["params"]["ema"]["average"])[0],
                              jax.tree.leaves(state_b["params"]["model"])[0])
