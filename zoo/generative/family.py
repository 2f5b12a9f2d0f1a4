"""The 'vae' and 'gan' training families: how ``train.py`` feeds, steps and evaluates them.

Glossary: B batch, N pictured examples, Z latent size, S interpolation steps;
``...`` is one example: (H, W, C) for images, (2,) for points in the plane.

Batches are ``{'x': float32 [B, ...]}`` from ``zoo.train.data.array_data``:
grey levels in [0, 1] for the VAE, scaled to [-1, 1] for the GAN's tanh
output; points of the ring of Gaussians pass through. The data decides the
model's ``data_shape``.

Randomness: the loop's key ``PRNGKey(config.seed)`` splits into the parameter
key and the train key; every step folds its step number into the train key
(inside ``zoo.generative.train``), so a resumed run draws the noise an
uninterrupted run would. Evaluation uses fixed keys: every evaluation sees the
same noise and the same binarised test images, whatever the seed.

VAE with a Bernoulli likelihood: each train step binarises its batch afresh
(x ~ Bernoulli(grey level), "dynamic binarisation"); evaluation binarises each
test batch with a fixed key. Evaluation reports the test-set negative ELBO in
nats per image (one posterior sample per image, so an estimate of an upper
bound on -log p(x)) with its KL and reconstruction terms, and writes grids of
prior samples, reconstructions and latent interpolations to
``<workdir>/images/vae_{samples,reconstructions,interpolations}_step{N}.png``.

GAN: one discriminator step, then one generator step per batch. There is no
cheap, faithful quantitative measure of image quality on a CPU, so
evaluation reports what the discriminator makes of held-out data:
``d_real`` and ``d_fake``, its mean probability "real" on held-out real
examples and on fresh fakes (0.5 each when it cannot tell them apart; near 1
and 0 when it easily can), and writes the samples of one fixed noise batch,
``<workdir>/images/gan_samples_step{N}.png``. On the ring of Gaussians it also
reports mode coverage: ``modes_covered`` of the 8 and ``high_quality``, the
fraction of samples within 3 standard deviations of a mode (Metz et al. 2017).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from zoo import registry
from zoo.generative import toy
from zoo.generative.gan import GAN
from zoo.generative.grids import image_grid, save_png
from zoo.generative.train import GANState, VAEState, gan_samples, gan_train_step, vae_train_step
from zoo.generative.vae import VAE
from zoo.train import config as config_lib
from zoo.train import optim, plots
from zoo.train.families import Family

IMAGES = "images"  # the workdir subfolder the pictures go to
NUM_PICTURED = 64  # samples in a grid (8 x 8)
NUM_RECONSTRUCTED = 32  # test images shown beside their reconstructions
NUM_INTERPOLATIONS, INTERPOLATION_STEPS = 8, 10
NUM_COVERAGE = 2000  # samples whose mode coverage is counted (ring of Gaussians)
# Evaluation draws: fixed, independent of config.seed, so runs compare on the same draws.
_EVAL_SEED = 1
_EVAL_BATCHES, _PICTURED_NOISE, _COVERAGE_NOISE, _PICTURED_DATA = range(4)  # key streams


def _eval_key(stream: int, index: int = 0) -> jax.Array:
    """A fixed key for one evaluation draw (a key is not made at import: that would start JAX)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(_EVAL_SEED), stream), index)


def _train_key(config) -> jax.Array:
    """The train-step key: the second half of the loop's ``PRNGKey(config.seed)``."""
    return jax.random.split(jax.random.PRNGKey(config.seed))[1]


def _init_key(rng: jax.Array) -> jax.Array:
    """The parameter key: the first half of the loop's key."""
    return jax.random.split(rng)[0]


def _check_model(config, module, family: str) -> None:
    """Raises unless ``config.model.name`` is a preset of ``module``."""
    entry = registry.get(config.model.name)
    if entry.module is not module:
        allowed = [n for n in registry.names() if registry.get(n).module is module]
        raise ValueError(f"config key 'model.name' is {config.model.name!r}, a "
                         f"{entry.module.__name__}; family {family!r} trains {module.__name__} "
                         f"presets: {allowed}")


