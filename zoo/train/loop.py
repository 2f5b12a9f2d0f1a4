"""``train_and_evaluate(config, workdir)``: the main training job.

The loop is family-agnostic: a *family* (``zoo/train/families/``) says how its
batches are made, how its parameters are created, what its train step
optimises and how the model is evaluated. Everything else is here, once for
every family: the optimizer (built once), the mesh and sharded state
creation, the one train step of ``zoo/train/state.py`` jitted with the state
donated and explicit in/out shardings, metrics, evaluation cadence,
checkpoints and resume.

Sharding (``config.mesh``, see ``zoo/sharding.py``): the state is created
directly sharded by the rules; each process feeds its own rows of the global
batch; the step is traced with the mesh and rules in scope so the models'
logical activation constraints are real. Evaluation runs on the sharded
parameters outside that scope (its batches need not divide the mesh).

Reporting (``zoo/train/metrics.py``, ``zoo/train/telemetry.py``): a model summary at
start, metrics to ``metrics.jsonl`` and TensorBoard from one writer, FLOP/s and
model-FLOPs utilisation beside tokens/s, and a profile of chosen steps.

Resume: the train state, the data iterator's state and the config are saved
together; a restarted run continues from the newest checkpoint that restores
and -- with per-step keys ``fold_in(rng, step)`` and a restored iterator --
reproduces the uninterrupted run bit for bit on CPU. A checkpoint whose
structure differs from this config's model or optimizer stops the run with
``CheckpointMismatchError`` and moves nothing; only unreadable steps of this
run's own folder are moved aside. Another run's folder (``restore_from``) is
only read.
"""

from __future__ import annotations

import json
import math
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from zoo import sharding
from zoo.train import checkpoints, families, optim, plots, telemetry
from zoo.train import config as config_lib
from zoo.train import metrics as metrics_lib
from zoo.train.state import make_train_step


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


def _restore_from(path: str, state):
    """The newest good checkpoint of another run, restored onto ``state``'s devices.
    The other run's folder is only read."""
    folder = os.path.join(path, "checkpoints")
    folder = folder if os.path.isdir(folder) else path
    if not os.path.isdir(folder):
        raise ValueError(f"config key 'train.restore_from': {path!r} is not a directory")
    restored = checkpoints.read_latest(folder, state)
    if restored is None:
        raise ValueError(f"config key 'train.restore_from': no checkpoint in {folder!r} restores")
    print(f"restored step {restored.step} from {folder}")
    return restored


def init_sharded(init, plan: sharding.Plan, rng):
    """(state, state shardings): ``init(rng)``'s state created directly sharded on ``plan``'s
    mesh.

    The boxed abstract state (``eval_shape``, no memory) gives each leaf its
    logical axes; the rules turn them into shardings; the jitted init then
    writes every shard on its own device -- no full copy on one device first.
    """
    abstract = jax.eval_shape(init, rng)
    shardings = plan.state_shardings(abstract)
    # Leaves in, leaves out: static fields (the optimizer) then come from `abstract`,
    # so the state, its shardings and every later step agree on one tree structure.
    flat = jax.jit(lambda r: jax.tree.leaves(nn.unbox(init(r))),
                   out_shardings=jax.tree.leaves(shardings))(rng)
    return jax.tree.unflatten(jax.tree.structure(nn.unbox(abstract)), flat), shardings


