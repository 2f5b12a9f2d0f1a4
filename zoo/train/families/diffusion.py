"""The 'diffusion' family: DDPM on images in [-1, 1] (zoo/generative/diffusion.py).

Glossary: B batch, K trajectory frames; ``...`` is one image (Y, X, C).

Diffusion samples from an exponential moving average (EMA) of the weights are
markedly cleaner than from the last iterate (Ho et al. 2020 use one). The average
is training state like the weights -- checkpointed, restored on resume, what a
restored checkpoint samples from -- so it is a parameter group of its own
(``zoo/train/state.py``, ``Phase.writes``):

    params = {'model': the DDPM's parameters,
              'ema': {'average': the same tree, averaged, 'count': [] int32 updates so far}}

Only 'model' is an optimizer group (the trainable parameters); each train step is

1. 'model': one optimizer step on the mean eps-MSE; the phase's key draws the
   timesteps, the noise and the dropout masks;
2. 'ema', a writing phase (no gradient, the group is replaced): with n = count + 1,
   average <- d average + (1 - d) model, d = min(0.999, (1 + n) / (10 + n)), a decay
   that warms up so that short runs average only recent steps. ``ema_decay`` is d.

Evaluation uses the average (``params['ema']['average']``) and fixed keys: the test
eps-MSE (``eps_mse``; ``eps_mse_raw`` for the last iterate, ``params['model']``), a
grid of ``eval.num_samples`` samples drawn by ``eval.sampler`` ('ancestral' | 'ddim')
over ``eval.sample_steps`` timesteps, ``images/diffusion_samples_step{N}.png``, and
the denoising trajectories of a few samples (rows: samples; columns: x_T ... x_0),
``images/diffusion_trajectory_step{N}.png``. ``sample_seconds_per_image`` is the
sampling time of the grid (compiled beforehand) per image. ``sample_images`` takes
the whole parameter tree (a restored checkpoint's) and samples from the average.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from zoo.generative.diffusion import DDPM, check_sampler
from zoo.train import config as config_lib
from zoo.train.families.base import eval_key
from zoo.train.families.generative import ArrayFamily, picture_path, save_grid, send_pictures
from zoo.train.state import Phase, TrainState

MODEL, EMA = "model", "ema"  # parameter groups: the trained weights, their moving average
AVERAGE, COUNT = "average", "count"  # the 'ema' group's leaves: the averaged tree, updates
EMA_DECAY = 0.999  # the average's decay once warmed up; min(decay, (1 + n) / (10 + n)) before
NUM_TRAJECTORIES, MAX_FRAMES = 8, 10  # samples whose denoising is pictured, frames of each
_SAMPLE_NOISE, _TRAJECTORY_NOISE = 1, 2  # key streams of eval_key (0: the evaluation batches)


def ema_decay(count: jax.Array, decay: float = EMA_DECAY) -> jax.Array:
    """[] float32 decay of update ``count`` (1 for the first): min(decay, (1 + n) / (10 + n))."""
    return jnp.minimum(decay, (1 + count) / (10 + count)).astype(jnp.float32)


def ema_update(params, batch, rng, deterministic):
    """The writing phase: the 'ema' group's new value after one more update, and
    ``ema_decay``. ``params`` is the whole tree, 'model' already updated by this step."""
    del batch, rng, deterministic  # a deterministic function of the weights
    count = params[EMA][COUNT] + 1
    decay = ema_decay(count)
    average = jax.tree.map(lambda e, p: e + (1 - decay) * (p - e), params[EMA][AVERAGE],
                           params[MODEL])
    return {AVERAGE: average, COUNT: count}, {"ema_decay": decay}


@functools.lru_cache(maxsize=16)
def _sampler(model: DDPM, num: int, steps: int, method: str, frames: int):
    """(params, key) -> Samples of ``num`` images, jitted."""
    return jax.jit(lambda params, key: model.apply(
        {"params": params}, key, num, steps, method, frames=frames, method=DDPM.sample))


class DiffusionFamily(ArrayFamily):
    name = "diffusion"
    modules = (DDPM,)
    value_range = (-1.0, 1.0)
    optimizer_groups = (MODEL,)  # the average is written by its phase, not optimised

    def __init__(self, config):
        super().__init__(config)
        timesteps = config_lib.model_config(config).timesteps
        check_sampler(config.eval.sampler, config.eval.sample_steps, timesteps,
                      names=("config key 'eval.sampler'", "config key 'eval.sample_steps'"))
        if config.eval.num_samples < 1:
            raise ValueError(f"config key 'eval.num_samples' must be >= 1, got "
                             f"{config.eval.num_samples!r}")
        self._compiled: dict = {}  # model -> the compiled sampler of the evaluation grid

    def init_params(self, model: DDPM, rngs):
        """{'model': the DDPM's parameters, 'ema': {'average': a copy, 'count': 0}}."""
        x = jnp.zeros((2, *model.config.data_shape), jnp.float32)  # [2, ...] shapes only
        params = model.init(rngs["params"], x, jnp.zeros((2,), jnp.int32))["params"]
        return {MODEL: params, EMA: {AVERAGE: jax.tree.map(jnp.copy, params),
                                     COUNT: jnp.zeros((), jnp.int32)}}

    def phases(self, model: DDPM):
        """One optimizer step of the weights, then the moving average of the new weights."""

        def loss_fn(params, batch, rng, deterministic):
            key, dropout_key = jax.random.split(rng)
            losses = model.apply({"params": params[MODEL]}, batch["x"], key, deterministic,
                                 rngs={"dropout": dropout_key}, method=DDPM.loss)  # [B]
            loss = jnp.mean(losses)
            return loss, {"eps_mse": loss,
                          "examples": jnp.asarray(losses.shape[0], jnp.float32)}

        return (Phase(loss_fn, group=MODEL), Phase(ema_update, group=EMA, writes=True))

    def eval_step(self, model: DDPM):
        def eval_step(params, batch, key):  # params: one DDPM tree (the average or the model)
            losses = model.apply({"params": params}, batch["x"], key,
                                 method=DDPM.loss)  # [B] at fixed t and noise
            weights = batch["mask"].astype(jnp.float32)  # [B]
            return {"eps_mse": jnp.sum(losses * weights), "count": jnp.sum(weights)}

        return eval_step

    def _draw(self, model: DDPM, params, key, num: int, frames: int = 0):
        cfg = self.config.eval
        return _sampler(model, num, cfg.sample_steps, cfg.sampler, frames)(params, key)

    def sample_images(self, model: DDPM, params, key: jax.Array, num: int) -> np.ndarray:
        """``num`` samples by the config's sampler and step count, as grey levels in [0, 1].
        ``params`` is the whole tree (a train state's or a restored checkpoint's); the
        samples come from the moving average, ``params['ema']['average']``."""
        images = self._draw(model, params[EMA][AVERAGE], key, num).images  # [num, ...] ~[-1, 1]
        return np.clip((np.asarray(images, np.float32) + 1) / 2, 0.0, 1.0)

    def evaluate(self, model: DDPM, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        ema = state.params[EMA][AVERAGE]
        result = {}
        for name, params in (("eps_mse", ema), ("eps_mse_raw", state.params[MODEL])):
            sums = self.eval_sums(model, state.replace(params=params), data)
            result[name] = sums["eps_mse"] / max(sums["count"], 1.0)

        num, steps = self.config.eval.num_samples, self.config.eval.sample_steps
        key = eval_key(_SAMPLE_NOISE)
        if model not in self._compiled:  # compiled once, so that the timing below is sampling
            self._compiled[model] = _sampler(model, num, steps, self.config.eval.sampler,
                                             0).lower(ema, key).compile()
        compiled = self._compiled[model]
        started = time.perf_counter()
        samples = jax.block_until_ready(compiled(ema, key).images)  # [num, ...]
        result["sample_seconds_per_image"] = (time.perf_counter() - started) / num
        frames = min(MAX_FRAMES, steps + 1)
        trajectory = self._draw(model, ema, eval_key(_TRAJECTORY_NOISE), NUM_TRAJECTORIES,
                                frames).trajectory  # [NUM_TRAJECTORIES, K, ...]
        if jax.process_index() == 0:
            value_range = data.extras["value_range"]
            send_pictures(log, step, {
                "diffusion_samples": save_grid(
                    picture_path(workdir, "diffusion_samples", step), samples,
                    int(np.ceil(np.sqrt(num))), value_range),
                "diffusion_trajectory": save_grid(
                    picture_path(workdir, "diffusion_trajectory", step),
                    np.asarray(trajectory).reshape(-1, *trajectory.shape[2:]), frames,
                    value_range)})
        return result
