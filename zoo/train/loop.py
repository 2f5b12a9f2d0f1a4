"""``train_and_evaluate(config, workdir)``: the main training job.

The loop is family-agnostic: a *family* (``zoo/train/families.py``) says how a
batch feeds a model (loss) and how the model is evaluated (decoding, exact
match, BLEU). Everything else is here: state creation, the jitted donated
step, metrics, evaluation cadence, checkpoints and resume.

Resume: the train state, the data iterator's state and the config are saved
together; a restarted run continues from the newest checkpoint that restores
and -- with per-step keys ``fold_in(rng, step)`` and a restored iterator --
reproduces the uninterrupted run bit for bit on CPU.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from zoo import registry
from zoo.train import checkpoints, families, optim, plots
from zoo.train import config as config_lib
from zoo.train import metrics as metrics_lib
from zoo.train.state import TrainState, make_eval_step, make_train_step


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


def _first_bad_step(losses: list[tuple[int, jax.Array]]) -> int | None:
    for step, loss in losses:
        if not math.isfinite(float(loss)):
            return step
    return None


def _restore_from(path: str, state):
    """The newest good checkpoint of another run, restored onto ``state``'s devices."""
    folder = os.path.join(path, "checkpoints")
    folder = folder if os.path.isdir(folder) else path
    if not os.path.isdir(folder):
        raise ValueError(f"config key 'train.restore_from': {path!r} is not a directory")
    source = checkpoints.Checkpointer(folder, async_save=False)
    restored = source.restore_latest(state)
    source.close()
    if restored is None:
        raise ValueError(f"config key 'train.restore_from': no checkpoint in {folder!r} restores")
    print(f"restored step {restored.step} from {folder}")
    return restored


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains ``config`` in ``workdir``, resuming from its checkpoints; returns eval metrics."""
    config = config_lib.validate(config)
    os.makedirs(workdir, exist_ok=True)
    tfds.disable_progress_bar()
    family = families.get(config.family)
    data = family.data(config, workdir)
    module_cls = registry.get(config.model.name).module
    model_cfg = config_lib.model_config(config, **family.vocab_fields(module_cls, data.vocab))
    model = module_cls(config=model_cfg)

    rng = jax.random.PRNGKey(config.seed)
    init_rng, state_rng = jax.random.split(rng)
    params = family.init(model, init_rng, data.example_batch)
    tx, schedule = optim.make_optimizer(config.optim)
    state = TrainState.create(params, tx, state_rng)
    loss_fn = family.make_loss(model, config)
    train_step = jax.jit(make_train_step(loss_fn, schedule), donate_argnums=0)
    eval_step = jax.jit(make_eval_step(loss_fn))

    ckpt = checkpoints.Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.train.max_to_keep,
        best_metric=config.train.best_metric or None, best_mode=config.train.best_mode,
    )
    restored = ckpt.restore_latest(state)
    if restored is None and config.train.restore_from:
        restored = _restore_from(config.train.restore_from, state)
    train_iter = data.train_iterator()
    start = 0
    if restored is not None:
        state = restored.state
        start = int(restored.step)
        if restored.data is not None:
            train_iter.set_state(restored.data)
        print(f"resumed from the checkpoint at step {start} in {ckpt.directory}")
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))

    num_steps = config.train.num_train_steps
    writer = metrics_lib.MetricWriter(workdir, num_steps, initial_step=start,
                                      progress_bar=config.train.progress_bar,
                                      is_main_process=jax.process_index() == 0)
    pending: list[tuple[int, jax.Array]] = []  # (step, loss) not yet checked on the host
    sums = None
    last_good = ckpt.latest_step()
    tick, window = time.perf_counter(), 0  # steps summed into `sums` since the last log
    final_eval: dict = {}

    def check_finite():
        bad = _first_bad_step(pending)
        pending.clear()
        if bad is not None:
            ckpt.wait()
            raise NonFiniteLossError(
                f"non-finite loss at step {bad}; stopped without saving. The last good "
                f"checkpoint is step {last_good} in {ckpt.directory}")

    def save(step, eval_metrics=None):
        nonlocal last_good
        check_finite()
        ckpt.save(step, state, data=train_iter.get_state(),
                  config=json.loads(config.to_json_best_effort()),
                  metrics=eval_metrics or None)
        last_good = step

    for step in range(start, num_steps):
        batch = next(train_iter)
        state, step_metrics = train_step(state, batch)
        done = step + 1
        pending.append((done, step_metrics["loss"]))
        sums = step_metrics if sums is None else jax.tree.map(jnp.add, sums, step_metrics)
        window += 1
        if done % config.train.log_every == 0 or done == num_steps:
            check_finite()
            host = jax.device_get(sums)
            elapsed = time.perf_counter() - tick
            values = {
                "loss": float(host["loss"]) / window,
                **metrics_lib.summarize(host),
                "learning_rate": float(step_metrics["learning_rate"]),
                "grad_norm": float(host["grad_norm"]) / window,
                "tokens_per_sec": float(host["tokens"]) / max(elapsed, 1e-9),
            }
            writer.write(done, "train", values)
            writer.advance(done)
            sums, tick, window = None, time.perf_counter(), 0
        is_eval = done % config.train.eval_every == 0 or done == num_steps
        if is_eval:
            final_eval = family.evaluate(model, state.params, data, config, eval_step,
                                         workdir=workdir, step=done)
            writer.write(done, "eval", final_eval)
            tick = time.perf_counter()
        if done % config.train.checkpoint_every == 0 or done == num_steps:
            save(done, final_eval if is_eval else None)
    if start >= num_steps and not final_eval:
        final_eval = family.evaluate(model, state.params, data, config, eval_step,
                                     workdir=workdir, step=start)
    ckpt.wait()
    ckpt.close()
    writer.close()
    plots.plot_curves(workdir)
    return {k: (float(v) if isinstance(v, int | float | np.floating) else v)
            for k, v in final_eval.items()}