def _finite(losses: dict) -> bool:
    return all(math.isfinite(float(v)) for v in losses.values())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains ``config`` in ``workdir``, resuming from its checkpoints; returns eval metrics."""
    config = config_lib.validate(config)
    os.makedirs(workdir, exist_ok=True)
    tfds.disable_progress_bar()
    plan = sharding.plan_from_config(config)
    plan.check_batch_size(config.data.batch_size)
    family = families.make(config)
    data = family.data(workdir)
    model = family.build_model(data.vocab)
    tx, schedule = optim.make_optimizer(config.optim)

    state, shardings = init_sharded(lambda rng: family.init_state(model, tx, rng), plan,
                                    jax.random.PRNGKey(config.seed))
    train_step = jax.jit(make_train_step(family.phases(model), schedule), donate_argnums=0,
                         in_shardings=(shardings, plan.batch_sharding),
                         out_shardings=(shardings, plan.replicated))
    main = jax.process_index() == 0
    peak = telemetry.peak_flops(config.train.peak_flops) * plan.mesh.size
    flops_of: dict = {}  # batch shapes -> FLOPs of one step on them

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
    if main:  # after the restore: a checkpoint of another config stopped the run unchanged
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
        summary = telemetry.model_summary(
            state.params, title=f"{config.model.name} ({type(model).__name__}) parameters")
        print(summary, end="")
        with open(os.path.join(workdir, "model_summary.txt"), "w") as f:
            f.write(summary)

    num_steps = config.train.num_train_steps
    writer = metrics_lib.MetricWriter(workdir, num_steps, initial_step=start,
                                      progress_bar=config.train.progress_bar,
                                      is_main_process=main)
    profile = telemetry.ProfileWindow(config.train.profile_steps,
                                      os.path.join(workdir, "profile"), start,
                                      python=config.train.profile_python)
    pending: list[tuple[int, dict]] = []  # (step, its *loss metrics) not yet checked
    sums = None
    last_good = ckpt.latest_step()
    tick, window, flops = time.perf_counter(), 0, 0.0  # summed since the last log
    final_eval: dict = {}

    def check_finite():
        bad = next((step for step, m in pending if not _finite(m)), None)
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

    def run_eval(step):
        result = family.evaluate(model, state, data, workdir=workdir, step=step, log=writer)
        writer.write(step, "eval", result)
        return result

    for step in range(start, num_steps):
        batch = plan.global_batch(next(train_iter))
        done = step + 1
        shapes = tuple((k, v.shape) for k, v in sorted(batch.items()))
        profile.before(done)
        with plan.activate(), profile.annotation(done):  # logical constraints -> sharding
            if shapes not in flops_of:  # once per batch shape; the call reuses this trace
                flops_of[shapes] = telemetry.jaxpr_flops(train_step.trace(state, batch).jaxpr)
            state, step_metrics = train_step(state, batch)
        profile.after(done, state)
        pending.append((done, {k: v for k, v in step_metrics.items() if k.endswith("loss")}))
        sums = step_metrics if sums is None else jax.tree.map(jnp.add, sums, step_metrics)
        window, flops = window + 1, flops + flops_of[shapes]
        if done % config.train.log_every == 0 or done == num_steps:
            check_finite()
            seconds = time.perf_counter() - tick
            values = family.summarize(jax.device_get(sums), jax.device_get(step_metrics),
                                      window, seconds)
            values["flops_per_sec"] = flops / max(seconds, 1e-9)
            values["mfu"] = values["flops_per_sec"] / peak
            writer.write(done, "train", values)
            writer.advance(done)
            sums, tick, window, flops = None, time.perf_counter(), 0, 0.0
        is_eval = done % config.train.eval_every == 0 or done == num_steps
        if is_eval:
            started = time.perf_counter()
            final_eval = run_eval(done)
            # The throughput window leaves the evaluation's time out but keeps its steps
            # before it: restarting the clock here would divide them by too short a time.
            tick += time.perf_counter() - started
        if done % config.train.checkpoint_every == 0 or done == num_steps:
            save(done, final_eval if is_eval else None)
    profile.close()
    if start >= num_steps and not final_eval:
        final_eval = run_eval(start)
    ckpt.wait()
    ckpt.close()
    writer.close()
    if main:
        plots.plot_curves(workdir)
    return {k: (float(v) if isinstance(v, int | float | np.floating) else v)
            for k, v in final_eval.items()}
