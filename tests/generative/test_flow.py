"""The normalizing flow: every layer's log-determinant against the Jacobian's, exact inverses,
the likelihood and bits/dim against independent computations, and the 'flow' family end to end.

Jacobians are taken in float64 (``jax.enable_x64``) of each example's flattened map, with
random, non-trivial parameters: every zero-initialised weight is perturbed, so no coupling
and no ActNorm is the identity.
"""

import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from debian_data import needs_fashion_mnist, prepare
from run_checks import check_run, tiny_config
from scipy import stats

from zoo import registry
from zoo.generative import FLOW_PRESETS, FlowConfig, RealNVP
from zoo.generative import flow as flow_lib
from zoo.generative import flow_layers as fl
from zoo.train import config as config_lib
from zoo.train.families import FlowFamily
from zoo.train.loop import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import flow_fashion_mnist  # noqa: E402

KEY = jax.random.PRNGKey(0)

# name -> (layer, one batch's shape [B, Y, X, C]); couplings compute in float64 here.
LAYERS = {
    "logit": (lambda: fl.LogitTransform(0.05), (2, 4, 4, 1)),
    "checkerboard_coupling_even": (
        lambda: fl.AffineCoupling(1, "checkerboard", 0, 8, 1, jnp.float64), (2, 4, 4, 1)),
    "checkerboard_coupling_odd": (
        lambda: fl.AffineCoupling(2, "checkerboard", 1, 8, 1, jnp.float64), (2, 4, 4, 2)),
    "channel_coupling_even": (
        lambda: fl.AffineCoupling(2, "channel", 0, 8, 1, jnp.float64), (2, 4, 4, 2)),
    "channel_coupling_odd": (
        lambda: fl.AffineCoupling(4, "channel", 1, 8, 2, jnp.float64), (2, 2, 4, 4)),
    "squeeze": (lambda: fl.Squeeze(), (2, 4, 4, 2)),
    "actnorm": (lambda: fl.ActNorm(2), (2, 4, 4, 2)),
    "conv1x1": (lambda: fl.InvertibleConv1x1(3), (2, 4, 4, 3)),
}


def _perturbed(params, key, dtype, size=0.3):
    """Every parameter moved by size * N(0, 1): zero-initialised weights become non-zero."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [
        (p + size * jax.random.normal(k, p.shape)).astype(dtype)
        for p, k in zip(leaves, keys, strict=True)])


def _input(shape, dtype):
    """Values in (0.02, 0.98): valid for the logit layer, generic for the others."""
    return jax.random.uniform(jax.random.PRNGKey(3), shape, dtype, 0.02, 0.98)


def _layer_and_params(name, dtype):
    make, shape = LAYERS[name]
    layer = make()
    x = _input(shape, dtype)
    variables = layer.init(KEY, x, method=layer.forward)
    return layer, _perturbed(variables, jax.random.PRNGKey(1), dtype), x


def _jacobian_logdets(f, x):
    """log|det J| of f's map of each example [B]: f maps [1, ...] -> [1, ...] (any shapes)."""
    def flat(v):  # [D] -> [D]
        return f(v.reshape(1, *x.shape[1:])).reshape(-1)

    jacobian = jax.jit(jax.jacfwd(flat))  # [D, D]
    signs, logdets = zip(*(np.linalg.slogdet(np.asarray(jacobian(xb.reshape(-1))))
                           for xb in x), strict=True)
    assert all(s != 0 for s in signs), "singular Jacobian"
    return np.array(logdets)


@pytest.mark.parametrize("name", list(LAYERS))
def test_each_layer_logdet_is_log_abs_det_of_its_jacobian(name):
    with jax.enable_x64(True):
        layer, params, x = _layer_and_params(name, jnp.float64)
        y, logdet = layer.apply(params, x, method=layer.forward)
        assert logdet.shape == (x.shape[0],)
        expected = _jacobian_logdets(lambda v: layer.apply(params, v, method=layer.forward)[0],
                                     x)
        np.testing.assert_allclose(logdet, expected, rtol=1e-9, atol=1e-9)
        if name != "squeeze":  # a permutation; every other layer changes volume here
            assert np.all(np.abs(expected) > 1e-2), expected


@pytest.mark.parametrize("name", list(LAYERS))
def test_each_layer_inverts_to_1e5_in_float32(name):
    make, shape = LAYERS[name]
    layer = make()
    if isinstance(layer, fl.AffineCoupling):
        layer = layer.clone(dtype=jnp.float32)
    x = _input(shape, jnp.float32)
    params = _perturbed(layer.init(KEY, x, method=layer.forward), jax.random.PRNGKey(1),
                        jnp.float32)
    y, _ = layer.apply(params, x, method=layer.forward)
    if name != "squeeze":  # a reshuffle: y has another shape
        assert not np.allclose(y, x)
    np.testing.assert_allclose(layer.apply(params, y, method=layer.inverse), x, atol=1e-5)


