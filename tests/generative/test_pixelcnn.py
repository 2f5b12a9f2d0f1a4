"""The gated PixelCNN: causality through gradients, exact bits/dim, a sampler that draws from
the model, clear config errors, and the 'pixelcnn' family end to end."""

import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from debian_data import needs_fashion_mnist, prepare
from run_checks import check_run, tiny_config

from zoo import registry
from zoo.generative import PixelCNN, PixelCNNConfig
from zoo.generative.pixelcnn import bits_per_dim
from zoo.train import config as config_lib
from zoo.train.families import PixelCNNFamily
from zoo.train.loop import train_and_evaluate
from zoo.train.tensorboard import read_events

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import pixelcnn_fashion_mnist  # noqa: E402

KEY = jax.random.PRNGKey(0)


def _model(shape=(5, 6, 1), **overrides):
    config = dict(channels=16, num_layers=3, kernel_size=3, first_kernel_size=3)
    return PixelCNN(PixelCNNConfig(data_shape=shape, **{**config, **overrides}))


def _images(shape, batch=1, seed=1):
    return jax.random.randint(jax.random.PRNGKey(seed), (batch, *shape), 0, 256)  # int32


def _random_params(model, seed=2):
    """Initial params plus noise on every leaf (biases too), so no weight is exactly zero."""
    params = model.init(KEY, _images(model.config.data_shape))["params"]
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(tree, [p + 0.3 * jax.random.normal(k, p.shape)
                                     for p, k in zip(leaves, keys, strict=True)])


def _constant_head(params, log_probs):
    """Params whose logits are ``log_probs`` [L] at every pixel, whatever the input."""
    head = {"kernel": jnp.zeros_like(params["head_logits"]["kernel"]),
            "bias": jnp.asarray(log_probs, jnp.float32)}
    return {**params, "head_logits": head}


def _pixel_gradient(model, params, image, y, x):
    """d(sum of pixel (y, x)'s logits) / d(image): [Y, X] (C = 1)."""
    def pixel_logits(img):
        return model.apply({"params": params}, img)[0, y, x].sum()

    return np.asarray(jax.grad(pixel_logits)(image.astype(jnp.float32))[0, ..., 0])


@pytest.mark.parametrize("y,x", [(0, 0), (0, 4), (3, 0), (3, 3), (4, 5), (2, 5)])
def test_no_pixel_depends_on_itself_or_later_pixels_but_on_left_above_and_up_right(y, x):
    model = _model((5, 6, 1))
    params = _random_params(model)
    grad = _pixel_gradient(model, params, _images((5, 6, 1)), y, x)
    order = np.arange(30).reshape(5, 6)  # raster index of each pixel
    assert np.all(grad[order >= order[y, x]] == 0.0), grad  # exactly: no path at all
    if x > 0:
        assert grad[y, x - 1] != 0.0  # directly left
    if y > 0:
        assert grad[y - 1, x] != 0.0  # directly above
        if x + 1 < 6:
            assert grad[y - 1, x + 1] != 0.0  # up-right: the original PixelCNN's blind spot
    if (y, x) == (0, 0):
        assert not grad.any()


def test_with_enough_layers_each_pixel_sees_exactly_the_pixels_before_it():
    """The whole Jacobian pattern of a 4 x 5 image: strictly lower triangular in raster order.
    Four 3-wide layers reach 5 rows up and 4 columns either way: every earlier pixel."""
    model = _model((4, 5, 1), num_layers=4)
    params = _random_params(model)
    image = _images((4, 5, 1)).astype(jnp.float32)
    per_pixel = jax.jacrev(lambda img: model.apply({"params": params}, img)[0, ..., 0, :].sum(-1))
    jacobian = np.asarray(per_pixel(image))[..., 0, :, :, 0].reshape(20, 20)  # [out, in]
    np.testing.assert_array_equal(jacobian != 0.0, np.tril(np.ones((20, 20), bool), k=-1))