def _data_shape_fields(module_cls, vocab: dict) -> dict:
    del module_cls
    return {"data_shape": tuple(vocab["data_shape"])} if "data_shape" in vocab else {}


def _is_image(model) -> bool:
    return len(model.config.data_shape) == 3


def _picture_path(workdir: str, name: str, step: int) -> str:
    folder = os.path.join(workdir, IMAGES)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{name}_step{step}.png")


def _save_grid(path: str, images, columns: int, value_range) -> None:
    save_png(path, image_grid(np.asarray(images), columns, value_range=value_range))


def _first_eval_examples(data, count: int) -> np.ndarray:
    """Up to ``count`` real rows of the evaluation data, [n, ...]."""
    rows = []
    for batch in data.eval_batches():
        rows.append(batch["x"][batch["mask"]])
        if sum(len(r) for r in rows) >= count:
            break
    return np.concatenate(rows)[:count]


def _eval_sums(data, step_fn) -> tuple[dict, float]:
    """(metric sums, example count) of ``step_fn(i, batch)`` over the evaluation batches;
    each step returns sums over its real rows and their ``count``."""
    sums = None
    for i, batch in enumerate(data.eval_batches()):
        m = step_fn(i, batch)
        sums = m if sums is None else jax.tree.map(jnp.add, sums, m)
    sums = jax.device_get(sums)
    return sums, max(float(sums["count"]), 1.0)


def _mean(sums: dict, key: str, window: int) -> float:
    return float(sums[key]) / window


def _rate(sums: dict, seconds: float) -> float:
    return float(sums["examples"]) / max(seconds, 1e-9)


# --- VAE --------------------------------------------------------------------------------------

def _binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """x ~ Bernoulli(grey level): a binary image [B, ...] from grey levels in [0, 1]."""
    return jax.random.bernoulli(key, x).astype(jnp.float32)


def _vae_data(config, workdir: str):
    from zoo.train import data as data_lib  # noqa: PLC0415 -- data imports heavy deps

    _check_model(config, VAE, "vae")
    likelihood = config_lib.model_config(config).likelihood
    if likelihood == "bernoulli" and config.data.dataset == toy.DATASET:
        raise ValueError(f"config key 'model.likelihood' is 'bernoulli', which needs data in "
                         f"[0, 1]; data.dataset {toy.DATASET!r} gives points in the plane: set "
                         "model.likelihood='gaussian'")
    return data_lib.array_data(config, workdir, value_range=(0.0, 1.0))


def _vae_init_state(model: VAE, config, rng: jax.Array) -> VAEState:
    key = _init_key(rng)
    x = jnp.zeros((2, *model.config.data_shape), jnp.float32)  # [2, ...] shapes only
    tx, _ = optim.make_optimizer(config.optim)
    return VAEState.create(model, model.init(key, x, key), tx)


def _vae_make_train_step(model: VAE, config):
    _, schedule = optim.make_optimizer(config.optim)
    model_key, binarize_key = jax.random.split(_train_key(config))
    binarize = model.config.likelihood == "bernoulli"

    def train_step(state: VAEState, batch: dict):
        x = batch["x"]  # [B, ...]
        if binarize:  # a fresh binary image every step
            x = _binarize(jax.random.fold_in(binarize_key, state.step), x)
        learning_rate = jnp.asarray(schedule(state.step), jnp.float32)
        state, metrics = vae_train_step(state, x, model_key)
        return state, {**metrics, "learning_rate": learning_rate,
                       "examples": jnp.asarray(x.shape[0], jnp.float32)}

    return train_step