def test_checkerboard_coupling_keeps_one_colour_and_channel_coupling_one_half():
    x = _input((2, 4, 4, 2), jnp.float32)
    for parity in (0, 1):
        board = fl.AffineCoupling(2, "checkerboard", parity, 8, 1)
        y, _ = board.apply(_perturbed(board.init(KEY, x, method=board.forward), KEY,
                                      jnp.float32), x, method=board.forward)
        kept = np.asarray(fl.checkerboard(4, 4, parity))[0, :, :, 0] == 1  # [Y, X]
        np.testing.assert_array_equal(y[:, kept], x[:, kept])
        assert not np.allclose(y[:, ~kept], x[:, ~kept])
        channel = fl.AffineCoupling(2, "channel", parity, 8, 1)
        y, _ = channel.apply(_perturbed(channel.init(KEY, x, method=channel.forward), KEY,
                                        jnp.float32), x, method=channel.forward)
        np.testing.assert_array_equal(y[..., parity], x[..., parity])
        assert not np.allclose(y[..., 1 - parity], x[..., 1 - parity])


def _small_flow(invertible_conv, dtype=jnp.float32):
    return RealNVP(FlowConfig(data_shape=(8, 8, 1), num_scales=2, couplings_per_scale=1,
                              final_couplings=2, hidden_channels=4, num_res_blocks=1,
                              invertible_conv=invertible_conv, dtype=dtype))


@pytest.mark.slow  # 15 s each; every layer kind is checked alone in the fast tier
@pytest.mark.parametrize("invertible_conv", [False, True])
def test_whole_flow_logdet_log_prob_and_inverse(invertible_conv):
    """logdet == log|det J| of x -> (all z); log_prob == sum log N(z) + that, with scipy;
    the inverse of (all z) is x."""
    flow = _small_flow(invertible_conv, jnp.float64)
    with jax.enable_x64(True):
        x = _input((2, 8, 8, 1), jnp.float64)
        params = _perturbed(flow.init(KEY, x), jax.random.PRNGKey(1), jnp.float64)
        zs, logdet = jax.jit(flow.apply)(params, x)
        assert [z.shape[1:] for z in zs] == flow.config.latent_shapes()
        assert sum(math.prod(z.shape[1:]) for z in zs) == 64

        def all_z(v):  # [1, 8, 8, 1] -> [1, 64]
            return jnp.concatenate([z.reshape(1, -1) for z in flow.apply(params, v)[0]], -1)

        expected_logdet = _jacobian_logdets(all_z, x)
        np.testing.assert_allclose(logdet, expected_logdet, rtol=1e-9)
        flat_z = np.concatenate([np.asarray(z).reshape(2, -1) for z in zs], -1)  # [2, 64]
        expected = stats.norm.logpdf(flat_z).sum(-1) + expected_logdet
        log_prob = jax.jit(lambda p, v: flow.apply(p, v, method=RealNVP.log_prob))
        np.testing.assert_allclose(log_prob(params, x), expected,
                                   rtol=1e-9)
        # The whole flow inverts exactly too (float64: with these random scales the map's
        # condition number is ~1e7, so float32 round trips of the whole flow lose ~1e-3;
        # each layer alone inverts to 1e-5 in float32, test above).
        inverse = jax.jit(lambda p, z: flow.apply(p, z, method=RealNVP.inverse))
        np.testing.assert_allclose(inverse(params, zs), x,
                                   atol=1e-10)


def test_bits_per_dim_formula_known_values():
    # A density of 1 on [0, 1)^D is the uniform distribution over 256 levels: 8 bits.
    np.testing.assert_allclose(flow_lib.bits_per_dim(jnp.zeros(3), 784, 256), 8.0, rtol=1e-6)
    # Each dimension twice as likely as uniform: one bit less.
    np.testing.assert_allclose(flow_lib.bits_per_dim(jnp.full(2, 10 * math.log(2)), 10, 256),
                               7.0, rtol=1e-6)
    np.testing.assert_allclose(flow_lib.bits_per_dim(jnp.zeros(1), 5, 2), 1.0, rtol=1e-6)


def test_fresh_flow_is_the_logit_map_and_its_bits_per_dim_is_known():
    """At init the couplings and ActNorms are the identity and the squeezes permute, so
    log p(x_cont) = sum_i log N(logit(p_i)) + log((1 - 2 alpha) / (p_i (1 - p_i)))."""
    flow = _small_flow(invertible_conv=False)
    pixels = jnp.floor(jax.random.uniform(KEY, (3, 8, 8, 1)) * 256)  # {0 .. 255}
    params = jax.jit(flow.init)(KEY, pixels / 256)
    noise_key = jax.random.PRNGKey(5)
    x_cont = np.asarray(flow_lib.dequantize(pixels, noise_key, 256), np.float64)
    u = x_cont * 256 - np.asarray(pixels)
    assert np.all((u >= 0) & (u <= 1)) and u.std() > 0.2  # one uniform draw per pixel
    p = 0.05 + 0.9 * x_cont
    per_dim = stats.norm.logpdf(np.log(p / (1 - p))) + np.log(0.9 / (p * (1 - p)))
    expected_bits = (-per_dim.reshape(3, -1).sum(-1) + 64 * math.log(256)) / (64 * math.log(2))
    bits = jax.jit(lambda p: flow.apply(p, pixels, noise_key, method=RealNVP.bits_per_dim))(
        params)
    np.testing.assert_allclose(bits, expected_bits, rtol=1e-5)
    # At temperature 0 every latent is 0: logit^-1(0) = 1/2 everywhere.
    sample = jax.jit(lambda p: flow.apply(p, KEY, 2, 0.0, method=RealNVP.sample))
    np.testing.assert_allclose(sample(params), 0.5, atol=1e-6)