def test_logits_have_the_documented_shape_and_ints_equal_floats():
    for dtype in (jnp.float32, jnp.bfloat16):
        model = _model((5, 6, 1), dtype=dtype)
        x = _images((5, 6, 1), batch=3)
        params = model.init(KEY, x)
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
        logits = model.apply(params, x)
        assert logits.shape == (3, 5, 6, 1, 256) and logits.dtype == jnp.float32
        np.testing.assert_array_equal(logits, model.apply(params, x.astype(jnp.float32)))
        bits = model.apply(params, x, method=PixelCNN.nll_bits_per_dim)
        assert bits.shape == (3,) and bits.dtype == jnp.float32


def test_all_zero_logits_give_exactly_eight_bits_per_dim():
    model = _model((5, 6, 1))
    params = _constant_head(_random_params(model), np.zeros(256))
    x = _images((5, 6, 1), batch=4)
    np.testing.assert_allclose(model.apply({"params": params}, x,
                                           method=PixelCNN.nll_bits_per_dim), 8.0, rtol=1e-6)


def test_bits_per_dim_is_the_mean_negative_log2_probability_of_each_value():
    logits = np.random.default_rng(0).normal(size=(2, 3, 2, 1, 256)) * 3.0  # [B, Y, X, C, L]
    x = np.random.default_rng(1).integers(0, 256, size=(2, 3, 2, 1))  # [B, Y, X, C]
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    picked = np.take_along_axis(probs, x[..., None], axis=-1)[..., 0]  # [B, Y, X, C]
    expected = -np.log2(picked).reshape(2, -1).mean(-1)  # [B]
    np.testing.assert_allclose(bits_per_dim(jnp.asarray(logits), jnp.asarray(x, jnp.float32)),
                               expected, rtol=1e-5)


def _sampler(model, num, temperature=1.0):
    return jax.jit(lambda p, k: model.apply({"params": p}, k, num, temperature,
                                            method=PixelCNN.sample))


def test_sampler_is_deterministic_for_a_key_and_draws_grey_levels():
    model = _model((4, 5, 1), num_layers=2)
    params = _random_params(model)
    sample = _sampler(model, 3)
    a, b, c = (np.asarray(sample(params, jax.random.PRNGKey(s))) for s in (5, 5, 6))
    assert a.shape == (3, 4, 5, 1) and a.dtype == np.int32
    assert a.min() >= 0 and a.max() <= 255
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_samples_follow_the_model_distribution(temperature):
    """A head whose logits ignore the input: every pixel, (0, 0) first, is drawn from
    softmax(bias / temperature) with p = 0.5, 0.3, 0.2 on the levels 3, 100, 255."""
    model = _model((3, 3, 1), num_layers=2)
    log_probs = np.full(256, -40.0)
    levels, p = np.array([3, 100, 255]), np.array([0.5, 0.3, 0.2])
    log_probs[levels] = np.log(p)
    params = _constant_head(_random_params(model), log_probs)
    images = np.asarray(_sampler(model, 200, temperature)(params, KEY))  # [200, 3, 3, 1]
    assert set(np.unique(images)) <= set(levels)
    want = p ** (1 / temperature) / np.sum(p ** (1 / temperature))
    for pixels in (images[:, 0, 0, 0], images.reshape(-1)):
        freq = np.array([np.mean(pixels == v) for v in levels])
        np.testing.assert_allclose(freq, want, atol=4 * np.sqrt(0.25 / len(pixels)))


def test_sampler_draws_each_pixel_given_the_pixels_drawn_before_it():
    """Near zero temperature each draw is the mode of the model's conditional, given the
    finished image's earlier pixels: so the sample is a fixed point of the argmax."""
    model = _model((4, 5, 1), num_layers=3)
    params = _random_params(model)
    images = _sampler(model, 4, 1e-4)(params, KEY)  # [4, Y, X, C]
    modes = jnp.argmax(model.apply({"params": params}, images), axis=-1)  # [4, Y, X, C]
    np.testing.assert_array_equal(images, modes)