def _vae_summary(sums: dict, last: dict, window: int, seconds: float) -> dict:
    return {
        "loss": _mean(sums, "loss", window),
        "negative_elbo": -_mean(sums, "elbo", window),
        "kl": _mean(sums, "kl", window),
        "grad_norm": _mean(sums, "grad_norm", window),
        "learning_rate": float(last["learning_rate"]),
        "examples_per_sec": _rate(sums, seconds),
    }


def _vae_make_evaluate(model: VAE, config):
    binarize = model.config.likelihood == "bernoulli"

    @jax.jit
    def prepare(x: jax.Array, key: jax.Array) -> jax.Array:  # [B, ...] as the model sees it
        return _binarize(key, x) if binarize else x

    @jax.jit
    def eval_step(params, x: jax.Array, mask: jax.Array, key: jax.Array) -> dict:
        out = model.apply(params, x, key)
        weights = mask.astype(jnp.float32)  # [B]
        return {"elbo": jnp.sum(out.elbo * weights), "kl": jnp.sum(out.kl * weights),
                "log_likelihood": jnp.sum(out.log_likelihood * weights),
                "count": jnp.sum(weights)}

    def run(state: VAEState, data, *, workdir: str, step: int) -> dict:
        def one_batch(i, batch):
            data_key, z_key = jax.random.split(_eval_key(_EVAL_BATCHES, i))
            return eval_step(state.params, prepare(batch["x"], data_key), batch["mask"], z_key)

        sums, count = _eval_sums(data, one_batch)
        result = {"negative_elbo": -float(sums["elbo"]) / count,
                  "kl": float(sums["kl"]) / count,
                  "reconstruction_nll": -float(sums["log_likelihood"]) / count}
        first = _first_eval_examples(data, NUM_RECONSTRUCTED)  # [n, ...]
        first = prepare(first, _eval_key(_PICTURED_DATA))
        _vae_pictures(model, state.params, first, data, workdir, step)
        return result

    return run


