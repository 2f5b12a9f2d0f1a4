"""Train state and the pure, jitted train/eval steps.

``train_step(state, batch) -> (state, metrics)`` is a pure function of its
inputs, jitted with the state donated. Dropout keys are derived per step with
``fold_in(state.rng, state.step)``, so a resumed run draws exactly the keys an
uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

# loss_fn(params, batch, rng, deterministic) -> (loss, aux); aux holds float32 scalars
# "nll_sum", "tokens", "correct" at least.
LossFn = Callable[..., tuple[jax.Array, dict]]


class TrainState(struct.PyTreeNode):
    step: jax.Array  # [] int32
    params: Any
    opt_state: Any
    rng: jax.Array  # raw uint32 PRNG key; per-step keys are fold_in(rng, step)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, params, tx, rng):
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   rng=rng, tx=tx)


def make_train_step(loss_fn: LossFn, schedule: optax.Schedule):
    """The pure train step for ``loss_fn``."""

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        grad_fn = jax.value_and_grad(lambda p: loss_fn(p, batch, rng, False), has_aux=True)
        (loss, aux), grads = grad_fn(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        metrics = {
            "loss": loss,
            "nll_sum": aux["nll_sum"],
            "tokens": aux["tokens"],
            "correct": aux["correct"],
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": jnp.asarray(schedule(state.step), jnp.float32),
        }
        return new_state, metrics

    return train_step


def make_eval_step(loss_fn: LossFn):
    def eval_step(params, batch):
        _, aux = loss_fn(params, batch, jax.random.PRNGKey(0), True)
        return {"nll_sum": aux["nll_sum"], "tokens": aux["tokens"], "correct": aux["correct"]}

    return eval_step
