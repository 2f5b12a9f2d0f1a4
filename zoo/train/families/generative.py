"""The 'vae' and 'gan' families: generative models on arrays (images, or points in the plane).

Glossary: B batch, Z latent size; ``...`` is one example: (Y, X, C) for images
(height, width, channels), (2,) for points in the plane.

Batches are ``{'x': float32 [B, ...], 'mask': bool [B]}`` from
``zoo.train.data.array_data``: grey levels in [0, 1] for the VAE, scaled to
[-1, 1] for the GAN's tanh output; points of the ring of Gaussians pass
through. The data decides the model's ``data_shape``.

Randomness: the train step's key (``fold_in(state.rng, step)``, see
``zoo/train/state.py``) draws the binarisation and the posterior sample (VAE)
or the noise of each phase (GAN), so a resumed run draws what an
uninterrupted run would. Evaluation uses fixed keys (``base.eval_key``):
every evaluation sees the same noise and the same binarised test images.

VAE with a Bernoulli likelihood: each train step binarises its batch afresh
(x ~ Bernoulli(grey level), "dynamic binarisation"); evaluation binarises each
test batch with a fixed key. Evaluation reports the test-set negative ELBO in
nats per image (one posterior sample per image, so an estimate of an upper
bound on -log p(x)) with its KL and reconstruction terms -- and, with
``eval.iwae_samples`` = k > 0, the tighter IWAE bound with k importance samples
(``iwae_nll``, Burda et al. 2016) -- and writes grids of
prior samples, reconstructions and latent interpolations to
``<workdir>/images/vae_{samples,reconstructions,interpolations}_step{N}.png``.

GAN: each step updates the discriminator, then the generator against the
updated discriminator (two phases, each with its own Adam state). There is no
cheap, faithful measure of image quality on a CPU, so evaluation reports what
the discriminator makes of held-out data: ``d_real`` and ``d_fake``, its mean
probability "real" on held-out examples and on fresh fakes (0.5 each when it
cannot tell them apart), and writes the samples of one fixed noise batch,
``<workdir>/images/gan_samples_step{N}.png``. On the ring of Gaussians it also
reports mode coverage: ``modes_covered`` of the 8 and ``high_quality``, the
fraction of samples within 3 standard deviations of a mode (Metz et al. 2017).
"""

from __future__ import annotations

import abc
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from zoo.data import ring
from zoo.generative.gan import GAN, LOSSES
from zoo.generative.grids import image_grid, save_png
from zoo.generative.vae import VAE, iwae_log_likelihood
from zoo.train import config as config_lib
from zoo.train import data as data_lib
from zoo.train import plots
from zoo.train.families.base import Family, eval_key
from zoo.train.state import Phase, TrainState

IMAGES = "images"  # the workdir subfolder the pictures go to
NUM_PICTURED = 64  # samples in a grid (8 x 8)
NUM_RECONSTRUCTED = 32  # test images shown beside their reconstructions
NUM_INTERPOLATIONS, INTERPOLATION_STEPS = 8, 10
NUM_COVERAGE = 2000  # samples whose mode coverage is counted (ring of Gaussians)
# Key streams of eval_key (stream 0 is the evaluation batches, see base.eval_sums).
_PICTURED_NOISE, _COVERAGE_NOISE, _PICTURED_DATA = 1, 2, 3


def is_image(model) -> bool:
    return len(model.config.data_shape) == 3


def picture_path(workdir: str, name: str, step: int) -> str:
    folder = os.path.join(workdir, IMAGES)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{name}_step{step}.png")


def save_grid(path: str, images, columns: int, value_range) -> str:
    save_png(path, image_grid(np.asarray(images), columns, value_range=value_range))
    return path


def send_pictures(log, step: int, paths: dict[str, str]) -> None:
    """The pictures written at this evaluation, to TensorBoard."""
    for name, path in paths.items():
        log.image_file(step, f"images/{name}", path)


def first_eval_examples(data, count: int) -> np.ndarray:
    """Up to ``count`` real rows of the evaluation data, [n, ...]."""
    rows = []
    for batch in data.eval_batches():
        rows.append(batch["x"][batch["mask"]])
        if sum(len(r) for r in rows) >= count:
            break
    return np.concatenate(rows)[:count]


