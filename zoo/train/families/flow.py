"""The 'flow' family: a normalizing flow (``zoo.generative.RealNVP``) trained by exact
maximum likelihood on 8-bit images.

Glossary: B batch, Y height, X width, C channels; D = Y X C.

Batches are ``{'x': float32 [B, Y, X, C], 'mask': bool [B]}`` from
``zoo.train.data.array_data`` with ``value_range=(0, 255)``: the exact integer
grey levels, which the flow dequantises itself, x_cont = (pixel + u) / 256.

Randomness: each train step draws fresh dequantisation noise u from its key
(``fold_in(state.rng, step)``), so the flow never sees the same continuous
image twice and cannot put its mass on the 256 grid points. Evaluation uses
fixed keys (``base.eval_key``): every evaluation sees the same noise.

The loss is the mean negative log-likelihood in nats per dimension of the
discrete data (bits/dim times ln 2); the train metrics carry ``bits_per_dim``.
Evaluation reports the test set's ``bits_per_dim`` (one dequantisation draw
per image: an estimate of an upper bound on -log2 P(pixels) / D) and writes a
grid of samples for each temperature of ``config.eval.temperatures`` to
``<workdir>/images/flow_samples_t{T}_step{N}.png``, all drawn from the same
latents, scaled.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from zoo.generative.flow import RealNVP
from zoo.train.families.base import eval_key
from zoo.train.families.generative import ArrayFamily, picture_path, save_grid, send_pictures
from zoo.train.state import TrainState

_SAMPLE_NOISE = 1  # the eval_key stream of the pictured latents (0 is the evaluation batches)
GRID_COLUMNS = 8


@functools.lru_cache(maxsize=8)
def _sampler(model: RealNVP, num: int):
    """(params, key, temperature) -> samples [num, Y, X, C] in [0, 1], jitted once per model
    and count (the temperature is traced: one compile for every grid)."""
    return jax.jit(lambda params, key, temperature: model.apply(
        {"params": params}, key, num, temperature, method=RealNVP.sample))


class FlowFamily(ArrayFamily):
    name = "flow"
    modules = (RealNVP,)
    value_range = (0.0, 255.0)  # integer grey levels: the flow dequantises them itself

    def init_params(self, model: RealNVP, rngs):
        x = jnp.full((2, *model.config.data_shape), 0.5, jnp.float32)  # [2, Y, X, C] shapes
        return model.init(rngs["params"], x)["params"]

    def phases(self, model: RealNVP):
        def loss_fn(params, batch, rng, deterministic):
            pixels = batch["x"]  # [B, Y, X, C] in {0 .. 255}
            bits = model.apply({"params": params}, pixels, rng,
                               method=RealNVP.bits_per_dim)  # [B], fresh noise every step
            mean_bits = jnp.mean(bits)
            return mean_bits * math.log(2), {
                "bits_per_dim": mean_bits,
                "examples": jnp.asarray(pixels.shape[0], jnp.float32)}

        return loss_fn

    def eval_step(self, model: RealNVP):
        def eval_step(params, batch, key):
            bits = model.apply({"params": params}, batch["x"], key,
                               method=RealNVP.bits_per_dim)  # [B]
            weights = batch["mask"].astype(jnp.float32)  # [B] 0 on padding rows
            return {"bits": jnp.sum(bits * weights), "count": jnp.sum(weights)}

        return eval_step

    def evaluate(self, model: RealNVP, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        sums = self.eval_sums(model, state, data)
        result = {"bits_per_dim": sums["bits"] / max(sums["count"], 1.0)}
        sample = _sampler(model, int(self.config.eval.num_samples))
        grids = {}
        for temperature in self.config.eval.temperatures:
            # One key for every temperature: the grids show the same latents, scaled.
            images = sample(state.params, eval_key(_SAMPLE_NOISE), float(temperature))
            grids[f"flow_samples_t{float(temperature)}"] = images  # [num, Y, X, C]
        if jax.process_index() == 0:
            send_pictures(log, step, {
                name: save_grid(picture_path(workdir, name, step), images, GRID_COLUMNS,
                                (0.0, 1.0))
                for name, images in grids.items()})
        return result

    def sample_images(self, model: RealNVP, params, key: jax.Array, num: int) -> np.ndarray:
        """Temperature-1 samples: draws of the model itself, grey levels in [0, 1]."""
        return np.asarray(_sampler(model, num)(params, key, 1.0), np.float32)
