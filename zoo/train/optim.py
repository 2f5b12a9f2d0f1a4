"""Optimizers and learning-rate schedules (optax), chosen by name from a config.

The paper's schedule ("Attention Is All You Need", section 5.3):
    lr(step) = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)
Alternatives: linear warm-up followed by cosine or linear decay, or a constant.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import optax


def rsqrt_schedule(d_model: int, warmup_steps: int, scale: float = 1.0) -> optax.Schedule:
    """The Transformer paper's schedule; ``scale`` multiplies it (the paper uses 1)."""
    if warmup_steps <= 0:
        raise ValueError(f"warmup_steps must be positive for 'rsqrt', got {warmup_steps}")

    def schedule(step):
        step = jnp.maximum(jnp.asarray(step, jnp.float32), 1.0)  # step 0 would divide by zero
        return scale * d_model**-0.5 * jnp.minimum(step**-0.5, step * warmup_steps**-1.5)

    return schedule


def _cosine(cfg) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.learning_rate, warmup_steps=max(cfg.warmup_steps, 1),
        decay_steps=max(cfg.num_train_steps, cfg.warmup_steps + 1),
        end_value=cfg.learning_rate * cfg.end_lr_ratio,
    )


def _linear(cfg) -> optax.Schedule:
    warmup = optax.linear_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1))
    decay = optax.linear_schedule(cfg.learning_rate, cfg.learning_rate * cfg.end_lr_ratio,
                                  max(cfg.num_train_steps - cfg.warmup_steps, 1))
    return optax.join_schedules([warmup, decay], [cfg.warmup_steps])


SCHEDULES: dict[str, Callable] = {
    "rsqrt": lambda cfg: rsqrt_schedule(cfg.d_model, cfg.warmup_steps, cfg.learning_rate),
    "cosine": _cosine,
    "linear": _linear,
    "constant": lambda cfg: optax.constant_schedule(cfg.learning_rate),
}


def make_schedule(cfg) -> optax.Schedule:
    """``cfg``: the config's ``optim`` section (schedule, learning_rate, warmup_steps, ...)."""
    if cfg.schedule not in SCHEDULES:
        raise ValueError(
            f"optim.schedule {cfg.schedule!r} is unknown; allowed: {sorted(SCHEDULES)}")
    return SCHEDULES[cfg.schedule](cfg)


def make_optimizer(cfg) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Adam(W) with the configured schedule, clipping, weight decay and accumulation.

    Adam's betas default to the paper's (0.9, 0.98) with eps 1e-9. Weight decay
    is decoupled (AdamW) and skips 1-D parameters (biases, norm scales).
    """
    schedule = make_schedule(cfg)
    if cfg.grad_accum_steps < 1:
        raise ValueError(f"optim.grad_accum_steps must be >= 1, got {cfg.grad_accum_steps}")
    parts = []
    if cfg.clip_grad_norm:
        parts.append(optax.clip_by_global_norm(cfg.clip_grad_norm))
    parts.append(optax.adamw(
        schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
        mask=lambda params: _decay_mask(params),
    ))
    tx = optax.chain(*parts)
    if cfg.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum_steps)
    return tx, schedule


def _decay_mask(params):
    import jax

    return jax.tree.map(lambda p: p.ndim > 1, params)
