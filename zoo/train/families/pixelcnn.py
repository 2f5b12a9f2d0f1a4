"""The 'pixelcnn' family: the gated PixelCNN on 8-bit grey images, by exact likelihood.

Glossary: B batch, Y height, X width, C channels (1), L grey levels (256).

Batches are ``{'x': float32 [B, Y, X, C], 'mask': bool [B]}`` from
``zoo.train.data.array_data`` with ``value_range=(0, 255)``: the exact integer
grey levels, which are both the network's input and its 256-way targets.

Training minimises the mean negative log-likelihood in nats per dimension
(pixel); ``bits_per_dim`` is the same number divided by ln 2. Evaluation
reports the test-set ``bits_per_dim`` over the first ``data.num_eval`` test
images (in a fixed order; padded rows of the last batch weigh nothing) and
draws ``eval.num_samples`` images one pixel at a time (a jitted ``fori_loop``
of Y X full forward passes), written as a grid to
``<workdir>/images/pixelcnn_samples_step{N}.png``. ``sample_seconds_per_image``
is the wall time of that draw divided by the number of images (compilation
excluded): the price of autoregressive sampling, which no other model here pays.
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from zoo.generative.pixelcnn import PixelCNN
from zoo.train import config as config_lib
from zoo.train import data as data_lib
from zoo.train.families.base import eval_key
from zoo.train.families.generative import ArrayFamily, picture_path, save_grid, send_pictures
from zoo.train.state import TrainState

LEVELS = 256  # the data are 8-bit pixels
_SAMPLE_STREAM = 1  # eval_key stream of the pictured samples (0 is the evaluation batches)


@functools.lru_cache(maxsize=8)
def _sampler(model: PixelCNN, num: int):
    """(params, key) -> ``num`` samples, int32 [num, Y, X, C] in 0..L-1; jitted once per model."""
    return jax.jit(lambda params, key: model.apply({"params": params}, key, num,
                                                   method=PixelCNN.sample))


class PixelCNNFamily(ArrayFamily):
    name = "pixelcnn"
    modules = (PixelCNN,)
    value_range = (0.0, float(LEVELS - 1))  # exact grey levels 0..255 as float32

    def data(self, workdir: str) -> data_lib.Bundle:
        levels = config_lib.model_config(self.config).num_levels
        if levels != LEVELS:
            raise ValueError(f"config key 'model.num_levels' is {levels!r}; family "
                             f"'pixelcnn' trains on 8-bit pixels: allowed {LEVELS}")
        if self.config.eval.num_samples < 0:
            raise ValueError(f"config key 'eval.num_samples' is {self.config.eval.num_samples}; "
                             "allowed: >= 0 (0 draws no samples)")
        return super().data(workdir)

    def init_params(self, model: PixelCNN, rngs):
        x = jnp.zeros((2, *model.config.data_shape), jnp.float32)  # [2, Y, X, C] shapes only
        return model.init(rngs["params"], x)["params"]

    def phases(self, model: PixelCNN):
        def loss_fn(params, batch, rng, deterministic):
            x = batch["x"]  # [B, Y, X, C] grey levels
            bits = model.apply({"params": params}, x, method=PixelCNN.nll_bits_per_dim)  # [B]
            return jnp.mean(bits) * math.log(2.0), {  # nats per dimension
                "bits_per_dim": jnp.mean(bits),
                "examples": jnp.asarray(x.shape[0], jnp.float32)}

        return loss_fn

    def eval_step(self, model: PixelCNN):
        def eval_step(params, batch, key):
            bits = model.apply({"params": params}, batch["x"],
                               method=PixelCNN.nll_bits_per_dim)  # [B]
            weights = batch["mask"].astype(jnp.float32)  # [B]
            return {"bits": jnp.sum(bits * weights), "count": jnp.sum(weights)}

        return eval_step

    def sample_images(self, model: PixelCNN, params, key: jax.Array, num: int) -> np.ndarray:
        """Ancestral samples at temperature 1, grey levels / 255: float32 [num, Y, X, C]."""
        images = _sampler(model, num)(params, key)  # [num, Y, X, C] int32
        return np.asarray(images, np.float32) / (LEVELS - 1)

    def evaluate(self, model: PixelCNN, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        sums = self.eval_sums(model, state, data)
        result = {"bits_per_dim": sums["bits"] / max(sums["count"], 1.0)}
        num = self.config.eval.num_samples
        if num == 0:
            return result
        key = eval_key(_SAMPLE_STREAM)
        # Compiled apart from the timed call, so the time is sampling alone.
        compiled = _sampler(model, num).lower(state.params, key).compile()
        started = time.perf_counter()
        samples = jax.block_until_ready(compiled(state.params, key))  # [num, Y, X, C]
        result["sample_seconds_per_image"] = (time.perf_counter() - started) / num
        if jax.process_index() == 0:
            path = picture_path(workdir, "pixelcnn_samples", step)
            send_pictures(log, step, {"pixelcnn_samples": save_grid(
                path, samples, math.ceil(math.sqrt(num)), data.extras["value_range"])})
        return result
