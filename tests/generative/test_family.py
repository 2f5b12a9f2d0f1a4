"""train.py's 'vae' and 'gan' families end to end: learning, pictures, resume, clear errors."""

import json
import os
import sys

import jax
import ml_collections
import numpy as np
import pytest
from debian_data import needs_fashion_mnist, prepare
from run_checks import check_run, final_state, tiny_config

from zoo.data.builders import fashion_mnist
from zoo.data.corpora import MissingSourceError
from zoo.train.loop import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import gan_toy, vae_fashion_mnist  # noqa: E402

UNIFORM_BERNOULLI_NATS = 784 * np.log(2)  # -log p(x) of a 28x28 binary image under p = 1/2


def _vae_on_points(**overrides):
    """The VAE config's tiny MLP on the generated ring (no Debian data): Gaussian pixels."""
    return tiny_config(vae_fashion_mnist, **{
        "data.dataset": "ring_of_gaussians", "data.fields": ("point",),
        "data.num_train": 512, "data.num_eval": 128, "model.likelihood": "gaussian", **overrides})


def _records(workdir, split):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == split]


def test_toy_gan_learns_the_ring_and_draws_it(tmp_path):
    """400 steps of batch 256: samples move onto the modes (seeded, so deterministic).

    This is also test_configs.py's run of gan_toy's tiny variant (its checks included),
    on one device (the sharded GAN step is gan_fashion_mnist's tiny run there)."""
    config = tiny_config(gan_toy, **{"data.batch_size": 256, "train.num_train_steps": 400,
                               "optim.learning_rate": 6e-3, "train.eval_every": 200,
                               "train.log_every": 200, "train.checkpoint_every": 400,
                               "mesh.num_devices": 1})
    result = train_and_evaluate(config, str(tmp_path))
    check_run(config, tmp_path, result)
    first, last = _records(tmp_path, "eval")
    assert last["high_quality"] > max(3 * first["high_quality"], 0.05), (first, last)
    assert result["modes_covered"] >= 2
    assert 0 <= result["d_fake"] < result["d_real"] <= 1
    for record in _records(tmp_path, "train"):
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "examples_per_sec"):
            assert np.isfinite(record[key]), key
    assert (tmp_path / "images" / "gan_samples_step400.png").stat().st_size > 1000
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_a_resumed_gan_reaches_the_same_parameters(tmp_path):
    """4 steps, then resumed to 8 == 8 straight: keys fold in the step, the data resumes.

    Both networks, both optimizer states and the step are compared.
    """
    steps = {"train.num_train_steps": 8, "train.checkpoint_every": 4, "train.eval_every": 8,
             "train.log_every": 4, "mesh.num_devices": 1}
    train_and_evaluate(tiny_config(gan_toy, **steps), str(tmp_path / "straight"))
    train_and_evaluate(tiny_config(gan_toy, **{**steps, "train.num_train_steps": 4}),
                       str(tmp_path / "resumed"))
    train_and_evaluate(tiny_config(gan_toy, **steps), str(tmp_path / "resumed"))
    step_a, state_a = final_state(tmp_path / "straight")
    step_b, state_b = final_state(tmp_path / "resumed")
    assert step_a == step_b == 8
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "resumed" / "images").is_dir()


@pytest.mark.slow
@needs_fashion_mnist
def test_vae_on_fashion_mnist_improves_its_elbo_and_draws_grids(tmp_path, shared_data_dir):
    """Also test_configs.py's run of the VAE config's tiny variant (its checks included), on
    every (8) device."""
    config = tiny_config(vae_fashion_mnist, **{
        "train.num_train_steps": 60, "train.eval_every": 30, "train.log_every": 30,
        "train.checkpoint_every": 60, "optim.warmup_steps": 5})
    prepare(config, shared_data_dir)  # Fashion-MNIST, prepared once for the whole run
    result = train_and_evaluate(config, str(tmp_path))
    check_run(config, tmp_path, result)
    first, last = _records(tmp_path, "eval")
    assert last["negative_elbo"] < first["negative_elbo"] - 5, (first, last)
    assert result["negative_elbo"] < UNIFORM_BERNOULLI_NATS - 20
    assert result["kl"] > 0
    np.testing.assert_allclose(result["negative_elbo"], result["reconstruction_nll"] + result["kl"],
                               rtol=1e-4)
    train = _records(tmp_path, "train")
    assert train[-1]["loss"] < train[0]["loss"]
    for name in ("samples", "reconstructions", "interpolations"):
        assert (tmp_path / "images" / f"vae_{name}_step60.png").stat().st_size > 1000, name


@pytest.mark.parametrize("module,key,value,match", [
    (vae_fashion_mnist, "model.name", "gan_mlp_toy", "'model.name'.*'vae' trains VAE"),
    (gan_toy, "model.name", "vae_tiny", "'model.name'.*'gan' trains GAN"),
    (vae_fashion_mnist, "model.likelihood", "poisson", "likelihood"),
    (gan_toy, "model.loss", "wasserstein", "loss"),
    (gan_toy, "data.dataset", "generated_tasks/dates", "'data.dataset'"),
    (gan_toy, "model.name", "gan_dcgan_tiny", "data_shape"),  # a conv GAN on 2-D points
])
def test_bad_config_values_raise_naming_the_field(tmp_path, module, key, value, match):
    config = ml_collections.ConfigDict(module.get_config("tiny").to_dict(), type_safe=False)
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=match):
        train_and_evaluate(config, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_bernoulli_vae_on_points_is_refused(tmp_path):
    config = _vae_on_points(**{"model.likelihood": "bernoulli"})
    with pytest.raises(ValueError, match="'model.likelihood'.*gaussian"):
        train_and_evaluate(config, str(tmp_path))


def test_missing_debian_package_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(MissingSourceError, match="dataset-fashion-mnist"):
        train_and_evaluate(vae_fashion_mnist.get_config("tiny"), str(tmp_path / "run"))