def _binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """x ~ Bernoulli(grey level): a binary image [B, ...] from grey levels in [0, 1]."""
    return jax.random.bernoulli(key, x).astype(jnp.float32)


class ArrayFamily(Family):
    """What the VAE and the GAN share: array data and a model shaped by it."""

    value_range: tuple[float, float]

    def data(self, workdir: str) -> data_lib.Bundle:
        return data_lib.array_data(self.config, workdir, value_range=self.value_range)

    def model_fields(self, module, info: dict) -> dict:
        return {"data_shape": tuple(info["data_shape"])} if "data_shape" in info else {}

    @abc.abstractmethod
    def sample_images(self, model, params, key: jax.Array, num: int) -> np.ndarray:
        """``num`` draws of the trained model as grey levels in [0, 1], float32 [num, Y, X, C]:
        what the comparisons across models (benchmarks/generative.py) measure."""


# --- VAE --------------------------------------------------------------------------------------

class VAEFamily(ArrayFamily):
    name = "vae"
    modules = (VAE,)
    value_range = (0.0, 1.0)

    def data(self, workdir: str) -> data_lib.Bundle:
        likelihood = config_lib.model_config(self.config).likelihood
        if likelihood == "bernoulli" and self.config.data.dataset == ring.DATASET:
            raise ValueError(f"config key 'model.likelihood' is 'bernoulli', which needs data in "
                             f"[0, 1]; data.dataset {ring.DATASET!r} gives points in the plane: "
                             "set model.likelihood='gaussian'")
        return super().data(workdir)

    def init_params(self, model: VAE, rngs):
        x = jnp.zeros((2, *model.config.data_shape), jnp.float32)  # [2, ...] shapes only
        return model.init(rngs["params"], x, rngs["params"])["params"]

    def _prepare(self, model: VAE, key: jax.Array, x: jax.Array) -> jax.Array:
        """x [B, ...] as the model sees it: binarised for a Bernoulli likelihood."""
        return _binarize(key, x) if model.config.likelihood == "bernoulli" else x

    def phases(self, model: VAE):
        def loss_fn(params, batch, rng, deterministic):
            data_key, z_key = jax.random.split(rng)
            x = self._prepare(model, data_key, batch["x"])  # [B, ...], fresh every step
            out = model.apply({"params": params}, x, z_key)
            return out.loss, {"negative_elbo": -jnp.mean(out.elbo), "kl": jnp.mean(out.kl),
                              "examples": jnp.asarray(x.shape[0], jnp.float32)}

        return loss_fn

    def eval_step(self, model: VAE):
        def eval_step(params, batch, key):
            data_key, z_key = jax.random.split(key)
            out = model.apply({"params": params}, self._prepare(model, data_key, batch["x"]),
                              z_key)
            weights = batch["mask"].astype(jnp.float32)  # [B]
            return {"elbo": jnp.sum(out.elbo * weights), "kl": jnp.sum(out.kl * weights),
                    "log_likelihood": jnp.sum(out.log_likelihood * weights),
                    "count": jnp.sum(weights)}

        return eval_step

    def evaluate(self, model: VAE, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        sums = self.eval_sums(model, state, data)
        count = max(sums["count"], 1.0)
        result = {"negative_elbo": -sums["elbo"] / count, "kl": sums["kl"] / count,
                  "reconstruction_nll": -sums["log_likelihood"] / count}
        if self.config.eval.iwae_samples:
            result["iwae_nll"] = self.iwae_nll(model, state.params, data,
                                               self.config.eval.iwae_samples)
        first = first_eval_examples(data, NUM_RECONSTRUCTED)  # [n, ...]
        first = self._prepare(model, eval_key(_PICTURED_DATA), first)
        send_pictures(log, step, self._pictures(model, state.params, first, data, workdir, step))
        return result

    def iwae_nll(self, model: VAE, params, data, num: int) -> float:
        """-IWAE bound with ``num`` importance samples, nats per evaluation example: an
        upper bound on -log p(x) that tightens as ``num`` grows. Each batch is binarised
        with the key of the ELBO's evaluation, so both bounds are of the same images."""
        if not isinstance(num, int) or num < 1:
            raise ValueError(f"config key 'eval.iwae_samples' must be a positive int, got {num!r}")
        bound = _iwae(model, num)
        total, count = 0.0, 0.0
        for i, batch in enumerate(data.eval_batches()):
            data_key, z_key = jax.random.split(eval_key(0, i))
            x = self._prepare(model, data_key, batch["x"])  # [B, ...]
            weights = batch["mask"].astype(np.float32)  # [B]
            total += float(np.sum(np.asarray(bound(params, x, z_key)) * weights))
            count += float(weights.sum())
        return -total / max(count, 1.0)

    def sample_images(self, model: VAE, params, key: jax.Array, num: int) -> np.ndarray:
        """E[x | z] of prior draws z: pixel probabilities, the VAE's usual picture of a sample."""
        images = jax.jit(lambda p, k: model.apply({"params": p}, k, num, method=VAE.sample))(
            params, key)
        return np.asarray(images, np.float32)

    def _pictures(self, model: VAE, params, x, data, workdir: str, step: int) -> dict:
        """Prior samples; test examples x [n, ...] beside their reconstructions; interpolations.
        Returns {name: path} of the pictures this process wrote."""
        k = min(NUM_INTERPOLATIONS, len(x) // 2) if is_image(model) else 0
        samples, recon, path = _vae_pictures(model, k)(params, x)
        if jax.process_index() != 0:
            return {}
        if not is_image(model):
            return {"vae_samples": plots.plot_points(
                picture_path(workdir, "vae_samples", step), samples, reference=x,
                title=f"VAE samples, step {step}")}
        pairs = jnp.stack([x, recon], axis=1).reshape(-1, *x.shape[1:])  # [2n, Y, X, C]
        grids = {"vae_samples": (samples, 8), "vae_reconstructions": (pairs, 8)}
        if k:
            grids["vae_interpolations"] = (path.reshape(-1, *x.shape[1:]), INTERPOLATION_STEPS)
        return {name: save_grid(picture_path(workdir, name, step), images, columns,
                                 data.extras["value_range"])
                for name, (images, columns) in grids.items()}


@functools.lru_cache(maxsize=8)
def _iwae(model: VAE, num: int):
    """(params, x [B, ...], key) -> the IWAE bound on log p(x) [B] with ``num`` samples, jitted."""
    return jax.jit(lambda params, x, key: iwae_log_likelihood(model, {"params": params}, x, key,
                                                              num))


@functools.lru_cache(maxsize=8)
def _vae_pictures(model: VAE, pairs: int):
    """(params, x [n, ...]) -> (prior samples [64, ...], reconstructions of x [n, ...],
    interpolations between ``pairs`` pairs of x [pairs, num_steps, ...] or None), jitted."""

    @jax.jit
    def pictures(params, x):
        variables = {"params": params}
        samples = model.apply(variables, eval_key(_PICTURED_NOISE), NUM_PICTURED,
                              method=VAE.sample)
        recon = model.apply(variables, x, method=VAE.reconstruct)
        path = model.apply(variables, x[:pairs], x[pairs:2 * pairs], INTERPOLATION_STEPS,
                           method=VAE.interpolate) if pairs else None
        return samples, recon, path

    return pictures


# --- GAN --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _generator(model: GAN):
    """G(z) jitted: noise [B, Z] -> samples [B, ...]."""
    return jax.jit(lambda params, z: model.apply({"params": params}, z, method=GAN.generate))


class GANFamily(ArrayFamily):
    name = "gan"
    modules = (GAN,)
    value_range = (-1.0, 1.0)
    optimizer_groups = ("discriminator", "generator")

    def init_params(self, model: GAN, rngs):
        z = jnp.zeros((2, model.config.latent_dim), jnp.float32)  # [2, Z] shapes only
        x = jnp.zeros((2, *model.config.data_shape), jnp.float32)  # [2, ...]
        return model.init(rngs["params"], z, x)["params"]

    def phases(self, model: GAN):
        """One discriminator update on the batch, then one generator update against it."""
        loss = LOSSES[model.config.loss]
        latent = model.config.latent_dim

        def apply(params, *args, method):
            return model.apply({"params": params}, *args, method=method)

        def d_loss(params, batch, rng, deterministic):
            x = batch["x"]  # [B, ...]
            z = jax.random.normal(rng, (x.shape[0], latent))  # [B, Z]
            fake = jax.lax.stop_gradient(apply(params, z, method=GAN.generate))  # [B, ...]
            real_logits = apply(params, x, method=GAN.discriminate)  # [B]
            fake_logits = apply(params, fake, method=GAN.discriminate)  # [B]
            return loss.discriminator(real_logits, fake_logits), {
                "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),  # D's belief that x is real
                "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
                "examples": jnp.asarray(x.shape[0], jnp.float32)}

        def g_loss(params, batch, rng, deterministic):
            z = jax.random.normal(rng, (batch["x"].shape[0], latent))  # [B, Z]
            fake = apply(params, z, method=GAN.generate)  # [B, ...]
            return loss.generator(apply(params, fake, method=GAN.discriminate)), {}

        ratio = self.config.optim.d_lr_ratio
        if not ratio > 0:
            raise ValueError(f"config key 'optim.d_lr_ratio' must be > 0, got {ratio!r}")
        return (Phase(d_loss, group="discriminator", prefix="d_", lr_scale=ratio),
                Phase(g_loss, group="generator", prefix="g_"))

    def sample_images(self, model: GAN, params, key: jax.Array, num: int) -> np.ndarray:
        z = jax.random.normal(key, (num, model.config.latent_dim))  # [num, Z]
        low, high = self.value_range
        return (np.asarray(_generator(model)(params, z), np.float32) - low) / (high - low)

    def eval_step(self, model: GAN):
        latent = model.config.latent_dim

        def eval_step(params, batch, key):
            x = batch["x"]  # [B, ...]
            fake = model.apply({"params": params}, jax.random.normal(key, (x.shape[0], latent)),
                               method=GAN.generate)  # [B, ...]
            real_p = jax.nn.sigmoid(model.apply({"params": params}, x,
                                                method=GAN.discriminate))  # [B]
            fake_p = jax.nn.sigmoid(model.apply({"params": params}, fake,
                                                method=GAN.discriminate))  # [B]
            weights = batch["mask"].astype(jnp.float32)  # [B]
            return {"real": jnp.sum(real_p * weights), "fake": jnp.sum(fake_p * weights),
                    "count": jnp.sum(weights)}

        return eval_step

    def evaluate(self, model: GAN, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        sums = self.eval_sums(model, state, data)
        count = max(sums["count"], 1.0)
        result = {"d_real": sums["real"] / count, "d_fake": sums["fake"] / count}
        generate = _generator(model)
        latent = model.config.latent_dim
        if is_image(model):
            noise = jax.random.normal(eval_key(_PICTURED_NOISE), (NUM_PICTURED, latent))
            samples = generate(state.params, noise)  # [64, Y, X, C]
            if jax.process_index() == 0:
                send_pictures(log, step, {"gan_samples": save_grid(
                    picture_path(workdir, "gan_samples", step), samples, 8,
                    data.extras["value_range"])})
            return result
        noise = jax.random.normal(eval_key(_COVERAGE_NOISE), (NUM_COVERAGE, latent))
        samples = generate(state.params, noise)  # [NUM_COVERAGE, ...]
        if self.config.data.dataset == ring.DATASET:
            result.update(ring_coverage(samples))
        if jax.process_index() == 0 and samples.shape[1:] == (2,):
            send_pictures(log, step, {"gan_samples": plots.plot_points(
                picture_path(workdir, "gan_samples", step), samples,
                reference=first_eval_examples(data, NUM_COVERAGE),
                centers=ring.mode_centers(), title=f"GAN samples, step {step}")})
        return result


def ring_coverage(samples: jax.Array) -> dict:
    """How samples [B, 2] spread over the ring's modes; a mode needs a tenth of its fair share."""
    centers = ring.mode_centers()  # [num_modes, 2]
    cover = ring.mode_coverage(samples, centers, threshold=3 * ring.DEFAULT_STD,
                               min_count=len(samples) // (10 * len(centers)))
    return {"modes_covered": cover.modes_covered, "high_quality": cover.high_quality}