def _vae_pictures(model: VAE, params, x: jax.Array, data, workdir: str, step: int) -> None:
    """Prior samples; test examples x [n, ...] beside their reconstructions; interpolations."""
    samples = model.apply(params, _eval_key(_PICTURED_NOISE), NUM_PICTURED,
                          method=VAE.sample)  # [64, ...]
    if not _is_image(model):
        if jax.process_index() == 0:
            plots.plot_points(_picture_path(workdir, "vae_samples", step), samples,
                              reference=x, title=f"VAE samples, step {step}")
        return
    recon = model.apply(params, x, method=VAE.reconstruct)  # [n, H, W, C]
    pairs = jnp.stack([x, recon], axis=1).reshape(-1, *x.shape[1:])  # [2n, H, W, C]
    grids = {"vae_samples": (samples, 8), "vae_reconstructions": (pairs, 8)}
    k = min(NUM_INTERPOLATIONS, len(x) // 2)
    if k:
        path = model.apply(params, x[:k], x[k:2 * k], INTERPOLATION_STEPS,
                           method=VAE.interpolate)  # [k, S, H, W, C]
        grids["vae_interpolations"] = (path.reshape(-1, *x.shape[1:]), INTERPOLATION_STEPS)
    if jax.process_index() == 0:
        for name, (images, columns) in grids.items():
            _save_grid(_picture_path(workdir, name, step), images, columns,
                       data.extras["value_range"])


# --- GAN --------------------------------------------------------------------------------------

def _gan_data(config, workdir: str):
    from zoo.train import data as data_lib  # noqa: PLC0415 -- data imports heavy deps

    _check_model(config, GAN, "gan")
    return data_lib.array_data(config, workdir, value_range=(-1.0, 1.0))


def _gan_init_state(model: GAN, config, rng: jax.Array) -> GANState:
    key = _init_key(rng)
    z = jnp.zeros((2, model.config.latent_dim), jnp.float32)  # [2, Z] shapes only
    x = jnp.zeros((2, *model.config.data_shape), jnp.float32)  # [2, ...]
    tx, _ = optim.make_optimizer(config.optim)  # one recipe, a state for each network
    return GANState.create(model, model.init(key, z, x), g_tx=tx, d_tx=tx)


def _gan_make_train_step(model: GAN, config):
    _, schedule = optim.make_optimizer(config.optim)
    key = _train_key(config)

    def train_step(state: GANState, batch: dict):
        learning_rate = jnp.asarray(schedule(state.step), jnp.float32)
        state, metrics = gan_train_step(state, batch["x"], key)
        return state, {**metrics, "learning_rate": learning_rate,
                       "examples": jnp.asarray(batch["x"].shape[0], jnp.float32)}

    return train_step


def _gan_summary(sums: dict, last: dict, window: int, seconds: float) -> dict:
    keys = ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm")
    return {**{k: _mean(sums, k, window) for k in keys},
            "learning_rate": float(last["learning_rate"]),
            "examples_per_sec": _rate(sums, seconds)}


def _gan_make_evaluate(model: GAN, config):
    latent = model.config.latent_dim
    noise = jax.random.normal(_eval_key(_PICTURED_NOISE), (NUM_PICTURED, latent))  # [64, Z]

    @jax.jit
    def eval_step(state: GANState, x: jax.Array, mask: jax.Array, key: jax.Array) -> dict:
        z = jax.random.normal(key, (x.shape[0], latent))  # [B, Z]
        fake = gan_samples(state, z)  # [B, ...]
        variables = {"params": state.params}
        real_p = jax.nn.sigmoid(model.apply(variables, x, method=GAN.discriminate))  # [B]
        fake_p = jax.nn.sigmoid(model.apply(variables, fake, method=GAN.discriminate))  # [B]
        weights = mask.astype(jnp.float32)  # [B]
        return {"real": jnp.sum(real_p * weights), "fake": jnp.sum(fake_p * weights),
                "count": jnp.sum(weights)}

    def run(state: GANState, data, *, workdir: str, step: int) -> dict:
        sums, count = _eval_sums(data, lambda i, batch: eval_step(
            state, batch["x"], batch["mask"], _eval_key(_EVAL_BATCHES, i)))
        result = {"d_real": float(sums["real"]) / count, "d_fake": float(sums["fake"]) / count}
        if _is_image(model):
            samples = gan_samples(state, noise)  # [64, H, W, C]
            if jax.process_index() == 0:
                _save_grid(_picture_path(workdir, "gan_samples", step), samples, 8,
                           data.extras["value_range"])
            return result
        samples = gan_samples(state, _coverage_noise(latent))  # [NUM_COVERAGE, ...]
        if config.data.dataset == toy.DATASET:
            result.update(_coverage(samples))
        if jax.process_index() == 0 and samples.shape[1:] == (2,):
            plots.plot_points(_picture_path(workdir, "gan_samples", step), samples,
                              reference=_first_eval_examples(data, NUM_COVERAGE),
                              centers=toy.mode_centers(), title=f"GAN samples, step {step}")
        return result

    return run


def _coverage_noise(latent: int) -> jax.Array:
    return jax.random.normal(_eval_key(_COVERAGE_NOISE), (NUM_COVERAGE, latent))  # [N, Z]


def _coverage(samples: jax.Array) -> dict:
    """How samples [N, 2] spread over the ring's modes; a mode needs a tenth of its fair share."""
    centers = toy.mode_centers()  # [M, 2]
    cover = toy.mode_coverage(samples, centers, threshold=3 * toy.DEFAULT_STD,
                              min_count=len(samples) // (10 * len(centers)))
    return {"modes_covered": cover.modes_covered, "high_quality": cover.high_quality}


def vae_family() -> Family:
    return Family(_vae_data, _data_shape_fields, _vae_init_state, _vae_make_train_step,
                  _vae_summary, _vae_make_evaluate)


def gan_family() -> Family:
    return Family(_gan_data, _data_shape_fields, _gan_init_state, _gan_make_train_step,
                  _gan_summary, _gan_make_evaluate)