@pytest.mark.parametrize("overrides,field", [
    (dict(data_shape=(28, 28, 3)), "data_shape"),  # colour: C must be 1
    (dict(data_shape=(784,)), "data_shape"),
    (dict(data_shape=(28, 0, 1)), "data_shape"),
    (dict(channels=0), "channels"),
    (dict(num_layers=0), "num_layers"),
    (dict(kernel_size=4), "kernel_size"),
    (dict(kernel_size=1), "kernel_size"),
    (dict(first_kernel_size=2), "first_kernel_size"),
    (dict(num_levels=1), "num_levels"),
    (dict(dtype=jnp.int32), "dtype"),
])
def test_bad_configs_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        PixelCNNConfig(**overrides)


def test_bad_inputs_raise():
    model = _model((4, 5, 1), num_layers=1)
    params = model.init(KEY, _images((4, 5, 1)))
    with pytest.raises(ValueError, match="data_shape"):
        model.apply(params, jnp.zeros((2, 5, 4, 1)))
    with pytest.raises(ValueError, match="temperature"):
        model.apply(params, KEY, 2, 0.0, method=PixelCNN.sample)


def _family(**model):
    config = config_lib.base_config()
    config.family, config.model.name = "pixelcnn", "pixelcnn_tiny"
    config.model.update(model)
    return PixelCNNFamily(config_lib.validate(config))


def test_family_loss_eval_sums_and_sample_images():
    model = registry.build("pixelcnn_tiny", data_shape=(4, 5, 1))
    family = _family()
    params = _random_params(model)
    x = _images((4, 5, 1), batch=16).astype(jnp.float32)
    bits = model.apply({"params": params}, x, method=PixelCNN.nll_bits_per_dim)  # [16]
    loss, metrics = family.phases(model)(params, {"x": x}, KEY, False)
    assert float(loss) == pytest.approx(float(bits.mean()) * math.log(2), rel=1e-6)
    assert float(metrics["bits_per_dim"]) == pytest.approx(float(bits.mean()), rel=1e-6)
    mask = np.arange(16) < 12  # the last four rows are padding
    sums = jax.jit(family.eval_step(model))(params, {"x": x, "mask": mask}, KEY)
    assert float(sums["count"]) == 12.0
    assert float(sums["bits"]) == pytest.approx(float(bits[:12].sum()), rel=1e-5)
    images = family.sample_images(model, params, KEY, 3)
    assert images.shape == (3, 4, 5, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images * 255, _sampler(model, 3)(params, KEY))


def test_family_refuses_other_than_256_levels(tmp_path):
    with pytest.raises(ValueError, match="'model.num_levels'.*256"):
        _family(num_levels=16).data(str(tmp_path))


@pytest.mark.slow
@needs_fashion_mnist
def test_pixelcnn_on_fashion_mnist_learns_and_draws_samples(tmp_path, shared_data_dir):
    """Also test_configs.py's run of the config's tiny variant (its checks included), on one
    device: the sampler's 784 steps replicated over 8 fake devices would take minutes."""
    config = tiny_config(pixelcnn_fashion_mnist, **{
        "train.num_train_steps": 40, "train.eval_every": 20, "train.log_every": 20,
        "train.checkpoint_every": 40, "optim.warmup_steps": 5, "optim.learning_rate": 1e-2,
        "mesh.num_devices": 1})
    prepare(config, shared_data_dir)
    result = train_and_evaluate(config, str(tmp_path))
    check_run(config, tmp_path, result)
    with open(tmp_path / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    first, last = [r for r in records if r["split"] == "eval"]
    # Uniform over 256 levels is 8 bits; the marginal of the grey levels alone is far less.
    assert last["bits_per_dim"] < first["bits_per_dim"] < 6.0, (first, last)
    assert result["sample_seconds_per_image"] > 0
    train = [r for r in records if r["split"] == "train"]
    assert all(np.isfinite(r["loss"]) and r["examples_per_sec"] > 0 for r in train)
    assert train[-1]["bits_per_dim"] < train[0]["bits_per_dim"]
    for step in (20, 40):
        assert (tmp_path / "images" / f"pixelcnn_samples_step{step}.png").stat().st_size > 200
    tags = {e.summary.value[0].tag for e in read_events(str(next((tmp_path / "tb").iterdir())))
            if e.HasField("summary")}
    assert "images/pixelcnn_samples" in tags, tags