def test_samples_are_images_in_the_unit_interval_and_temperature_scales_the_latents():
    flow = _small_flow(invertible_conv=True)
    params = _perturbed(jax.jit(flow.init)(KEY, jnp.full((1, 8, 8, 1), 0.5)), KEY, jnp.float32)
    sample = jax.jit(lambda p, t: flow.apply(p, KEY, 5, t, method=RealNVP.sample))
    hot, cold = sample(params, 1.0), sample(params, 0.5)
    assert hot.shape == cold.shape == (5, 8, 8, 1) and hot.dtype == jnp.float32
    assert float(hot.min()) >= 0 and float(hot.max()) <= 1
    assert float(jnp.std(cold)) < float(jnp.std(hot))  # the same latents, halved


def test_presets_are_registered_and_the_family_draws_samples():
    for name in FLOW_PRESETS:
        assert registry.get(name).module is RealNVP
    config = config_lib.base_config()
    config.family, config.model.name = "flow", "flow_tiny"
    family = FlowFamily(config_lib.validate(config))
    flow = registry.build("flow_tiny")
    params = jax.jit(lambda k: family.init_params(flow, {"params": k}))(KEY)
    images = family.sample_images(flow, params, KEY, 3)
    assert images.shape == (3, 28, 28, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("field,value,match", [
    ("data_shape", (28, 28), r"data_shape must be \(Y, X, C\)"),
    ("data_shape", (28, 28, 1), "divisible by 8"),  # with num_scales=3: 28 / 8 is not whole
    ("num_scales", 0, "num_scales must be a positive int"),
    ("couplings_per_scale", 0, "couplings_per_scale"),
    ("final_couplings", -1, "final_couplings"),
    ("hidden_channels", 0, "hidden_channels"),
    ("num_res_blocks", -1, "num_res_blocks must be an int >= 0"),
    ("num_levels", 1, "num_levels must be an int >= 2"),
    ("alpha", 0.5, r"alpha must be in \(0, 0.5\)"),
    ("invertible_conv", 1, "invertible_conv must be a bool"),
    ("dtype", jnp.float16, "dtype must be float32, bfloat16 or float64"),
])
def test_config_errors_name_the_field(field, value, match):
    extra = {"num_scales": 3} if match == "divisible by 8" else {}
    with pytest.raises(ValueError, match=match):
        FlowConfig(**{field: value, **extra})


def test_layer_errors_name_the_argument():
    with pytest.raises(ValueError, match="needs an even number of channels"):
        fl.AffineCoupling(3, "channel", 0, 4, 1).init(KEY, jnp.zeros((1, 2, 2, 3)),
                                                      method="forward")
    with pytest.raises(ValueError, match="mask must be"):
        fl.AffineCoupling(2, "diagonal", 0, 4, 1).init(KEY, jnp.zeros((1, 2, 2, 2)),
                                                       method="forward")
    with pytest.raises(ValueError, match=r"x must be \[B, 8, 8, 1\]"):
        _small_flow(False).init(KEY, jnp.zeros((1, 4, 4, 1)))


@pytest.mark.slow
@needs_fashion_mnist
def test_tiny_flow_on_fashion_mnist_learns_and_draws_each_temperature(tmp_path, shared_data_dir):
    """Also test_configs.py's run of the flow config's tiny variant (its checks included)."""
    config = tiny_config(flow_fashion_mnist, **{
        "train.num_train_steps": 40, "train.eval_every": 20, "train.log_every": 20,
        "train.checkpoint_every": 40, "optim.learning_rate": 3e-3})
    prepare(config, shared_data_dir)
    result = train_and_evaluate(config, str(tmp_path))
    check_run(config, tmp_path, result)
    with open(tmp_path / "metrics.jsonl") as f:
        evals = [r for r in map(json.loads, f) if r["split"] == "eval"]
    first, last = evals[0]["bits_per_dim"], evals[-1]["bits_per_dim"]
    assert np.isfinite(last) and last < first - 0.1, (first, last)
    assert last < 8.0  # better than uniform over the 256 grey levels
    for t in config.eval.temperatures:
        path = tmp_path / "images" / f"flow_samples_t{float(t)}_step40.png"
        assert path.stat().st_size > 500, path


def test_bad_family_config_is_refused(tmp_path):
    config = ml_collections.ConfigDict(flow_fashion_mnist.get_config("tiny").to_dict(),
                                       type_safe=False)
    config.model = ml_collections.ConfigDict({"name": "vae_tiny"})
    with pytest.raises(ValueError, match="'model.name'.*'flow' trains RealNVP"):
        train_and_evaluate(config, str(tmp_path))
