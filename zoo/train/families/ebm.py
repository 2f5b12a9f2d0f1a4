"""The 'ebm' family: an energy-based model (``zoo.generative.EBM``) trained by contrastive
divergence, its negatives drawn by Langevin dynamics from a persistent buffer.

Glossary: B batch, N buffer size, G grid points per side; ``...`` is one
example, (2,) for points in the plane.

The persistent buffer is training state: it must survive steps, checkpoints and
resume exactly as the weights do. ``TrainState`` holds parameters, optimizer
states, the key and the step, so the buffer is a parameter group of its own,

    params = {'energy': the EBM's parameters, 'buffer': {'negatives': [N, ...]}}

with no optimizer state (only 'energy' is an optimizer group), and each train
step is two phases (``zoo/train/state.py``):

1. 'buffer', a writing phase (``Phase.writes``: no gradient, the group is
   replaced): draw B chain starts (from the buffer, or fresh uniform noise with
   probability ``reinit_prob``), run ``langevin_steps`` of Langevin dynamics
   under the current energy, and write the B new negatives at the front of the
   buffer, dropping its B oldest rows (the FIFO of Du & Mordatch 2019).
   ``chain_distance`` is the mean distance a chain moved in its Langevin steps.
2. 'energy': one optimizer step of ``contrastive_divergence_loss`` on the batch
   against the B negatives the first phase wrote (the buffer's first B rows).

Evaluation: ``energy_data``, the mean energy of the held-out points, and
``energy_samples``, that of ``NUM_COVERAGE`` fixed chains run for
``eval.sample_steps`` Langevin steps from fresh uniform noise; on the ring of
Gaussians the samples' mode coverage (``modes_covered``, ``high_quality``:
the toy GAN's measure, ``generative.ring_coverage``). Pictures of 2-D data:
the energy over the plane with the ring's modes,
``<workdir>/images/ebm_energy_step{N}.png``, and the samples over the data,
``ebm_samples_step{N}.png``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from zoo.data import ring
from zoo.generative.ebm import EBM, contrastive_divergence_loss, langevin
from zoo.train import plots
from zoo.train.families.base import eval_key
from zoo.train.families.generative import (
    NUM_COVERAGE,
    ArrayFamily,
    first_eval_examples,
    picture_path,
    ring_coverage,
    send_pictures,
)
from zoo.train.state import Phase, TrainState

ENERGY, BUFFER, NEGATIVES = "energy", "buffer", "negatives"  # parameter groups, buffer leaf
GRID = 161  # G: energy evaluated on a G x G grid for its picture
_SAMPLES = 1  # eval_key stream of the chains (stream 0 is the evaluation batches)


def _energy_fn(model: EBM, params):
    """x [B, ...] -> E(x) [B] under the energy parameters ``params``."""
    return lambda x: model.apply({"params": params}, x)


def _fresh(model: EBM, key: jax.Array, num: int) -> jax.Array:
    """[num, ...] uniform in [-init_range, init_range] per coordinate."""
    r = model.config.init_range
    return jax.random.uniform(key, (num, *model.config.data_shape), minval=-r, maxval=r)


def chain_starts(model: EBM, buffer: jax.Array, key: jax.Array, num: int) -> jax.Array:
    """[num, ...] starts: buffer rows drawn with replacement, a ``reinit_prob`` fraction
    of them replaced by fresh noise (Du & Mordatch 2019)."""
    k_pick, k_fresh, k_reinit = jax.random.split(key, 3)
    picked = buffer[jax.random.randint(k_pick, (num,), 0, buffer.shape[0])]  # [num, ...]
    reinit = jax.random.bernoulli(k_reinit, model.config.reinit_prob, (num,))  # [num]
    reinit = reinit.reshape(num, *(1,) * (buffer.ndim - 1))  # [num, 1...]
    return jnp.where(reinit, _fresh(model, k_fresh, num), picked)


@functools.lru_cache(maxsize=8)
def _sampler(model: EBM, steps: int, num: int):
    """(energy params, start key, chain key) -> [num, ...] samples from fresh noise, jitted."""
    cfg = model.config

    @jax.jit
    def sample(params, start_key, chain_key):
        x = _fresh(model, start_key, num)  # [num, ...]
        return langevin(_energy_fn(model, params), x, chain_key, steps, cfg.step_size,
                        cfg.noise_scale)

    return sample


@functools.lru_cache(maxsize=8)
def _energy(model: EBM):
    return jax.jit(lambda params, x: model.apply({"params": params}, x))


class EBMFamily(ArrayFamily):
    name = "ebm"
    modules = (EBM,)
    value_range = (-1.0, 1.0)  # images (if any) centred like the uniform starts; points pass
    optimizer_groups = (ENERGY,)  # the buffer is written by its phase, not optimised

    def init_params(self, model: EBM, rngs):
        energy_key, buffer_key = jax.random.split(rngs["params"])
        x = jnp.zeros((2, *model.config.data_shape), jnp.float32)  # [2, ...] shapes only
        return {ENERGY: model.init(energy_key, x)["params"],
                BUFFER: {NEGATIVES: _fresh(model, buffer_key, model.config.buffer_size)}}

    def phases(self, model: EBM):
        """Refresh the buffer with new negatives, then one CD update of the energy."""
        cfg, batch_size = model.config, self.config.data.batch_size
        if cfg.buffer_size < batch_size:
            raise ValueError(f"config key 'model.buffer_size' is {cfg.buffer_size}; it must hold "
                             f"at least one batch, data.batch_size = {batch_size}")

        def refresh(params, batch, rng, deterministic):
            """The buffer's new value: this step's B chains in front, its B oldest rows gone."""
            buffer = params[BUFFER][NEGATIVES]  # [N, ...]
            b = batch["x"].shape[0]
            starts = chain_starts(model, buffer, rng, b)  # [B, ...]
            negatives = langevin(_energy_fn(model, params[ENERGY]), starts,
                                 jax.random.fold_in(rng, 1), cfg.langevin_steps, cfg.step_size,
                                 cfg.noise_scale)  # [B, ...]
            new = jnp.concatenate([negatives, buffer[:cfg.buffer_size - b]])  # [N, ...]
            moved = jnp.sqrt(jnp.sum(jnp.square(negatives - starts).reshape(b, -1), axis=1))  # [B]
            return {NEGATIVES: new}, {"chain_distance": jnp.mean(moved)}

        def cd(params, batch, rng, deterministic):
            x = batch["x"]  # [B, ...]
            b = x.shape[0]
            negatives = params[BUFFER][NEGATIVES][:b]  # [B, ...] this step's, from phase 1
            energies = model.apply({"params": params[ENERGY]}, jnp.concatenate([x, negatives]))
            e_pos, e_neg = energies[:b], energies[b:]  # [B], [B]
            return contrastive_divergence_loss(e_pos, e_neg, cfg.alpha), {
                "energy_data": jnp.mean(e_pos), "energy_negatives": jnp.mean(e_neg),
                "examples": jnp.asarray(b, jnp.float32)}

        return (Phase(refresh, group=BUFFER, writes=True), Phase(cd, group=ENERGY))

    def sample_points(self, model: EBM, params, key: jax.Array, num: int) -> np.ndarray:
        """``num`` draws [num, ...]: chains of ``eval.sample_steps`` Langevin steps from fresh
        uniform noise. ``params`` is the whole tree (energy and buffer)."""
        start_key, chain_key = jax.random.split(key)
        sample = _sampler(model, int(self.config.eval.sample_steps), num)
        return np.asarray(sample(params[ENERGY], start_key, chain_key))

    def sample_images(self, model: EBM, params, key: jax.Array, num: int) -> np.ndarray:
        """Not drawn: this family's model is an energy over points (the ring of Gaussians),
        so there are no images to compare across models; ``sample_points`` draws points."""
        raise ValueError(f"the 'ebm' family draws points of shape {model.config.data_shape}, "
                         "not images: use EBMFamily.sample_points")

    def eval_step(self, model: EBM):
        def eval_step(params, batch, key):
            energies = model.apply({"params": params[ENERGY]}, batch["x"])  # [B]
            weights = batch["mask"].astype(jnp.float32)  # [B]
            return {"energy": jnp.sum(energies * weights), "count": jnp.sum(weights)}

        return eval_step

    def evaluate(self, model: EBM, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        sums = self.eval_sums(model, state, data)
        result = {"energy_data": sums["energy"] / max(sums["count"], 1.0)}
        samples = self.sample_points(model, state.params, eval_key(_SAMPLES),
                                     NUM_COVERAGE)  # [n, ...]
        energy = _energy(model)
        result["energy_samples"] = float(jnp.mean(energy(state.params[ENERGY], samples)))
        if self.config.data.dataset == ring.DATASET:
            result.update(ring_coverage(samples))
        if jax.process_index() == 0 and samples.shape[1:] == (2,):
            r = model.config.init_range
            axis = np.linspace(-r, r, GRID, dtype=np.float32)  # [G]
            grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)  # [G G, 2]
            landscape = energy(state.params[ENERGY], grid).reshape(GRID, GRID)  # [G, G] (y, x)
            centers = ring.mode_centers() if self.config.data.dataset == ring.DATASET else None
            send_pictures(log, step, {
                "ebm_energy": plots.plot_energy(
                    picture_path(workdir, "ebm_energy", step), landscape, (-r, r, -r, r),
                    centers=centers, title=f"EBM energy, step {step}"),
                "ebm_samples": plots.plot_points(
                    picture_path(workdir, "ebm_samples", step), samples,
                    reference=first_eval_examples(data, NUM_COVERAGE), centers=centers,
                    title=f"EBM samples, step {step}")})
        return result
