"""The training core: one train state, one train step, one way to sum evaluation metrics.

Every family (``zoo/train/families/``) plugs its losses into these:

    state = TrainState.create(params, tx, rng)                 # one optimizer state
    state = TrainState.create(params, tx, rng, groups=("generator", "discriminator"))
    step = make_train_step(loss_fn, schedule)                  # or a tuple of Phases
    state, metrics = step(state, batch)                        # pure; the loop jits it

``loss_fn(params, batch, rng, deterministic) -> (loss, metrics)`` sees the
whole parameter tree (the model's 'params' collection, no wrapper) and
returns a scalar loss and a dict of float32 scalars to log.

A step is a sequence of *phases*, each one gradient update: a plain model has
one phase over all parameters; a GAN has two, the discriminator's and then
the generator's, each over its own group of parameters with its own optimizer
state, the second seeing the parameters the first produced. The optimizer
recipe (``tx``) is the same for every group; it is built once, by the loop. A
phase may instead *write* a group with no optimizer state (``Phase.writes``):
an EBM's buffer of negative samples, an exponential moving average of weights.

Keys: a step's key is ``fold_in(state.rng, state.step)`` (phase i of several
folds in i as well), so a resumed run draws exactly the keys an uninterrupted
run would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec

# loss_fn(params, batch, rng, deterministic) -> (loss [] float32, metrics {name: [] float32})
LossFn = Callable[..., tuple[jax.Array, dict]]


class TrainState(struct.PyTreeNode):
    """Step, parameters, optimizer state and the base key; the optimizer is a static field."""

    step: jax.Array  # [] int32
    params: Any  # the model's 'params' collection
    opt_state: Any  # tx's state of params, or {group: tx's state of params[group]}
    rng: jax.Array  # raw uint32 key; per-step keys are fold_in(rng, step)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, rng: jax.Array, *,
               groups: Sequence[str] | None = None) -> TrainState:
        """``groups``: top-level parameter names updated separately (each its own
        optimizer state), or None for one update of everything."""
        if groups is None:
            opt_state = tx.init(params)
        else:
            missing = [g for g in groups if g not in params]
            if missing:
                raise ValueError(f"optimizer groups {missing} are not top-level parameter "
                                 f"names; the parameters have {sorted(params)}")
            opt_state = {g: tx.init(params[g]) for g in groups}
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state, rng=rng,
                   tx=tx)


class Phase(NamedTuple):
    """One update of a train step: a gradient step, or (``writes``) a computed new value."""

    loss_fn: LossFn
    group: str | None = None  # a key of TrainState.create's groups; None: all parameters
    prefix: str = ""  # prepended to this phase's 'loss' and 'grad_norm' metric names
    # True: no gradient. ``loss_fn(params, batch, rng, deterministic)`` returns (the new value
    # of ``group``, metrics) and the group becomes that value: state that is computed rather
    # than learnt (a sampler's persistent buffer, a moving average of the weights). Such a
    # group is a top-level parameter name with no optimizer state (leave it out of
    # TrainState.create's groups); it is checkpointed and restored with the rest.
    writes: bool = False
    # The phase's updates times this: its learning rate relative to the schedule's (for
    # Adam-like optimizers exactly a scaled learning rate), e.g. a GAN's two time-scale
    # update rule (Heusel et al. 2017).
    lr_scale: float = 1.0


def _phases(loss: LossFn | Iterable[Phase]) -> tuple[Phase, ...]:
    phases = (Phase(loss),) if callable(loss) else tuple(loss)
    if not phases or not all(isinstance(p, Phase) for p in phases):
        raise TypeError(f"make_train_step takes a loss function or a sequence of Phases, "
                        f"got {loss!r}")
    for phase in phases:
        if phase.writes and phase.group is None:
            raise ValueError("a Phase with writes=True must name the group it writes")
    return phases


def _update(phase: Phase, tx: optax.GradientTransformation, params, opt_state, batch,
            rng: jax.Array):
    """One phase: (params, opt_state, metrics) after a gradient step on its group (or after
    writing the group's new value)."""
    group = phase.group
    if phase.writes:
        value, metrics = phase.loss_fn(params, batch, rng, False)
        return {**params, group: value}, opt_state, metrics

    def loss_of(sub):
        full = sub if group is None else {**params, group: sub}
        return phase.loss_fn(full, batch, rng, False)

    sub = params if group is None else params[group]
    sub_opt = opt_state if group is None else opt_state[group]
    (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(sub)
    updates, sub_opt = tx.update(grads, sub_opt, sub)
    if phase.lr_scale != 1.0:
        updates = jax.tree.map(lambda u: u * phase.lr_scale, updates)
    sub = optax.apply_updates(sub, updates)
    if group is None:
        params, opt_state = sub, sub_opt
    else:
        params, opt_state = {**params, group: sub}, {**opt_state, group: sub_opt}
    metrics = {**aux, f"{phase.prefix}loss": loss,
               f"{phase.prefix}grad_norm": optax.tree.norm(grads)}
    return params, opt_state, metrics


def make_train_step(loss: LossFn | Iterable[Phase], schedule: optax.Schedule):
    """``train_step(state, batch) -> (state, metrics)`` for one loss or a sequence of phases.

    Metrics: each loss function's own, each phase's ``loss`` and ``grad_norm``
    (with its prefix), and the ``learning_rate`` of this step.
    """
    phases = _phases(loss)

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        params, opt_state, metrics = state.params, state.opt_state, {}
        for i, phase in enumerate(phases):
            key = rng if len(phases) == 1 else jax.random.fold_in(rng, i)
            params, opt_state, phase_metrics = _update(phase, state.tx, params, opt_state,
                                                       batch, key)
            metrics.update(phase_metrics)
        metrics["learning_rate"] = jnp.asarray(schedule(state.step), jnp.float32)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, metrics

    return train_step


def make_eval_step(loss_fn: LossFn):
    """``eval_step(params, batch, key) -> metrics``: the loss function's metrics (sums),
    deterministic (no dropout)."""

    def eval_step(params, batch, key):
        _, metrics = loss_fn(params, batch, key, True)
        return metrics

    return eval_step


def sharded_eval_step(eval_step: Callable[..., dict]):
    """``eval_step(params, batch, key) -> sums`` jitted with explicit shardings.

    The parameters stay where they are (sharded by the mesh rules); the batch,
    the key and the sums are replicated, so evaluation batches need not divide
    the mesh and every process sees the same sums.
    """
    compiled = {}

    def run(params, batch, key):
        first = jax.tree.leaves(params)[0].sharding
        if first not in compiled:
            whole = NamedSharding(first.mesh, PartitionSpec()) if isinstance(
                first, NamedSharding) else first
            compiled[first] = jax.jit(
                eval_step,
                in_shardings=(jax.tree.map(lambda x: x.sharding, params), whole, whole),
                out_shardings=whole)
        return compiled[first](params, batch, key)

    return run


def eval_sums(step: Callable[[int, Any], dict], batches: Iterable) -> dict:
    """The sums of ``step(i, batch)`` over the evaluation batches, on the host ({} if none).

    Every evaluation adds up sums (of losses, counts, correct tokens ...) batch
    by batch and divides once at the end, so padded rows and a short last
    batch weigh nothing.
    """
    sums = None
    for i, batch in enumerate(batches):
        m = step(i, batch)
        sums = m if sums is None else jax.tree.map(jnp.add, sums, m)
    if sums is None:
        return {}
    # Scalars as floats; a sum kept per class (a confusion matrix) as an array.
    return {k: float(v) if np.ndim(v) == 0 else np.asarray(v)
            for k, v in jax.device_get(sums).items()}
